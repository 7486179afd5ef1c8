"""``spikegen reconstruct --method blend``: the classic TFP/TFI inverse-variance blend of
``spikegen eval reconstruct`` (:func:`spikegen.data.motion.tfp_tfi_blend`), over the window
around each centre, shifted inwards at the stream's ends; one frame and a streamed ``--all``
give the same images (for TFI and TFP too, at any ``--vth`` / ``--scale``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spikegen.data.motion import tfp_tfi_blend
from spikegen.errors import SpikeGenError
from spikegen.image import load_image
from spikegen.spikes.cfa import demosaic_bilinear
from spikegen.spikes.io import write_dat
from spikegen.tasks import reconstruct as rec

T, H, W = 300, 8, 16
DAT = dict(height=H, width=W)
Q = 0.5 / 255 + 1e-6  # an 8-bit PNG's rounding


@pytest.fixture
def x() -> np.ndarray:
    # the rate grows with the frame index and across the columns: sparse and dense pixels
    rate = np.linspace(0.02, 0.6, T)[:, None, None] * np.linspace(0.3, 1.0, W)[None, None, :]
    return (np.random.default_rng(1).random((T, H, W)) < rate).astype(np.uint8)


@pytest.fixture
def dat(tmp_path, x):
    return write_dat(tmp_path / "s.dat", x)


def expected(x: np.ndarray, c: int, window: int, scale: float = 1.0) -> np.ndarray:
    lo = min(max(c - window // 2, 0), max(len(x) - window, 0))
    hi = min(lo + window, len(x))
    return tfp_tfi_blend(torch.from_numpy(x[lo:hi]), c - lo, scale).numpy()


@pytest.mark.parametrize("frame, window", [(150, 61), (3, 61), (298, 61), (120, 25)])
def test_one_frame_is_the_eval_blend_of_its_window(dat, x, tmp_path, frame, window):
    out = rec.reconstruct_file(dat, tmp_path / "b.png", method="blend", frame=frame, window=window, **DAT)
    got = load_image(out, gray=True)[0].numpy()
    want = expected(x, frame, window)
    assert np.abs(got - want).max() <= Q
    assert 0.02 < want.mean() < 0.98 and want.std() > 0.02  # not a blank or saturated frame


def test_default_window_is_61_and_scale_multiplies(dat, x, tmp_path):
    a = rec.reconstruct_file(dat, tmp_path / "a.png", method="blend", frame=200, **DAT)
    assert np.abs(load_image(a, gray=True)[0].numpy() - expected(x, 200, 61)).max() <= Q
    b = rec.reconstruct_file(dat, tmp_path / "b.png", method="blend", frame=200, scale=1.5, **DAT)
    assert np.abs(load_image(b, gray=True)[0].numpy() - expected(x, 200, 61, 1.5)).max() <= Q


def test_all_frames_streamed_in_spans_equal_the_one_frame_outputs(dat, x, tmp_path, monkeypatch):
    """Frames are read a span at a time (here 40 frames, so windows cross span ends): every
    output equals the blend of its own window."""
    monkeypatch.setattr(rec, "_BLEND_SPAN", 40)
    reads = []
    real = rec._frames_blend

    def spy(src, *a, **k):
        orig = src.read
        src.read = lambda lo, hi: reads.append((lo, hi)) or orig(lo, hi)
        return real(src, *a, **k)

    monkeypatch.setattr(rec, "_frames_blend", spy)
    folder = rec.reconstruct_file(dat, tmp_path / "all", method="blend", all_frames=True, stride=7,
                                  window=21, progress=False, **DAT)
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"frame_{t:06d}.png" for t in range(0, T, 7)]
    for t in (0, 7, 35, 147, 294):
        got = load_image(folder / f"frame_{t:06d}.png", gray=True)[0].numpy()
        assert np.abs(got - expected(x, t, 21)).max() <= Q, t
    assert len(reads) > 5 and all(hi - lo <= 40 for lo, hi in reads)  # bounded spans


def test_a_short_stream_uses_all_of_it_and_a_long_window_is_an_error(tmp_path, x):
    short = write_dat(tmp_path / "short.dat", x[:40])
    out = rec.reconstruct_file(short, tmp_path / "s.png", method="blend", **DAT)  # default 61 > 40
    assert np.abs(load_image(out, gray=True)[0].numpy() - expected(x[:40], 20, 40)).max() <= Q
    with pytest.raises(SpikeGenError, match="--window 50"):
        rec.reconstruct_file(short, tmp_path / "l.png", method="blend", window=50, **DAT)


def test_bayer_blend_is_the_demosaicked_mosaic_blend(dat, x, tmp_path):
    out = rec.reconstruct_file(dat, tmp_path / "c.png", method="blend", frame=150, cfa="RGGB", **DAT)
    got = load_image(out)
    want = demosaic_bilinear(torch.from_numpy(expected(x, 150, 61)), "RGGB").clamp(0, 1)
    assert got.shape == (3, H, W) and (got - want).abs().max() <= Q


@pytest.mark.parametrize("method, kw", [("tfi", dict(v_th=0.5)), ("tfi", dict(v_th=2.0)), ("tfp", dict(scale=1.7))])
def test_one_frame_and_all_frames_agree_for_tfp_and_tfi(dat, tmp_path, method, kw):
    """TFI is ``V_th / interval`` in both (``--all`` divided by ``V_th`` before, so ``--vth``
    changed only the one-frame image)."""
    one = rec.reconstruct_file(dat, tmp_path / "one.png", method=method, frame=140, window=21, **kw, **DAT)
    folder = rec.reconstruct_file(dat, tmp_path / "all", method=method, all_frames=True, stride=20, window=21,
                                  progress=False, **kw, **DAT)
    a, b = load_image(one, gray=True), load_image(folder / "frame_000140.png", gray=True)
    assert torch.equal(a, b) and 0.02 < float(a.mean()) < 0.98


@pytest.mark.parametrize("method", ["tfp", "tfi", "blend"])
def test_scale_auto_maps_the_99_5th_percentile_to_white_and_is_fixed_for_all_frames(dat, x, tmp_path, method):
    """``--scale auto`` on a dim stream (rates up to 0.36): the gain makes the one frame's
    99.5th percentile white, and ``--all`` uses the middle frame's gain for every frame."""
    from spikegen.tasks.reconstruct import _classic_frame, auto_gain
    from spikegen.spikes.io import open_spikes

    dim = write_dat(tmp_path / "dim.dat", (np.random.default_rng(3).random((T, H, W)) < 0.6 * x).astype(np.uint8))
    src = open_spikes(dim, **DAT)
    info: dict = {}
    one = rec.reconstruct_file(dim, tmp_path / "a.png", method=method, frame=60, window=21, scale="auto", info=info, **DAT)
    raw = _classic_frame(src, method, 21, 60, 1.0, 1.0)
    g = auto_gain(raw)
    assert g > 1.5 and info["scale"] == pytest.approx(g)
    got = load_image(one, gray=True)[0].numpy()
    assert np.abs(got - (raw * g).clamp(0, 1).numpy()).max() <= Q
    assert g == pytest.approx(1 / np.quantile(raw.numpy(), 0.995), rel=1e-5)
    assert (got >= 254 / 255).any() and got.mean() > raw.numpy().mean() * 1.4
    info_all: dict = {}
    folder = rec.reconstruct_file(dim, tmp_path / "all", method=method, all_frames=True, stride=50, window=21,
                                  scale="auto", info=info_all, progress=False, **DAT)
    g_mid = auto_gain(_classic_frame(src, method, 21, T // 2, 1.0, 1.0))
    assert info_all["scale"] == pytest.approx(g_mid)
    for t in (0, 100, 250):
        want = (_classic_frame(src, method, 21, t, 1.0, 1.0) * g_mid).clamp(0, 1).numpy()
        assert np.abs(load_image(folder / f"frame_{t:06d}.png", gray=True)[0].numpy() - want).max() <= 1.5 / 255


def test_scale_errors(dat, tmp_path):
    with pytest.raises(SpikeGenError, match="'auto'"):
        rec.reconstruct_file(dat, tmp_path / "e.png", method="tfp", scale="bright", **DAT)
    with pytest.raises(SpikeGenError, match="> 0"):
        rec.reconstruct_file(dat, tmp_path / "e.png", method="tfp", scale=0.0, **DAT)
    with pytest.raises(SpikeGenError, match="auto works with"):
        rec.reconstruct_file(dat, tmp_path / "e.png", method="spikegen", scale="auto", **DAT)
