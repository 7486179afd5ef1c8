from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from spikegen.data import GoproSpikeDataset, SpikeFolderPairs, SREDSDataset, collate_samples
from spikegen.errors import ShapeError, SpikeFileError
from spikegen.spikes.io import write_dat as _write_dat


def write_dat(path: Path, x: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return _write_dat(path, x)


def _spikes(t: int, h: int, w: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random((t, h, w)) < 0.3).astype(np.uint8)


def _gray_png(png, path: Path, h: int, w: int, seed: int) -> np.ndarray:
    g = np.random.default_rng(seed).random((h, w)).astype(np.float32)
    png(path, g)
    return np.round(g * 255) / 255


# ---------------------------------------------------------------- Spk2ImgNet / Spike-Zoo


def test_spike_folder_pairs_window_centred_on_key(tmp_path: Path, png):
    root = tmp_path / "reds"
    x = _spikes(11, 8, 16, 0)
    write_dat(root / "spike" / "a_key_id6.dat", x)  # 1-based frame 6 -> index 5
    gt = _gray_png(png, root / "gt" / "a_key_id6.png", 8, 16, 1)
    y = _spikes(9, 8, 16, 2)
    write_dat(root / "spike" / "b.dat", y)  # no key: the middle frame (4)
    _gray_png(png, root / "gt" / "b.png", 8, 16, 3)
    ds = SpikeFolderPairs(root, window=5)
    assert len(ds) == 2 and (ds.height, ds.width) == (8, 16)  # size taken from the GT image
    s = ds[0]
    assert torch.equal(s["spikes"], torch.from_numpy(x[3:8]))
    assert s["meta"]["centre"] == 5 and s["meta"]["window"] == [3, 8]
    assert s["clean"].shape == (3, 8, 16) and s["blurry"] is None
    assert torch.allclose(s["clean"][0], torch.from_numpy(gt).float(), atol=1 / 255)
    assert torch.equal(s["clean"][0], s["clean"][2])  # gray, repeated on 3 channels
    assert torch.equal(ds[1]["spikes"], torch.from_numpy(y[2:7]))
    b = collate_samples([ds[0], ds[1]])
    assert b["spikes"].shape == (2, 5, 8, 16) and b["blurry"] is None


def test_spike_folder_pairs_split_crop_and_errors(tmp_path: Path, png):
    root = tmp_path / "zoo"
    x = _spikes(7, 8, 8, 4)
    write_dat(root / "train" / "spike" / "s.dat", x)
    _gray_png(png, root / "train" / "gt" / "s.png", 8, 8, 5)
    ds = SpikeFolderPairs(root, "train", window=3, size=4, augment=True, seed=1)
    s = ds[0]
    top, left, h, w = s["meta"]["crop"]
    ref = torch.from_numpy(x[2:5, top: top + h, left: left + w])
    assert torch.equal(s["spikes"], ref.flip(-1) if s["meta"]["flip"] else ref)
    with pytest.raises(SpikeFileError, match="does not fit"):
        SpikeFolderPairs(root, "train", window=9)
    with pytest.raises(SpikeFileError, match="height/width"):
        SpikeFolderPairs(root, "train", window=3, height=8, width=16)
    write_dat(root / "train" / "spike" / "orphan.dat", x)
    with pytest.raises(SpikeFileError, match="orphan"):
        SpikeFolderPairs(root, "train", window=3)
    with pytest.raises(SpikeFileError, match="missing"):
        SpikeFolderPairs(root, "test")


def test_spike_folder_pairs_on_the_shared_spk2imgnet_files(shared_data: Path):
    ds = SpikeFolderPairs(shared_data / "spikes" / "synthetic_reds", window=61)
    assert len(ds) == 2
    s = ds[0]
    assert s["spikes"].shape == (61, 250, 400) and s["meta"]["window"] == [120, 181]
    # rows flipped the PKU way: the spike rate around the key frame matches the GT image
    rate = s["spikes"][25:36].float().mean(0).flatten()
    corr = torch.corrcoef(torch.stack([rate, s["clean"][0].flatten()]))[0, 1]
    assert corr > 0.9


# ---------------------------------------------------------------- STIR's SREDS


def _sreds_tree(root: Path, png, *, split: str, frames_per_file: int, n_files: int = 5, hw=(8, 8)) -> np.ndarray:
    sim = "interp_20_alpha_0.40"
    if split == "train":
        sdir, idir = root / "crop_mini/spike/train" / sim / "000", root / "crop_mini/image/train/train_orig/000"
    else:
        sdir, idir = root / "spike/val" / sim / "000", root / "imgs/val/val_orig/000"
    chunks = []
    for k in range(n_files):
        x = _spikes(frames_per_file, *hw, 10 + k)
        write_dat(sdir / f"{k:08d}.dat", x)
        _gray_png(png, idir / f"{k:08d}.png", *hw, 20 + k)
        chunks.append(x)
    return np.concatenate(chunks)


def test_sreds_chunks_read_as_one_stream(tmp_path: Path, png):
    stream = _sreds_tree(tmp_path, png, split="train", frames_per_file=4)
    ds = SREDSDataset(tmp_path, "train", window=5)
    # GT of file k at frame 4k; windows [4k-2, 4k+3) must fit in 20 frames: k = 1..4
    assert len(ds) == 4 and (ds.height, ds.width) == (8, 8)
    for i, k in enumerate(range(1, 5)):
        s = ds[i]
        assert torch.equal(s["spikes"], torch.from_numpy(stream[4 * k - 2: 4 * k + 3])), k
        assert s["meta"]["gt"].endswith(f"{k:08d}.png") and s["clean"].shape == (3, 8, 8)
        assert s["blurry"] is None


def test_sreds_full_streams_and_val_split(tmp_path: Path, png):
    stream = _sreds_tree(tmp_path, png, split="val", frames_per_file=9, n_files=2, hw=(8, 16))
    ds = SREDSDataset(tmp_path, "test", window=5)
    assert len(ds) == 2
    assert torch.equal(ds[1]["spikes"], torch.from_numpy(stream[9 + 2: 9 + 7]))  # centred in its own file
    assert ds[1]["spikes"].shape == (5, 8, 16)
    with pytest.raises(SpikeFileError, match="crop_mini"):
        SREDSDataset(tmp_path, "train")
    with pytest.raises(SpikeFileError, match="full 61-frame"):
        SREDSDataset(tmp_path, "val", window=61)


# ---------------------------------------------------------------- S-SDM's GOPRO


def test_gopro_spike_dataset(tmp_path: Path, png, textured):
    root = tmp_path / "GOPRO"
    seq = "GOPR0372_07_00"
    x = _spikes(10, 4, 8, 7)
    write_dat(root / "train" / "spike_data" / seq / "000006.dat", x)  # a quarter of the 16x32 images
    png(root / "train" / "blur_data" / seq / "000006.png", textured(16, 32, 0))
    png(root / "train" / "sharp_data" / seq / "000006.png", textured(16, 32, 1))
    ds = GoproSpikeDataset(root, "train")
    assert len(ds) == 1 and ds.ratio == 4
    s = ds[0]
    assert s["blurry"].shape == (3, 16, 32) and s["clean"].shape == (3, 16, 32)
    up = torch.from_numpy(x).repeat_interleave(4, -2).repeat_interleave(4, -1)
    assert torch.equal(s["spikes"], up)
    native = GoproSpikeDataset(root, "train", match_size=False, spike_frames=4)[0]
    assert torch.equal(native["spikes"], torch.from_numpy(x[3:7]))
    crop = GoproSpikeDataset(root, "train", size=8, augment=True, seed=3)[0]
    top, left, h, w = crop["meta"]["crop"]
    assert top % 4 == 0 and left % 4 == 0 and crop["spikes"].shape == (10, 8, 8)
    ref = up[:, top: top + h, left: left + w]
    assert torch.equal(crop["spikes"], ref.flip(-1) if crop["meta"]["flip"] else ref)
    ref_b = s["blurry"][:, top: top + h, left: left + w]
    assert torch.equal(crop["blurry"], ref_b.flip(-1) if crop["meta"]["flip"] else ref_b)
    with pytest.raises(SpikeFileError, match="missing"):
        GoproSpikeDataset(root, "test")
    with pytest.raises(ShapeError, match="multiple of 4"):
        GoproSpikeDataset(root, "train", size=6)
