"""Tests of spikegen.spikes.io: the PKU .dat format, the packed .npz format, streaming, errors."""

from __future__ import annotations

import doctest
import importlib
import json
import os
import pkgutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

import spikegen.spikes.io as sio
from spikegen.errors import OutputExistsError, ShapeError, SpikeFileError, SpikeGenError
from spikegen.spikes.io import (
    DatFile,
    DatWriter,
    SpikeBlock,
    dat_frame_bytes,
    dat_info,
    iter_dat,
    iter_spikes,
    load_spikes,
    open_spikes,
    read_dat,
    save_spikes,
    spikes_info,
    write_dat,
)

SHARED_DATS = ("203_part2_key_id151", "203_part3_key_id151")


def rand_spikes(shape, p=0.3, seed=0) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) < p).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# independent references, written from the format description (SOURCES.md), not from the module
# ---------------------------------------------------------------------------------------------


def numpy_decode(path: Path, height: int, width: int) -> np.ndarray:
    """Straightforward decode: LSB-first bits, H*W/8 bytes per frame, stored upside down."""
    raw = np.fromfile(path, dtype=np.uint8)
    frames = raw.size // (height * width // 8)
    bits = np.unpackbits(raw, bitorder="little")
    return bits.reshape(frames, height, width)[:, ::-1, :]


def spikezoo_save_vidar_dat(path: Path, seq: np.ndarray, filpud: bool = True) -> None:
    """The logic of Spike-Zoo's save_vidar_dat (spikezoo/utils/spike_utils.py), re-typed:
    per frame flip, flatten, (pad with 8 - remainder zeros), groups of 8 weighted by 2**k."""
    sfn, h, w = seq.shape
    remainder = int((h * w) % 8)
    base = np.power(2, np.linspace(0, 7, 8))
    with open(path, "ab") as fid:
        for i in range(sfn):
            spike = np.flipud(seq[i]) if filpud else seq[i]
            if remainder == 0:
                spike = spike.flatten()
            else:
                spike = np.concatenate([spike.flatten(), np.array([0] * (8 - remainder))])
            spike = spike.reshape([int(h * w / 8), 8])
            fid.write(np.sum(spike * base, axis=1).astype(np.uint8).tobytes())


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


# ---------------------------------------------------------------------------------------------
# round trips
# ---------------------------------------------------------------------------------------------

SHAPES = [(3, 250, 400), (1, 7, 9), (4, 7, 9), (1, 1, 1), (5, 1, 1), (1, 3, 5), (6, 3, 5), (3, 4, 6), (2, 2, 12), (9, 8, 16)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("flip", [True, False])
def test_dat_round_trip(tmp_path, shape, flip):
    x = rand_spikes(shape, seed=sum(shape))
    path = write_dat(tmp_path / "x.dat", x, flip=flip)
    T, H, W = shape
    assert path.stat().st_size == T * ((H * W + 7) // 8) == T * dat_frame_bytes(H, W)
    y = read_dat(path, H, W, flip=flip)
    assert y.dtype == np.uint8 and y.shape == shape and y.flags.c_contiguous
    np.testing.assert_array_equal(y, x)
    for workers in (1, 2):
        np.testing.assert_array_equal(read_dat(path, H, W, flip=flip, workers=workers), x)


@pytest.mark.parametrize("shape", [(2, 7, 9), (3, 3, 5), (2, 1, 1)])
def test_odd_size_frames_are_padded_with_zero_bits(tmp_path, shape):
    T, H, W = shape
    x = np.ones(shape, np.uint8)
    raw = np.fromfile(write_dat(tmp_path / "x.dat", x), dtype=np.uint8).reshape(T, -1)
    bits = np.unpackbits(raw, axis=1, bitorder="little")
    assert bits.shape[1] == 8 * ((H * W + 7) // 8)
    assert bits[:, : H * W].all() and not bits[:, H * W :].any()


def test_flip_stores_frames_upside_down(tmp_path):
    x = np.zeros((1, 4, 8), np.uint8)
    x[0, 0, 0] = 1  # top-left pixel
    raw = np.fromfile(write_dat(tmp_path / "a.dat", x), dtype=np.uint8)
    assert raw.tolist() == [0, 0, 0, 1]  # stored as the first pixel of the last row: LSB of byte 3
    raw = np.fromfile(write_dat(tmp_path / "b.dat", x, flip=False), dtype=np.uint8)
    assert raw.tolist() == [1, 0, 0, 0]


def test_write_accepts_dtypes_torch_and_views(tmp_path):
    x = rand_spikes((5, 6, 10), seed=3)
    variants = {
        "bool": x.astype(bool),
        "float32": x.astype(np.float32),
        "int64": x.astype(np.int64),
        "batch1": x[None],
        "noncontig": np.ascontiguousarray(x.transpose(0, 2, 1)).transpose(0, 2, 1),
        "torch_u8": torch.from_numpy(x),
        "torch_bool": torch.from_numpy(x).bool(),
        "torch_f16": torch.from_numpy(x).half(),
        "torch_bf16": torch.from_numpy(x).bfloat16(),
        "torch_batch1": torch.from_numpy(x)[None],
    }
    for name, arr in variants.items():
        path = write_dat(tmp_path / f"{name}.dat", arr)
        np.testing.assert_array_equal(read_dat(path, 6, 10), x, err_msg=name)


def test_multi_block_read_and_write(tmp_path):
    # frames large enough that reading and writing use several blocks (and threads)
    x = rand_spikes((60, 250, 400), p=0.1, seed=5)
    path = write_dat(tmp_path / "x.dat", x, workers=2)
    assert path.read_bytes() == (write_dat(tmp_path / "y.dat", x, workers=1)).read_bytes()
    for workers in (None, 1, 2, 3):
        np.testing.assert_array_equal(read_dat(path, workers=workers), x)


# ---------------------------------------------------------------------------------------------
# the shared .dat files
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SHARED_DATS)
def test_read_shared_dat_equals_numpy_decode(shared_data, name):
    path = shared_data / "spikes" / "synthetic_reds" / "spike" / f"{name}.dat"
    ref = numpy_decode(path, 250, 400)
    assert ref.shape == (301, 250, 400)
    for workers in (1, 2):
        got = read_dat(path, workers=workers)
        assert got.shape == (301, 250, 400) and got.dtype == np.uint8
        np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(read_dat(path, flip=False), ref[:, ::-1])
    # frame selections equal slices of the full read
    for sel in [slice(140, 163), slice(None, 10), slice(290, None), slice(5, 300, 7), slice(None, None, -40), slice(-3, None)]:
        np.testing.assert_array_equal(read_dat(path, frames=sel), ref[sel], err_msg=str(sel))
    np.testing.assert_array_equal(read_dat(path, frames=(10, 20)), ref[10:20])
    np.testing.assert_array_equal(read_dat(path, frames=range(3, 30, 9)), ref[3:30:9])
    np.testing.assert_array_equal(read_dat(path, frames=151), ref[151:152])
    np.testing.assert_array_equal(read_dat(path, frames=-1), ref[-1:])
    assert read_dat(path, frames=slice(5, 5)).shape == (0, 250, 400)


@pytest.mark.parametrize("name", SHARED_DATS)
def test_shared_dat_is_upright_and_matches_ground_truth(shared_data, name):
    import imageio.v3 as iio

    root = shared_data / "spikes" / "synthetic_reds"
    spikes = read_dat(root / "spike" / f"{name}.dat", frames=slice(151 - 16, 151 + 16))
    gt = iio.imread(root / "gt" / f"{name}.png").astype(np.float64)
    if gt.ndim == 3:
        gt = gt[..., :3].mean(-1)
    rate = spikes.mean(0)
    assert rate.shape == gt.shape
    corr = np.corrcoef(rate.ravel(), gt.ravel())[0, 1]
    corr_flipped = np.corrcoef(rate[::-1].ravel(), gt.ravel())[0, 1]
    assert corr > 0.9 > corr_flipped


def test_dat_info_and_datfile_on_shared_file(shared_data):
    path = shared_data / "spikes" / "synthetic_reds" / "spike" / f"{SHARED_DATS[0]}.dat"
    info = dat_info(path, 250, 400)
    assert (info.num_frames, info.height, info.width) == (301, 250, 400)
    assert (info.frame_bytes, info.file_bytes, info.extra_bytes) == (12500, 3762500, 0)
    assert info.format == "dat" and info.shape == (301, 250, 400) and info.flip
    json.dumps(info.as_dict())  # serialisable for `spikegen info`
    f = DatFile(path)
    assert len(f) == 301 and f.shape == (301, 250, 400)
    ref = numpy_decode(path, 250, 400)
    np.testing.assert_array_equal(f[151], ref[151])
    np.testing.assert_array_equal(f[-1], ref[-1])
    np.testing.assert_array_equal(f[10:20:3], ref[10:20:3])
    np.testing.assert_array_equal(f.read(100, 110), ref[100:110])
    frames = list(iter(f))
    assert len(frames) == 301
    np.testing.assert_array_equal(frames[200], ref[200])
    assert spikes_info(path).num_frames == 301


# ---------------------------------------------------------------------------------------------
# raw_width
# ---------------------------------------------------------------------------------------------


def test_raw_width_crops_trailing_columns(tmp_path):
    x416 = rand_spikes((4, 250, 416), seed=7)
    path = write_dat(tmp_path / "raw.dat", x416)
    y = read_dat(path, 250, 400, raw_width=416)
    assert y.shape == (4, 250, 400) and y.flags.c_contiguous
    np.testing.assert_array_equal(y, x416[:, :, :400])
    np.testing.assert_array_equal(read_dat(path, 250, 400, raw_width=416, flip=False), x416[:, ::-1, :400])
    np.testing.assert_array_equal(read_dat(path, 250, 416), x416)
    assert dat_info(path, 250, 400, raw_width=416).num_frames == 4


@pytest.mark.parametrize("shape,width", [((3, 5, 13), 9), ((2, 4, 16), 11), ((2, 3, 24), 8), ((2, 7, 9), 9)])
def test_raw_width_odd_geometries(tmp_path, shape, width):
    x = rand_spikes(shape, seed=11)
    path = write_dat(tmp_path / "raw.dat", x)
    for flip in (True, False):
        xx = x if flip else x[:, ::-1]  # reading without flip gives the stored orientation
        np.testing.assert_array_equal(
            read_dat(path, shape[1], width, raw_width=shape[2], flip=flip), xx[:, :, :width]
        )


# ---------------------------------------------------------------------------------------------
# byte identity with Spike-Zoo
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(3, 250, 400), (2, 4, 6), (4, 8, 16), (1, 2, 4)])
@pytest.mark.parametrize("flip", [True, False])
def test_write_dat_byte_identical_to_spikezoo(tmp_path, shape, flip):
    x = rand_spikes(shape, seed=2)
    spikezoo_save_vidar_dat(tmp_path / "ref.dat", x, filpud=flip)
    ours = write_dat(tmp_path / "ours.dat", x, flip=flip)
    assert ours.read_bytes() == (tmp_path / "ref.dat").read_bytes()


def test_spikezoo_writer_fails_on_odd_sizes_ours_does_not(tmp_path):
    # documents the peer behaviour the docs describe: the padding it intends, then a reshape error
    x = rand_spikes((2, 7, 9))
    with pytest.raises(ValueError, match="reshape"):
        spikezoo_save_vidar_dat(tmp_path / "ref.dat", x)
    np.testing.assert_array_equal(read_dat(write_dat(tmp_path / "ours.dat", x), 7, 9), x)


# ---------------------------------------------------------------------------------------------
# streaming
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("block,overlap", [(7, 3), (10, 0), (301, 0), (500, 10), (2, 1), (1, 0)])
def test_iter_dat_blocks_reassemble_the_stream(shared_data, block, overlap):
    path = shared_data / "spikes" / "synthetic_reds" / "spike" / f"{SHARED_DATS[1]}.dat"
    full = read_dat(path)
    blocks = list(iter_dat(path, 250, 400, block=block, overlap=overlap))
    assert all(isinstance(b, SpikeBlock) for b in blocks)
    assert blocks[0].start == 0 and blocks[-1].stop == 301
    rebuilt = np.empty_like(full)
    for i, (start, spikes) in enumerate(blocks):
        assert 1 <= spikes.shape[0] <= block
        np.testing.assert_array_equal(spikes, full[start : start + spikes.shape[0]])
        rebuilt[start : start + spikes.shape[0]] = spikes
        if i:
            prev = blocks[i - 1]
            assert start == prev.stop - overlap  # consecutive blocks share `overlap` frames
            assert spikes.shape[0] > overlap or blocks[i].stop == 301
    np.testing.assert_array_equal(rebuilt, full)


def test_iter_dat_sub_range_and_bad_arguments(tmp_path):
    x = rand_spikes((20, 4, 8))
    path = write_dat(tmp_path / "x.dat", x)
    blocks = list(iter_dat(path, 4, 8, block=6, overlap=2, start=3, stop=15))
    assert [b.start for b in blocks] == [3, 7, 11]
    assert blocks[-1].stop == 15
    np.testing.assert_array_equal(np.concatenate([blocks[0].spikes, blocks[1].spikes[2:], blocks[2].spikes[2:]]), x[3:15])
    with pytest.raises(SpikeFileError, match=r"x\.dat'.*overlap must be in \[0, block=4\), got 4"):
        iter_dat(path, 4, 8, block=4, overlap=4)
    with pytest.raises(SpikeFileError, match="x.dat.*block must be a positive integer"):
        iter_dat(path, 4, 8, block=0)
    with pytest.raises(SpikeFileError, match="x.dat.*stop <= 20"):
        iter_dat(path, 4, 8, block=4, stop=21)


def test_dat_writer_streams_blocks(tmp_path):
    x = rand_spikes((30, 5, 7), seed=4)
    with DatWriter(tmp_path / "s.dat", 5, 7) as w:
        for t in range(0, 30, 8):
            w.write(x[t : t + 8])
        w.write(torch.from_numpy(x[0]))  # a single [H, W] frame
        assert not (tmp_path / "s.dat").exists()  # only moved into place on close
    assert w.num_frames == 31
    np.testing.assert_array_equal(read_dat(tmp_path / "s.dat", 5, 7), np.concatenate([x, x[:1]]))
    with pytest.raises(ShapeError, match=r"e\.dat.*5x8.*5x7"):
        with DatWriter(tmp_path / "e.dat", 5, 7) as w:
            w.write(np.zeros((2, 5, 8), np.uint8))
    with pytest.raises(SpikeFileError, match=r"z\.dat.*no frames"):
        with DatWriter(tmp_path / "z.dat", 5, 7):
            pass
    assert not (tmp_path / "e.dat").exists() and not (tmp_path / "z.dat").exists()
    assert no_temp_files(tmp_path)


# ---------------------------------------------------------------------------------------------
# packed .npz and plain npz/npy
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(6, 250, 400), (5, 3, 5), (1, 1, 1), (9, 7, 9)])
@pytest.mark.parametrize("compress", [False, True])
def test_packed_npz_round_trip_with_metadata(tmp_path, shape, compress):
    x = rand_spikes(shape, seed=9)
    path = save_spikes(tmp_path / "s.npz", x, compress=compress, v_th=np.float32(2.0), source="unit test", fps=20000, tags=("a", "b"))
    with np.load(path, allow_pickle=False) as npz:  # the documented layout
        assert set(npz.files) == {"bits", "meta"}
        np.testing.assert_array_equal(npz["bits"], np.packbits(x.ravel(), bitorder="little"))
        stored = json.loads(npz["meta"].tobytes().decode())
    assert stored["height"] == shape[1] and stored["width"] == shape[2] and stored["num_frames"] == shape[0]
    assert stored["format"] == sio.PACKED_FORMAT and stored["version"] == 1 and stored["flip"] is False
    y = load_spikes(path)
    assert y.dtype == np.uint8 and y.shape == shape
    np.testing.assert_array_equal(y, x)
    y, meta = load_spikes(path, with_meta=True)
    np.testing.assert_array_equal(y, x)
    assert meta["v_th"] == 2.0 and meta["source"] == "unit test" and meta["fps"] == 20000 and meta["tags"] == ["a", "b"]
    assert (meta["num_frames"], meta["height"], meta["width"]) == shape
    # frame selections of a packed file (frames need not start on a byte boundary)
    T = shape[0]
    for sel in [slice(1, None), slice(0, T, 2), slice(None, None, -1), slice(T - 1, T)]:
        np.testing.assert_array_equal(load_spikes(path, frames=sel), x[sel])
    # re-saving the returned metadata works unchanged
    save_spikes(tmp_path / "again.npz", y, **meta)
    assert load_spikes(tmp_path / "again.npz", with_meta=True)[1]["source"] == "unit test"


def test_packed_npz_streaming_and_info(tmp_path):
    x = rand_spikes((23, 3, 5), seed=1)
    path = save_spikes(tmp_path / "s.npz", x, v_th=1.0)
    f = open_spikes(path)
    assert len(f) == 23 and f.shape == (23, 3, 5)
    np.testing.assert_array_equal(f[4], x[4])
    parts = list(iter_spikes(path, block=6, overlap=2))
    assert [p.start for p in parts] == [0, 4, 8, 12, 16, 20]
    for p in parts:
        np.testing.assert_array_equal(p.spikes, x[p.start : p.stop])
    info = spikes_info(path)
    assert info.format == "npz-packed" and info.shape == (23, 3, 5) and info.meta["v_th"] == 1.0
    with pytest.raises(SpikeFileError, match=r"s\.npz.*holds 3x5 frames.*height=250"):
        load_spikes(path, height=250)
    assert load_spikes(path, height=3, width=5).shape == (23, 3, 5)
    np.testing.assert_array_equal(load_spikes(path, flip=True), x[:, ::-1])


def test_save_spikes_dat_suffix_and_load_dispatch(tmp_path):
    x = rand_spikes((4, 6, 8))
    save_spikes(tmp_path / "s.dat", x, v_th=1.0)  # .dat cannot hold metadata: ignored
    assert (tmp_path / "s.dat").stat().st_size == 4 * 6
    np.testing.assert_array_equal(load_spikes(tmp_path / "s.dat", height=6, width=8), x)
    y, meta = load_spikes(tmp_path / "s.dat", height=6, width=8, with_meta=True)
    assert meta["format"] == "dat" and meta["num_frames"] == 4 and meta["flip"] is True
    np.testing.assert_array_equal(load_spikes(tmp_path / "s.dat", height=6, width=8, flip=False), x[:, ::-1])
    np.testing.assert_array_equal(load_spikes(tmp_path / "s.dat", height=6, width=8, frames=slice(1, 3)), x[1:3])
    with pytest.raises(SpikeFileError, match=r"s\.txt.*unknown suffix"):
        save_spikes(tmp_path / "s.txt", x)
    (tmp_path / "s.txt").write_bytes(b"xx")
    with pytest.raises(SpikeFileError, match=r"s\.txt.*unknown suffix"):
        load_spikes(tmp_path / "s.txt")


def test_load_real_uhsr_capture(shared_data):
    path = shared_data / "spikes" / "real" / "uhsr_helicopter.npz"
    with np.load(path) as npz:
        raw = npz["spk"]
    x, meta = load_spikes(path, with_meta=True)
    assert x.shape == (200, 250, 250) and x.dtype == np.uint8
    assert set(np.unique(x).tolist()) <= {0, 1}
    np.testing.assert_array_equal(x, raw)  # stored upright: no flip by default
    assert 0.01 < x.mean() < 0.1
    assert meta["key"] == "spk" and meta["format"] == "npz" and meta["flip"] is False
    info = spikes_info(path)
    assert info.shape == (200, 250, 250) and info.format == "npz"
    blocks = list(iter_spikes(path, block=64, overlap=8))
    np.testing.assert_array_equal(blocks[1].spikes, raw[56:120])


def test_plain_npz_and_npy_variants(tmp_path):
    x = rand_spikes((4, 3, 5))
    np.savez(tmp_path / "one.npz", frames=x.astype(bool))
    np.testing.assert_array_equal(load_spikes(tmp_path / "one.npz"), x)
    np.savez(tmp_path / "f.npz", spk=x.astype(np.float32)[None], other=np.zeros(3))
    np.testing.assert_array_equal(load_spikes(tmp_path / "f.npz"), x)
    np.save(tmp_path / "a.npy", x)
    np.testing.assert_array_equal(load_spikes(tmp_path / "a.npy"), x)
    np.savez(tmp_path / "many.npz", a=x, b=x)
    with pytest.raises(SpikeFileError, match=r"many\.npz.*\['a', 'b'\].*key="):
        load_spikes(tmp_path / "many.npz")
    np.testing.assert_array_equal(load_spikes(tmp_path / "many.npz", key="b"), x)
    with pytest.raises(SpikeFileError, match=r"many\.npz.*no array 'c'"):
        load_spikes(tmp_path / "many.npz", key="c")
    np.savez(tmp_path / "bad.npz", spk=x * 3)
    with pytest.raises(SpikeFileError, match=r"bad\.npz.*binary"):
        load_spikes(tmp_path / "bad.npz")
    np.savez(tmp_path / "flat.npz", spk=x[0])
    with pytest.raises(SpikeFileError, match=r"flat\.npz.*shape \(3, 5\)"):
        load_spikes(tmp_path / "flat.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(SpikeFileError, match=r"junk\.npz"):
        load_spikes(tmp_path / "junk.npz")
    np.savez(tmp_path / "obj.npz", spk=np.array([{"a": 1}], dtype=object))
    with pytest.raises(SpikeFileError, match=r"obj\.npz"):
        load_spikes(tmp_path / "obj.npz")


def test_corrupt_packed_npz(tmp_path):
    path = save_spikes(tmp_path / "s.npz", rand_spikes((4, 3, 5)))
    with np.load(path) as npz:
        bits, meta = npz["bits"], npz["meta"]
    np.savez(tmp_path / "short.npz", bits=bits[:-1], meta=meta)
    with pytest.raises(SpikeFileError, match=r"short\.npz.*corrupt.*7 bytes"):
        load_spikes(tmp_path / "short.npz")
    np.savez(tmp_path / "badjson.npz", bits=bits, meta=np.frombuffer(b"{nope", np.uint8))
    with pytest.raises(SpikeFileError, match=r"badjson\.npz.*JSON"):
        load_spikes(tmp_path / "badjson.npz")


# ---------------------------------------------------------------------------------------------
# bad inputs
# ---------------------------------------------------------------------------------------------


def test_partial_file_error_and_drop(tmp_path):
    x = rand_spikes((5, 250, 400))
    path = tmp_path / "cut.dat"
    path.write_bytes(write_dat(tmp_path / "full.dat", x).read_bytes()[:-100])
    size = 5 * 12500 - 100
    with pytest.raises(SpikeFileError) as err:
        read_dat(path)
    msg = str(err.value)
    for part in (str(path), f"{size} bytes", "12500 bytes", "4 whole frames", "12400 extra bytes", "partial='drop'"):
        assert part in msg, (part, msg)
    y = read_dat(path, partial="drop")
    np.testing.assert_array_equal(y, x[:4])
    info = dat_info(path, partial="drop")
    assert info.num_frames == 4 and info.extra_bytes == 12400
    with pytest.raises(SpikeFileError, match="cut.dat.*4 whole frames"):
        dat_info(path)
    with pytest.raises(SpikeFileError, match="cut.dat"):
        iter_dat(path, block=2)
    with pytest.raises(SpikeFileError, match="partial must be 'error' or 'drop'"):
        read_dat(path, partial="ignore")


def test_unreadable_files(tmp_path):
    (tmp_path / "empty.dat").write_bytes(b"")
    with pytest.raises(SpikeFileError, match=r"empty\.dat' is empty \(0 bytes\)"):
        read_dat(tmp_path / "empty.dat")
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(SpikeFileError, match=r"empty\.npz' is empty"):
        load_spikes(tmp_path / "empty.npz")
    with pytest.raises(SpikeFileError, match=r"missing\.dat' does not exist"):
        read_dat(tmp_path / "missing.dat")
    with pytest.raises(SpikeFileError, match=r"missing\.npz' does not exist"):
        load_spikes(tmp_path / "missing.npz")
    (tmp_path / "small.dat").write_bytes(b"\x00" * 100)
    with pytest.raises(SpikeFileError, match=r"small\.dat' \(100 bytes\) is smaller than one 250x400 frame \(12500 bytes\)"):
        read_dat(tmp_path / "small.dat", partial="drop")
    (tmp_path / "folder.dat").mkdir()
    with pytest.raises(SpikeFileError, match=r"folder\.dat' is a folder"):
        read_dat(tmp_path / "folder.dat")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(height=0), "height must be a positive integer, got 0"),
        (dict(height=-250), "height must be a positive integer, got -250"),
        (dict(width=2.5), "width must be a positive integer, got 2.5"),
        (dict(width=True), "width must be a positive integer, got True"),
        (dict(raw_width=399), r"raw_width \(399\) must be >= width \(400\)"),
        (dict(frames=301), "frame 301 is out of range for a stream of 301 frames"),
        (dict(frames=range(295, 305)), "out of range"),
        (dict(frames=slice(0, 10, 0)), "invalid frame slice"),
        (dict(frames="all"), "frames must be a slice"),
        (dict(workers=0), "workers must be a positive integer"),
    ],
)
def test_bad_read_arguments(shared_data, kwargs, match):
    path = shared_data / "spikes" / "synthetic_reds" / "spike" / f"{SHARED_DATS[0]}.dat"
    with pytest.raises(SpikeFileError, match=match) as err:
        read_dat(path, **kwargs)
    if "workers" not in kwargs:
        assert str(path) in str(err.value)


@pytest.mark.parametrize(
    "spikes,match",
    [
        (np.full((2, 4, 8), 2, np.uint8), r"binary \(0/1\), found values in \[0, 2\]"),
        (np.full((2, 4, 8), -1, np.int16), r"binary \(0/1\), found values in \[-1, -1\]"),
        (np.full((2, 4, 8), 0.5, np.float32), r"binary \(0/1\), found value 0\.5"),
        (np.full((2, 4, 8), np.nan), r"binary \(0/1\), found value nan"),
        (torch.full((2, 4, 8), 3), r"binary \(0/1\)"),
        (np.zeros((4, 8), np.uint8), r"must be \[T, H, W\].*got shape \(4, 8\)"),
        (np.zeros((2, 2, 4, 8), np.uint8), r"must be \[T, H, W\].*got shape \(2, 2, 4, 8\)"),
        (np.zeros((0, 4, 8), np.uint8), r"at least one frame"),
        (np.array([["a"]]), r"dtype <U1"),
        (np.zeros((2, 4, 8), np.complex64), r"dtype complex64"),
    ],
    ids=["uint8-2", "int-neg", "float-half", "nan", "torch-3", "2d", "4d", "empty", "str", "complex"],
)
def test_write_rejects_bad_arrays(tmp_path, spikes, match):
    out = tmp_path / "out.dat"
    with pytest.raises(ShapeError, match=match) as err:
        write_dat(out, spikes)
    assert str(out) in str(err.value)
    assert not out.exists() and no_temp_files(tmp_path)
    if spikes.ndim == 3 and spikes.shape[0] > 0:
        with pytest.raises(ShapeError, match=match):
            save_spikes(tmp_path / "out.npz", spikes)
        assert not (tmp_path / "out.npz").exists() and no_temp_files(tmp_path)


@pytest.mark.parametrize("suffix", [".dat", ".npz"])
def test_existing_output_is_refused_and_left_untouched(tmp_path, suffix):
    out = tmp_path / f"out{suffix}"
    out.write_bytes(b"precious")
    x = rand_spikes((3, 4, 8))
    writer = write_dat if suffix == ".dat" else save_spikes
    with pytest.raises(OutputExistsError, match=rf"out\{suffix}' already exists.*overwrite=True"):
        writer(out, x)
    assert out.read_bytes() == b"precious" and no_temp_files(tmp_path)
    with pytest.raises(FileExistsError):  # also a FileExistsError for library users
        save_spikes(out, x)
    writer(out, x, overwrite=True)
    np.testing.assert_array_equal(load_spikes(out, height=4, width=8), x)
    assert no_temp_files(tmp_path)


def test_failed_write_leaves_existing_output_untouched(tmp_path):
    # 25 frames of 250x400 are written in two blocks: the second one holds a bad value
    x = rand_spikes((25, 250, 400), p=0.1)
    x[24, 10, 10] = 7
    out = tmp_path / "out.dat"
    out.write_bytes(b"old content")
    with pytest.raises(ShapeError, match=r"out\.dat.*frames 20\.\.24"):
        write_dat(out, x, overwrite=True, workers=1)
    assert out.read_bytes() == b"old content" and no_temp_files(tmp_path)
    with pytest.raises(ShapeError, match=r"new\.dat"):
        write_dat(tmp_path / "new.dat", x, workers=2)
    assert not (tmp_path / "new.dat").exists() and no_temp_files(tmp_path)


def test_output_folder_problems(tmp_path):
    x = rand_spikes((2, 4, 8))
    with pytest.raises(SpikeFileError, match=r"nope.*does not exist"):
        write_dat(tmp_path / "nope" / "x.dat", x)
    (tmp_path / "d.dat").mkdir()
    with pytest.raises(SpikeFileError, match=r"d\.dat': it is an existing folder"):
        write_dat(tmp_path / "d.dat", x, overwrite=True)


def test_errors_are_spikegen_errors():
    assert issubclass(SpikeFileError, SpikeGenError) and issubclass(SpikeFileError, ValueError)
    assert issubclass(OutputExistsError, SpikeGenError)
    with pytest.raises(SpikeFileError, match="dat_frame_bytes: width"):
        dat_frame_bytes(250, 0)


def test_output_permissions_follow_umask(tmp_path):
    if os.name != "posix":
        pytest.skip("POSIX permissions")
    old = os.umask(0o022)
    try:
        path = write_dat(tmp_path / "x.dat", rand_spikes((1, 4, 8)))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_docstring_examples_run(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    # spikegen.spikes.io is a package: its examples live in the __init__ and its files.
    mods = [sio] + [importlib.import_module(f"{sio.__name__}.{m.name}") for m in pkgutil.iter_modules(sio.__path__)]
    results = [doctest.testmod(m, optionflags=doctest.ELLIPSIS) for m in mods]
    assert sum(r.attempted for r in results) > 20 and sum(r.failed for r in results) == 0


def test_idle_cpus_counts_tasks_running_now_not_only_the_load_average(tmp_path, monkeypatch):
    """A job resumed a few seconds ago is not in the 1-minute load average yet: the tasks
    runnable now (``/proc/loadavg``'s fourth field, less this thread) count too, so
    `read_dat` does not start a decoding thread on a core that is busy."""
    from spikegen.spikes.io import helpers

    monkeypatch.setattr(helpers.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(helpers.os, "getloadavg", lambda: (0.2, 0.5, 0.5))
    fake = tmp_path / "loadavg"
    monkeypatch.setattr(helpers, "_LOADAVG", str(fake))
    for text, idle in (("0.20 0.50 0.50 1/300 99", 3), ("0.20 0.50 0.50 3/300 99", 2),
                       ("0.20 0.50 0.50 9/300 99", 1), ("garbled", 3)):
        fake.write_text(text)
        assert helpers.idle_cpus() == idle, text
    monkeypatch.setattr(helpers.os, "getloadavg", lambda: (2.6, 2.0, 2.0))  # the lagging one
    fake.write_text("2.60 2.00 2.00 1/300 99")
    assert helpers.idle_cpus() == 1
