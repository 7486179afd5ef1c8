"""Tests of spikegen.data.windows.SpikeWindows: windows of long recordings with bounded memory,
GT pairing by frame index, transforms, and lazy per-worker opening."""

from __future__ import annotations

import pickle
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from spikegen.data import collate_samples
from spikegen.data.windows import SpikeWindows
from spikegen.errors import ShapeError, SpikeFileError
from spikegen.spikes import io as sio
from spikegen.spikes.io import open_spikes, save_spikes, write_dat
from spikegen.spikes.transforms import Compose, RandomCrop, RandomHFlip

T_LONG, H, W = 2000, 64, 64
#: The memory budget of the test: the size of the packed file (1,024,000 bytes), an eighth of its
#: unpacked frames (8.2 MB). Reading windows must stay under half of it; a 32-frame window is
#: 131,072 bytes unpacked.
BUDGET = T_LONG * H * W // 8


def random_stream(t, h=H, w=W, seed=0, rate=0.2):
    return (np.random.default_rng(seed).random((t, h, w)) < rate).astype(np.uint8)


@pytest.fixture(scope="module")
def long_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("long")
    x = random_stream(T_LONG)
    dat = write_dat(d / "long.dat", x)
    npz = save_spikes(d / "long.npz", x, fps=20000)
    assert dat.stat().st_size == BUDGET and npz.stat().st_size > BUDGET
    return x, dat, npz


def peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("which", ["dat", "npz"])
def test_windows_match_the_stream_and_memory_stays_under_budget(long_files, which):
    x, dat, npz = long_files
    path = dat if which == "dat" else npz
    ds = SpikeWindows(path, 32, stride=24, height=H, width=W)
    assert len(ds) == (T_LONG - 32) // 24 + 1
    for i in (0, 1, 40, len(ds) - 1):
        s = ds[i]
        a, b = s["meta"]["window"]
        assert (a, b) == (24 * i, 24 * i + 32) and s["meta"]["centre"] == a + 16
        assert s["spikes"].dtype == torch.uint8 and s["spikes"].shape == (32, H, W)
        assert np.array_equal(s["spikes"].numpy(), x[a:b])
    fresh = SpikeWindows(path, 32, stride=24, height=H, width=W)  # opening happens inside the measure

    def read_many():
        for i in range(0, len(fresh), 7):  # each sample is dropped before the next is read
            fresh[i]

    peak = peak_bytes(read_many)
    assert peak < BUDGET / 2, f"reading windows allocated {peak} bytes"
    # and constructing the dataset reads no frame at all
    assert peak_bytes(lambda: SpikeWindows(path, 32, height=H, width=W)) < 64 << 10


def test_dat_reader_is_asked_for_exactly_the_window(long_files, monkeypatch):
    x, dat, _ = long_files
    calls = []
    orig = sio.DatFile.read_frames

    def spy(self, frames=None, *, workers=None):
        calls.append(frames)
        return orig(self, frames, workers=workers)

    monkeypatch.setattr(sio.DatFile, "read_frames", spy)
    ds = SpikeWindows(dat, 50, stride=50, height=H, width=W)
    assert calls == []  # nothing read on construction
    ds[3]
    ds[17]
    assert calls == [range(150, 200), range(850, 900)]


def test_packed_npz_partial_reader_matches_open_spikes(tmp_path):
    x = random_stream(37, 5, 7, seed=3)  # 35 px per frame: frames start mid-byte
    p = save_spikes(tmp_path / "odd.npz", x)
    ds = SpikeWindows(p, 5, stride=3)
    ref = open_spikes(p)
    for i in range(len(ds)):
        a, b = ds[i]["meta"]["window"]
        assert np.array_equal(ds[i]["spikes"].numpy(), ref.read(a, b))
    # flip override and compressed files (read whole, through open_spikes) agree too
    flipped = SpikeWindows(p, 5, stride=3, flip=True)
    assert np.array_equal(flipped[1]["spikes"].numpy(), x[3:8, ::-1])
    pc = save_spikes(tmp_path / "c.npz", x, compress=True)
    assert np.array_equal(SpikeWindows(pc, 5, stride=3)[2]["spikes"].numpy(), x[6:11])
    plain = tmp_path / "plain.npy"
    np.save(plain, x)
    assert np.array_equal(SpikeWindows(plain, 5)[1]["spikes"].numpy(), x[5:10])


def test_many_recordings_folder_and_lists(tmp_path):
    a, b, c = random_stream(40, 8, 8, 1), random_stream(10, 8, 8, 2), random_stream(25, 8, 8, 3)
    write_dat(tmp_path / "rec2.dat", a)
    write_dat(tmp_path / "rec10.dat", c)
    save_spikes(tmp_path / "rec3.npz", b)  # shorter than a window: no window
    (tmp_path / "notes.txt").write_text("x")
    ds = SpikeWindows(tmp_path, 12, stride=6, height=8, width=8)
    # natural order: rec2 (40 frames: 5 windows), rec3 (0), rec10 (25 frames: 3 windows)
    assert [Path(r.path).name for r in ds.recordings] == ["rec2.dat", "rec3.npz", "rec10.dat"]
    assert len(ds) == 5 + 3
    assert np.array_equal(ds[5]["spikes"].numpy(), c[0:12])
    assert np.array_equal(ds[-1]["spikes"].numpy(), c[12:24])
    batch = collate_samples([ds[0], ds[6]])
    assert batch["spikes"].shape == (2, 12, 8, 8) and batch["clean"] is None
    with pytest.raises(IndexError):
        ds[8]
    with pytest.raises(SpikeFileError, match="no window"):
        SpikeWindows(tmp_path / "rec3.npz", 12)
    with pytest.raises(SpikeFileError, match="does not exist"):
        SpikeWindows(tmp_path / "missing.dat", 4)
    with pytest.raises(SpikeFileError, match="whole number"):
        SpikeWindows(tmp_path / "rec2.dat", 4, height=7, width=10)
    with pytest.raises(ShapeError, match="window"):
        SpikeWindows(tmp_path / "rec2.dat", 0, height=8, width=8)


def write_gt(folder: Path, frames, h=8, w=8) -> dict[int, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    imgs = {}
    for k in frames:
        rng = np.random.default_rng(k)
        arr = (rng.random((h, w, 3)) * 255).astype(np.uint8)
        Image.fromarray(arr).save(folder / f"frame_{k:05d}.png")
        imgs[k] = arr
    return imgs


def test_gt_folder_pairs_by_centre_frame(tmp_path):
    x = random_stream(100, 8, 8, 4)
    write_dat(tmp_path / "s.dat", x)
    imgs = write_gt(tmp_path / "gt", [10, 30, 50, 97])
    ds = SpikeWindows(tmp_path / "s.dat", 9, stride=1, gt=tmp_path / "gt", height=8, width=8)
    # one window centred on each GT frame whose window fits (97 + 4 > 99: left out)
    assert [ds[i]["meta"]["centre"] for i in range(len(ds))] == [10, 30, 50]
    s = ds[1]
    assert s["meta"]["window"] == [26, 35] and s["meta"]["gt"].endswith("frame_00030.png")
    assert np.array_equal(s["spikes"].numpy(), x[26:35])
    assert np.allclose(s["clean"].permute(1, 2, 0).numpy() * 255, imgs[30], atol=0.5)
    # offsets: images numbered from 1 name frame k - 1
    ds1 = SpikeWindows(tmp_path / "s.dat", 9, stride=1, gt=tmp_path / "gt", gt_offset=-1, height=8, width=8)
    assert [ds1[i]["meta"]["centre"] for i in range(len(ds1))] == [9, 29, 49]
    # gray GT on 3 channels
    g = SpikeWindows(tmp_path / "s.dat", 9, stride=1, gt=tmp_path / "gt", color=False, height=8, width=8)[0]["clean"]
    assert g.shape == (3, 8, 8) and torch.equal(g[0], g[2])


def test_gt_callable_and_per_recording_subfolders(tmp_path):
    write_dat(tmp_path / "a.dat", random_stream(60, 8, 8, 5))
    write_dat(tmp_path / "b.dat", random_stream(60, 8, 8, 6))
    write_gt(tmp_path / "gt" / "a", [20])
    write_gt(tmp_path / "gt" / "b", [20, 40])
    ds = SpikeWindows([tmp_path / "a.dat", tmp_path / "b.dat"], 10, stride=5, gt=tmp_path / "gt", height=8, width=8)
    assert [(Path(s["meta"]["source"]).name, s["meta"]["centre"]) for s in (ds[0], ds[1], ds[2])] == [
        ("a.dat", 20), ("b.dat", 20), ("b.dat", 40)]
    # a callable of the frame index only, returning paths that may not exist
    one = SpikeWindows(tmp_path / "b.dat", 10, stride=5, gt=lambda k: tmp_path / "gt" / "b" / f"frame_{k:05d}.png",
                       height=8, width=8)
    assert len(one) == 2 and one[1]["meta"]["centre"] == 40
    # a callable of (frame, source)
    two = SpikeWindows([tmp_path / "a.dat", tmp_path / "b.dat"], 10, stride=5,
                       gt=lambda k, src: tmp_path / "gt" / src.stem / f"frame_{k:05d}.png", height=8, width=8)
    assert len(two) == 3
    with pytest.raises(SpikeFileError, match="ground-truth"):
        SpikeWindows(tmp_path / "a.dat", 10, gt=tmp_path / "nope", height=8, width=8)
    write_gt(tmp_path / "big", [20], h=16, w=16)
    with pytest.raises(ShapeError, match="16x16"):
        SpikeWindows(tmp_path / "a.dat", 10, stride=5, gt=tmp_path / "big", height=8, width=8)[0]


def test_transform_is_reproducible_and_keeps_gt_registered(tmp_path):
    # spikes fire where the GT red channel is bright, in every frame: the geometry can be checked
    h = w = 16
    write_gt(tmp_path / "gt", [8], h=h, w=w)
    red = np.asarray(Image.open(tmp_path / "gt" / "frame_00008.png"))[..., 0] > 127
    write_dat(tmp_path / "s.dat", np.repeat(red[None].astype(np.uint8), 20, 0))
    aug = Compose([RandomCrop(10), RandomHFlip()])
    ds = SpikeWindows(tmp_path / "s.dat", 16, stride=1, gt=tmp_path / "gt", transform=aug, seed=3, height=h, width=w)
    outs = []
    for epoch in range(4):
        ds.set_epoch(epoch)
        s = ds[0]
        assert s["spikes"].shape == (16, 10, 10) and s["clean"].shape == (3, 10, 10)
        assert torch.equal(s["spikes"][0].bool(), s["clean"][0] > 0.5)  # still registered
        assert torch.equal(ds[0]["spikes"], s["spikes"])  # same (seed, epoch, index): same sample
        outs.append(s["spikes"])
    assert any(not torch.equal(outs[0], o) for o in outs[1:])  # epochs draw new crops
    # a plain callable without GT
    plain = SpikeWindows(tmp_path / "s.dat", 4, transform=lambda s: s[:, :2], height=h, width=w)
    assert plain[0]["spikes"].shape == (4, 2, w)


def test_lazy_open_and_pickling_carry_no_data(tmp_path):
    x = random_stream(400, 16, 16, 7)
    p = save_spikes(tmp_path / "c.npz", x, compress=True)  # a reader that loads the whole file
    ds = SpikeWindows(p, 20)
    assert ds._readers == {}
    ds[0]
    assert len(ds._readers) == 1
    blob = pickle.dumps(ds)
    assert len(blob) < 8 << 10  # no frames or loaded arrays inside
    clone = pickle.loads(blob)
    assert clone._readers == {} and torch.equal(clone[3]["spikes"], ds[3]["spikes"])


def test_dataloader_workers_read_the_same_windows(long_files):
    x, dat, _ = long_files
    ds = SpikeWindows(dat, 16, stride=100, height=H, width=W)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, collate_fn=collate_samples)
    got = torch.cat([b["spikes"] for b in loader])
    assert got.shape == (len(ds), 16, H, W)
    for i in range(len(ds)):
        assert np.array_equal(got[i].numpy(), x[100 * i : 100 * i + 16])
