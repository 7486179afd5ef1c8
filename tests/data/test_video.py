from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from spikegen.data import VideoPairs, collate_samples
from spikegen.errors import SpikeFileError
from spikegen.image import load_image


@pytest.fixture
def clip(tmp_path: Path, png) -> Path:
    """9 frames 40x48 of a square moving right by 2 px per frame."""
    root = tmp_path / "clips" / "moving"
    for t in range(9):
        img = np.full((40, 48, 3), 0.2, np.float32)
        img[10:30, 4 + 2 * t: 16 + 2 * t] = [0.9, 0.6, 0.3]
        png(root / f"f{t}.png", img)  # natural order: f2 before f10 is not an issue here
    return root


def _frames(folder: Path) -> torch.Tensor:
    return torch.stack([load_image(p) for p in sorted(folder.glob("*.png"))])


def test_window_mean_middle_frame_and_spikes(clip: Path):
    ds = VideoPairs(clip, 32, n_blur=3, augment=False)
    assert len(ds) == 7  # centres 1..7
    f = _frames(clip)
    s = ds[2]  # centre frame 3
    top, left, h, w = s["meta"]["crop"]
    assert (h, w) == (32, 32) and s["meta"]["frame"] == "f3.png" and s["meta"]["frames"] == [2, 4]
    crop = f[:, :, top: top + h, left: left + w]
    assert torch.allclose(s["clean"], crop[3])
    assert torch.allclose(s["blurry"], crop[2:5].mean(0), atol=1e-6)
    assert s["spikes"].shape == (3, 32, 32) and s["spikes"].dtype == torch.uint8
    assert set(s["spikes"].unique().tolist()) <= {0, 1}


def test_interpolation_inserts_linear_frames(clip: Path):
    ds = VideoPairs(clip, 32, n_blur=5, interp=2, augment=False)
    assert len(ds) == 7  # one original frame on each side is enough for 5 frames at interp 2
    f = _frames(clip)
    s = ds[0]  # centre frame 1
    top, left, h, w = s["meta"]["crop"]
    c = f[:, :, top: top + h, left: left + w]
    window = torch.stack([c[0], (c[0] + c[1]) / 2, c[1], (c[1] + c[2]) / 2, c[2]])
    assert torch.allclose(s["blurry"], window.mean(0), atol=1e-6)
    assert torch.allclose(s["clean"], c[1])
    assert s["spikes"].shape[0] == 5


def test_spike_frames_resampled_and_batches(clip: Path):
    ds = VideoPairs(clip.parent, 24, n_blur=3, spike_frames=8, v_th=(1.0, 2.0), seed=1)
    s = ds[0]
    assert s["spikes"].shape == (8, 24, 24) and 1.0 <= s["meta"]["v_th"] <= 2.0
    b = collate_samples([ds[i] for i in range(3)])
    assert b["spikes"].shape == (3, 8, 24, 24) and b["clean"].shape == (3, 3, 24, 24)


def test_seeded_per_sample(clip: Path):
    a, b = VideoPairs(clip, 24, n_blur=3, seed=5), VideoPairs(clip, 24, n_blur=3, seed=5)
    for k in ("clean", "blurry", "spikes"):
        assert torch.equal(a[3][k], b[3][k])
    a.set_epoch(1)
    assert not torch.equal(a[3]["spikes"], b[3]["spikes"])


def test_video_file(tmp_path: Path):
    from spikegen.image import save_video

    frames = torch.zeros(8, 3, 32, 32)
    for t in range(8):
        frames[t, :, 8:24, 2 + 2 * t: 10 + 2 * t] = 0.8
    path = save_video(tmp_path / "clip.mp4", frames, fps=10)
    ds = VideoPairs(path, 32, n_blur=3)
    assert len(ds) == 6
    s = ds[0]
    assert s["clean"].shape == (3, 32, 32) and s["spikes"].shape == (3, 32, 32)
    assert s["meta"]["frame"] == 1
    # folder of videos
    assert len(VideoPairs(tmp_path, 32, n_blur=3)) == 6


def test_shared_davis_clip(shared_data: Path):
    ds = VideoPairs(shared_data / "video" / "davis_tennis", 64, n_blur=7)
    assert len(ds) == 70 - 6
    s = ds[10]
    assert s["clean"].shape == (3, 64, 64) and s["spikes"].shape == (7, 64, 64)
    assert s["meta"]["resize"] == 1.0  # 432x240 frames are larger than the 64 crop


def test_errors(tmp_path: Path, clip: Path):
    with pytest.raises(ValueError, match="odd"):
        VideoPairs(clip, 32, n_blur=4)
    with pytest.raises(SpikeFileError, match="long enough"):
        VideoPairs(clip, 32, n_blur=11)
    (tmp_path / "none").mkdir()
    with pytest.raises(SpikeFileError, match="no frame folders"):
        VideoPairs(tmp_path / "none", 32)
