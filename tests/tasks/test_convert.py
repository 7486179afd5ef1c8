"""``spikegen convert`` and :class:`spikegen.spikes.io.PackedWriter`: format conversion,
streamed block by block, with cuts, crops and metadata carried over."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from cli_helpers import run
from spikegen.errors import OutputExistsError, ShapeError, SpikeFileError
from spikegen.spikes.io import PackedWriter, load_spikes, read_dat, save_spikes, write_dat
from spikegen.tasks.toolkit import convert_file

T, H, W = 90, 10, 24


@pytest.fixture
def x() -> np.ndarray:
    rate = np.linspace(0.05, 0.8, W)[None, None, :]
    return (np.random.default_rng(2).random((T, H, W)) < rate).astype(np.uint8)


@pytest.mark.parametrize("block", [7, 1024])
def test_dat_to_npz_and_back_is_byte_identical(tmp_path, x, block):
    dat = write_dat(tmp_path / "a.dat", x)
    npz = tmp_path / "a.npz"
    n, h, w, rate = convert_file(dat, npz, height=H, width=W, block=block, progress=False)
    assert (n, h, w) == (T, H, W) and rate == pytest.approx(x.mean())
    y, meta = load_spikes(npz, with_meta=True)
    assert np.array_equal(y, x) and meta["source"] == meta["converted_from"] == "a.dat" and meta["start_frame"] == 0
    assert "fps" not in meta and "crop" not in meta  # nothing invented
    back = tmp_path / "b.dat"
    convert_file(npz, back, block=block, progress=False)
    assert back.read_bytes() == dat.read_bytes()


def test_cut_and_crop_equal_slicing_and_carry_the_metadata(tmp_path, x):
    src = save_spikes(tmp_path / "s.npz", x, fps=40000.0, cfa="RGGB", v_th=2.0, source="scene.png")
    out = tmp_path / "c.npz"
    # frames 25..74: 0.625 ms .. 1.875 ms at 40 kHz
    n, h, w, _ = convert_file(src, out, start="0.625ms", end="1.875ms", crop="3,5,6,11", block=16, progress=False)
    y, meta = load_spikes(out, with_meta=True)
    assert (n, h, w) == (50, 6, 11) and np.array_equal(y, x[25:75, 3:9, 5:16])
    assert meta["fps"] == 40000.0 and meta["v_th"] == 2.0 and meta["start_frame"] == 25
    assert meta["crop"] == [3, 5, 6, 11] and meta["cfa"] == "BGGR"  # odd row and column: B G / G R
    assert meta["converted_from"] == "s.npz" and meta["source"] == "scene.png"  # the simulated scene
    # a second cut counts from the original file
    convert_file(out, tmp_path / "d.npz", start=10, progress=False)
    assert load_spikes(tmp_path / "d.npz", with_meta=True)[1]["start_frame"] == 35


def test_a_dat_output_warns_about_the_metadata_it_cannot_store(tmp_path, x):
    src = save_spikes(tmp_path / "s.npz", x, fps=40000.0, cfa="GRBG")
    warnings = []
    convert_file(src, tmp_path / "o.dat", progress=False, warn=warnings.append)
    assert len(warnings) == 1 and "cfa" in warnings[0] and "fps" in warnings[0]
    assert np.array_equal(read_dat(tmp_path / "o.dat", H, W), x)


@pytest.mark.parametrize("compress", [False, True])
def test_packed_writer_any_blocks_give_the_save_spikes_file(tmp_path, compress):
    """Blocks of 3 frames of 3x5 pixels (45 bits: the packed bytes straddle blocks) read back
    exactly, compressed or not, and an uncompressed file keeps partial reads."""
    from spikegen.spikes.io import open_spikes

    y = (np.random.default_rng(5).random((11, 3, 5)) < 0.4).astype(np.uint8)
    p = tmp_path / "w.npz"
    with PackedWriter(p, 11, 3, 5, {"note": "x"}, compress=compress) as wr:
        for t0 in range(0, 11, 3):
            wr.write(y[t0:t0 + 3])
    got, meta = load_spikes(p, with_meta=True)
    assert np.array_equal(got, y) and meta["note"] == "x"
    ref = save_spikes(tmp_path / "r.npz", y, note="x", compress=compress)
    assert np.array_equal(load_spikes(ref), got)
    assert open_spikes(p).partial_reads is (not compress)


def test_packed_writer_errors_leave_no_file(tmp_path):
    p = tmp_path / "e.npz"
    w = PackedWriter(p, 4, 2, 2, {})
    w.write(np.zeros((3, 2, 2), np.uint8))
    with pytest.raises(SpikeFileError, match="3 of the 4 frames"):
        w.close()
    w = PackedWriter(p, 2, 2, 2, {})
    with pytest.raises(SpikeFileError, match="more than the 2 frames"):
        w.write(np.zeros((3, 2, 2), np.uint8))
    with pytest.raises(ShapeError, match="frames are 2x3"):
        PackedWriter(p, 2, 2, 2, {}).write(np.zeros((1, 2, 3), np.uint8))
    with pytest.raises(ShapeError, match="binary"):
        PackedWriter(p, 2, 2, 2, {}).write(np.full((1, 2, 2), 3, np.uint8))
    dropped = PackedWriter(p, 2, 2, 2, {})  # never closed: its temporary file goes with it
    dropped.write(np.zeros((1, 2, 2), np.uint8))
    del dropped
    gc.collect()
    assert list(tmp_path.iterdir()) == []
    p.write_bytes(b"keep")
    with pytest.raises(OutputExistsError):
        PackedWriter(p, 1, 1, 1, {})
    assert p.read_bytes() == b"keep"


def test_convert_cli_and_its_one_line_errors(tmp_path, x, capsys):
    dat = write_dat(tmp_path / "a.dat", x)
    geo = ["--height", H, "--width", W]
    code, out, err = run(["convert", dat, *geo, "-o", tmp_path / "o.npz", "--start", 10, "--crop", "0,0,4,8"], capsys)
    assert code == 0, err
    assert "80 frames of 4x8" in out and np.array_equal(load_spikes(tmp_path / "o.npz"), x[10:, :4, :8])
    for argv, text in [
        (["-o", tmp_path / "o.png"], "must be .dat or .npz"),
        (["-o", tmp_path / "p.npz", "--crop", "1,2,3"], "TOP,LEFT,HEIGHT,WIDTH"),
        (["-o", tmp_path / "p.npz", "--crop", "8,0,4,8"], "does not fit"),
        (["-o", dat, "--overwrite"], "is the input"),
        (["-o", tmp_path / "o.npz"], "pass --overwrite"),
    ]:
        code, out, err = run(["convert", dat, *geo, *argv], capsys)
        assert code == 2 and err.startswith("error: ") and text in err, (argv, err)
    assert not (tmp_path / "p.npz").exists()
