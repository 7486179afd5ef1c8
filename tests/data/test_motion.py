"""ReconstructionPairs: moving-scene "TFP & Spike" samples (shapes, the exact centre frame,
the firing-rate range, the pseudo-frame's scale, motion, seeding, the validation split)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from spikegen.data import ReconstructionPairs, collate_samples
from spikegen.degrade import rgb_to_gray
from spikegen.errors import SpikeFileError
from spikegen.train.stages import build_dataset



@pytest.fixture
def clip(tmp_path: Path, png, textured) -> Path:
    """A frame folder of 6 frames of a disc moving right by 3 pixels a frame."""
    root = tmp_path / "video" / "clip"
    for i in range(6):
        img = textured(48, 64, 7)
        yy, xx = torch.meshgrid(torch.arange(48), torch.arange(64), indexing="ij")
        disc = ((yy - 24) ** 2 + (xx - 10 - 3 * i) ** 2 < 64).numpy()
        img[disc] = 1.0
        png(root / f"{i:03d}.png", img)
    return root.parent


def test_shapes_and_gray_target(image_tree: Path):
    ds = ReconstructionPairs(image_tree, 32, window=(21, 31), frames=8, seed=3)
    s = ds[0]
    assert s["clean"].shape == (3, 32, 32) and s["blurry"].shape == (3, 32, 32)
    assert s["spikes"].shape == (8, 32, 32) and s["spikes"].dtype == torch.uint8
    assert set(s["spikes"].unique().tolist()) <= {0, 1}
    assert torch.equal(s["clean"][0], s["clean"][1]) and torch.equal(s["clean"][0], s["clean"][2])  # gray
    assert 21 <= s["meta"]["window"] <= 31 and 0.05 <= s["meta"]["rate"] <= 0.9
    batch = collate_samples([ds[0], ds[1]])
    assert batch["spikes"].shape == (2, 8, 32, 32)


def test_centre_frame_is_an_exact_crop_of_the_photo(tmp_path: Path, png, textured):
    img = textured(64, 64, 5)
    png(tmp_path / "a.png", img)
    ds = ReconstructionPairs(tmp_path, 32, window=9, frames=4, max_shift=6, max_zoom=0.1, scale=None, seed=1)
    s = ds[0]
    from spikegen.image import load_image

    gray = rgb_to_gray(load_image(tmp_path / "a.png")[None])[0, 0]
    top, left, bh, bw = s["meta"]["crop"]
    m = (bh - 32) // 2
    want = gray[top + m: top + m + 32, left + m: left + m + 32]
    if s["meta"]["flip"]:
        want = gray[top: top + bh, left: left + bw].flip(-1)[m: m + 32, m: m + 32]
    assert torch.allclose(s["clean"][0], want, atol=1e-6)


def test_pseudo_frame_is_tfp_at_its_intensity_scale(tmp_path: Path, png, textured):
    png(tmp_path / "flat.png", torch.full((40, 40, 3), 0.5).numpy())
    for rate in (0.1, 0.8):
        ds = ReconstructionPairs(tmp_path, 32, window=61, rate=rate, max_shift=0, max_zoom=0, seed=2)
        s = ds[0]
        # a gray-0.5 pixel fires at 0.5 * rate: the pseudo-frame divides that back out
        assert abs(s["blurry"].mean().item() - 0.5) < 0.05
        assert abs(s["spikes"].float().mean().item() - 0.5 * rate) < 0.1 * rate + 0.02


def test_pseudo_frame_window_and_tfi_blend(tmp_path: Path, png, image_tree: Path):
    """``tfp_window`` narrows the TFP to centred frames of the window (widened on sparse
    windows by ``tfp_min_spikes``), ``tfi`` blends in the TFI of the whole window (a fixed
    weight, or per pixel by inverse variance: ``"ivw"``), at the intensity scale: the frame
    :func:`spikegen.tasks.deblur.pseudo_frame` gives the weights at run time, for a window
    centred the dataset's way."""
    from types import SimpleNamespace

    from spikegen.data.motion import blended_pseudo_frame
    from spikegen.spikes.reconstruct import tfi, tfp
    from spikegen.tasks.deblur import pseudo_frame

    s = (torch.rand(41, 12, 12, generator=torch.Generator().manual_seed(3)) < torch.linspace(0.03, 0.9, 12)).to(torch.uint8)
    rate, ti = tfp(s, 21, centers=[20])[0], tfi(s, v_th=1.0, centers=[20], max_half_window=20)[0]
    assert torch.allclose(blended_pseudo_frame(s, 21, 1.5, 0.7), ((0.3 * rate + 0.7 * ti) * 1.5).clamp(0, 1), atol=1e-6)
    assert torch.equal(blended_pseudo_frame(s, 21, 1.5, 0), tfp(s, 21, centers=[20], scale=1.5)[0])
    b = 1 / (1 + (21 * rate ** 2) ** 2)
    got = blended_pseudo_frame(s, 21, 1.5, "ivw")
    assert torch.allclose(got, (((1 - b) * rate + b * ti) * 1.5).clamp(0, 1), atol=1e-6)
    assert float(b[:, 0].min()) > 0.95 and float(b[:, -1].max()) < 0.05  # sparse: the TFI; dense: the TFP
    model = SimpleNamespace(config=SimpleNamespace(tfp_window=21, tfp_min_spikes=0.0, pseudo_tfi="ivw"))
    frame, n = pseudo_frame(model, s, 20, scale=1.5)
    assert n == 21 and torch.allclose(frame[0], got, atol=1e-6)  # run time = training
    png(tmp_path / "flat.png", torch.full((40, 40, 3), 0.5).numpy())
    kw = dict(window=(31, 41), frames=8, max_shift=0, max_zoom=0, seed=7)
    for r in (0.1, 0.8):  # at its intensity scale: a flat 0.5 scene stays about 0.5
        x = ReconstructionPairs(tmp_path, 32, rate=r, tfp_window=(15, 21), tfp_min_spikes=2.0, tfi="ivw", **kw)[0]
        assert abs(x["blurry"].mean().item() - 0.5) < 0.06
        m = x["meta"]
        if r == 0.8:
            assert 15 <= m["tfp_window"] <= 21 and m["tfi"] == "ivw"
        else:  # 0.05 spikes a frame: 2 spikes need 40 frames, widened up to the whole window
            assert m["tfp_window"] == m["window"]
    plain = ReconstructionPairs(image_tree, 32, window=(31, 41), seed=7)[0]
    blend = ReconstructionPairs(image_tree, 32, window=(31, 41), seed=7, tfp_window=(15, 21), tfi=0.7)[0]
    assert torch.equal(plain["clean"], blend["clean"]) and torch.equal(plain["spikes"], blend["spikes"])
    assert not torch.equal(plain["blurry"], blend["blurry"])
    for bad in (1.5, "mean", None):
        with pytest.raises(ValueError, match="TFI weight"):
            ReconstructionPairs(image_tree, 32, tfi=bad)


def test_rates_are_drawn_log_uniformly_over_the_range(image_tree: Path):
    ds = ReconstructionPairs(image_tree, 24, window=9, frames=4, rate=(0.05, 0.9), length=200, seed=4)
    logs = [math.log(ds[i]["meta"]["rate"]) for i in range(200)]
    assert min(logs) >= math.log(0.05) - 1e-9 and max(logs) <= math.log(0.9) + 1e-9
    mid = (math.log(0.05) + math.log(0.9)) / 2
    below = sum(x < mid for x in logs)
    assert 60 < below < 140  # log-uniform: about half below the log-midpoint (uniform: ~10 %)


def test_photos_move_over_the_window(tmp_path: Path, png, textured):
    png(tmp_path / "a.png", textured(96, 96, 8))
    still = ReconstructionPairs(tmp_path, 48, window=61, rate=0.9, max_shift=0, max_zoom=0, seed=5)
    moving = ReconstructionPairs(tmp_path, 48, window=61, rate=0.9, max_shift=24, max_zoom=0, seed=5)
    # Motion blurs the long-window TFP relative to the sharp centre frame.
    err = [(d[0]["blurry"][0] - d[0]["clean"][0]).abs().mean().item() for d in (still, moving)]
    assert moving[0]["meta"]["shift"] > 1.0
    assert err[1] > err[0] * 1.2


def test_video_source_target_is_an_original_frame(clip: Path):
    ds = ReconstructionPairs(clip, 32, source="video", window=(15, 21), frames=8, max_span=2.0, seed=6)
    assert len(ds) == 6
    for i in range(len(ds)):
        s = ds[i]
        assert s["spikes"].shape == (8, 32, 32)
        assert 0 <= s["meta"]["frame_index"] < 6 and s["meta"]["span"] <= 2.0
    from spikegen.image import load_image

    s = ds[2]
    k = s["meta"]["frame_index"]
    top, left, h, w = s["meta"]["crop"]
    g = rgb_to_gray(load_image(sorted((clip / "clip").iterdir())[k])[None])[0, 0, top: top + h, left: left + w]
    if s["meta"]["flip"]:
        g = g.flip(-1)
    assert torch.allclose(s["clean"][0], g, atol=1e-6)


def test_seeded_and_epoch_dependent(image_tree: Path):
    a = ReconstructionPairs(image_tree, 24, window=9, frames=4, seed=9)
    b = ReconstructionPairs(image_tree, 24, window=9, frames=4, seed=9)
    assert torch.equal(a[1]["spikes"], b[1]["spikes"]) and a[1]["meta"] == b[1]["meta"]
    b.set_epoch(1)
    assert not torch.equal(a[1]["spikes"], b[1]["spikes"])


def test_validation_split_and_bad_arguments(image_tree: Path, tmp_path: Path):
    ds = ReconstructionPairs(image_tree, 24, window=9, frames=4, exclude=["mcmaster18"])
    assert not any("mcmaster18" in str(p) for p in ds.images)
    with pytest.raises(ValueError, match="frames"):
        ReconstructionPairs(image_tree, 24, window=(5, 9), frames=8)
    with pytest.raises(ValueError, match="at most 1"):
        ReconstructionPairs(image_tree, 24, window=9, frames=4, rate=(0.1, 1.5))
    with pytest.raises(ValueError, match="source"):
        ReconstructionPairs(image_tree, 24, source="audio")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpikeFileError):
        ReconstructionPairs(tmp_path / "empty", 24)


def test_training_config_builds_it(image_tree: Path):
    ds = build_dataset({"kind": "reconstruction", "root": str(image_tree), "size": 24, "window": 9, "frames": 4}, 0)
    assert isinstance(ds, ReconstructionPairs) and ds[0]["spikes"].shape == (4, 24, 24)
