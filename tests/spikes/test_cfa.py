"""Tests of spikegen.spikes.cfa: Bayer masks, mosaic/demosaic, and colour recovered from a
simulated Bayer spike stream of a colour chart."""

from __future__ import annotations

import pytest
import torch

from spikegen.errors import ShapeError
from spikegen.spikes.cfa import (
    CFA_PATTERNS,
    DemosaicBilinear,
    Mosaic,
    cfa_channels,
    cfa_mask,
    crop_pattern,
    demosaic_bilinear,
    flip_pattern,
    integrate_and_fire_cfa,
    mosaic,
    tfi_color,
    tfp_color,
)
from spikegen.spikes.reconstruct import tfi

PATCH = 16
GAIN = 0.6


def colour_chart(rows=3, cols=4, seed=0) -> tuple[torch.Tensor, torch.Tensor]:
    """A chart of uniform PATCH x PATCH colour patches: image [3, H, W] and colours [rows, cols, 3]."""
    g = torch.Generator().manual_seed(seed)
    colours = 0.05 + 0.9 * torch.rand(rows, cols, 3, generator=g)
    img = colours.permute(2, 0, 1).repeat_interleave(PATCH, 1).repeat_interleave(PATCH, 2)
    return img.contiguous(), colours


def patch_interiors(img: torch.Tensor, margin: int = 3) -> torch.Tensor:
    """Mask [H, W] of the pixels at least ``margin`` px away from every patch edge."""
    H, W = img.shape[-2:]
    yy = torch.arange(H) % PATCH
    xx = torch.arange(W) % PATCH
    iy = (yy >= margin) & (yy < PATCH - margin)
    ix = (xx >= margin) & (xx < PATCH - margin)
    return iy[:, None] & ix[None, :]


@pytest.mark.parametrize("pattern", CFA_PATTERNS)
def test_masks_follow_the_pattern_names(pattern):
    m = cfa_mask(pattern, 6, 8)
    assert m.shape == (3, 6, 8)
    assert torch.equal(m.sum(0), torch.ones(6, 8))
    names = "RGB"
    ch = cfa_channels(pattern, 6, 8)
    for y in range(6):
        for x in range(8):
            assert names[int(ch[y, x])] == pattern[(y % 2) * 2 + (x % 2)]
            assert m[int(ch[y, x]), y, x] == 1
    # every 2x2 block: one R, two G, one B
    assert torch.equal(m.sum((1, 2)), torch.tensor([12.0, 24.0, 12.0]))


def test_explicit_layouts_and_odd_sizes():
    assert cfa_channels("RGGB", 2, 2).tolist() == [[0, 1], [1, 2]]
    assert cfa_channels("BGGR", 2, 2).tolist() == [[2, 1], [1, 0]]
    assert cfa_channels("GRBG", 2, 2).tolist() == [[1, 0], [2, 1]]
    assert cfa_channels("GBRG", 2, 2).tolist() == [[1, 2], [0, 1]]
    assert cfa_channels("RGGB", 3, 5).shape == (3, 5)


def test_crop_and_flip_pattern_agree_with_the_masks():
    ch = cfa_channels("RGGB", 10, 12)
    names = "RGB"
    for top, left in [(0, 0), (1, 0), (0, 1), (1, 3)]:
        sub = ch[top:, left:]
        got = crop_pattern("RGGB", top, left)
        assert got == "".join(names[int(sub[r, c])] for r in range(2) for c in range(2))
    for h, w in [(10, None), (9, None), (None, 12), (None, 11), (10, 12)]:
        full = cfa_channels("RGGB", h or 10, w or 12)
        flipped = full.flip(0) if h else full
        flipped = flipped.flip(1) if w else flipped
        got = flip_pattern("RGGB", height=h, width=w)
        assert torch.equal(cfa_channels(got, h or 10, w or 12), flipped)


@pytest.mark.parametrize("pattern", CFA_PATTERNS)
def test_mosaic_then_demosaic_reproduces_uniform_colour_exactly(pattern):
    rgb = torch.tensor([0.9, 0.5, 0.2]).view(3, 1, 1).expand(3, 7, 9).contiguous()
    mos = mosaic(rgb, pattern)
    assert mos.shape == (7, 9)
    assert torch.equal(mos, (rgb * cfa_mask(pattern, 7, 9)).sum(0))
    out = demosaic_bilinear(mos, pattern)
    assert out.shape == (3, 7, 9)
    assert torch.allclose(out, rgb, atol=1e-6)  # borders included
    # a wrong pattern gives wrong colours (the test above can fail)
    wrong = {"RGGB": "BGGR", "BGGR": "RGGB", "GRBG": "GBRG", "GBRG": "GRBG"}[pattern]
    assert (demosaic_bilinear(mos, wrong) - rgb).abs().max() > 0.5


def test_demosaic_is_bilinear_inside():
    # a horizontal ramp is linear, so bilinear interpolation reproduces it away from the borders
    x = torch.linspace(0, 1, 12).expand(10, 12)
    rgb = torch.stack([x, x, x])
    out = demosaic_bilinear(mosaic(rgb, "RGGB"), "RGGB")
    assert torch.allclose(out[:, 1:-1, 1:-1], rgb[:, 1:-1, 1:-1], atol=1e-6)
    # batched leading dims and the module forms
    s = torch.rand(2, 5, 8, 8)
    assert DemosaicBilinear("GBRG")(s).shape == (2, 5, 3, 8, 8)
    assert Mosaic("GBRG")(torch.rand(2, 5, 3, 8, 8)).shape == (2, 5, 8, 8)
    assert demosaic_bilinear(torch.rand(4, 4, dtype=torch.float64)).dtype == torch.float64


@pytest.mark.parametrize("pattern", CFA_PATTERNS)
def test_colour_chart_recovered_from_bayer_spikes(pattern):
    """400 frames at V_th 1, gain 0.6, random initial charge; TFP / gain, demosaicked."""
    img, _ = colour_chart()
    s = integrate_and_fire_cfa(img, pattern, steps=400, v_th=1.0, gain=GAIN,
                               generator=torch.Generator().manual_seed(1))
    assert s.shape == (400, 3 * PATCH, 4 * PATCH) and s.dtype == torch.uint8
    rec = tfp_color(s, 400, pattern, centers=[200], scale=1.0 / GAIN)[0]
    assert rec.shape == img.shape
    inside = patch_interiors(img)
    err = (rec - img).abs()[:, inside]
    # stated tolerance: mean abs error < 0.02 and max < 0.05 inside the patches (expected
    # ~0.003: the rate is quantised in steps of 1 / (400 * 0.6))
    assert float(err.mean()) < 0.02, float(err.mean())
    assert float(err.max()) < 0.05, float(err.max())


def test_tfi_color_matches_tfi_then_demosaic_and_tracks_colour():
    img, _ = colour_chart(2, 2, seed=3)
    s = integrate_and_fire_cfa(img, "GRBG", steps=400, gain=GAIN, generator=torch.Generator().manual_seed(0))
    centers = list(range(50, 350, 5))
    got = tfi_color(s, "GRBG", centers=centers)
    assert got.shape == (len(centers), 3, 2 * PATCH, 2 * PATCH)
    assert torch.allclose(got, demosaic_bilinear(tfi(s, centers=centers), "GRBG"))
    # averaged over time, TFI / gain approximates the colours (looser: 1/interval is biased)
    mean = got.mean(0) / GAIN
    inside = patch_interiors(img)
    assert float((mean - img).abs()[:, inside].mean()) < 0.02  # measured ~0.0015


def test_video_and_batch_shapes_and_errors():
    video = torch.rand(6, 3, 8, 10)
    assert integrate_and_fire_cfa(video, "BGGR").shape == (6, 8, 10)
    assert integrate_and_fire_cfa(video[None].expand(2, -1, -1, -1, -1), "BGGR").shape == (2, 6, 8, 10)
    assert integrate_and_fire_cfa(video[:2], "BGGR", steps=4).shape == (2, 4, 8, 10)
    s, state = integrate_and_fire_cfa(video[0], steps=3, return_state=True)
    assert s.shape == (3, 8, 10) and state.shape == (8, 10)
    # a video through a CFA: each pixel fires at the rate of its own channel
    red = torch.zeros(200, 3, 4, 4)
    red[:, 0] = 1.0
    sr = integrate_and_fire_cfa(red, "RGGB", gain=0.5, init="zero")
    assert float(sr[:, 0::2, 0::2].float().mean()) == 0.5 and int(sr[:, 1::2, 1::2].sum()) == 0
    with pytest.raises(ShapeError, match="Bayer pattern"):
        cfa_mask("RGBG", 2, 2)
    with pytest.raises(ShapeError, match=r"\[\.\.\., 3, H, W\]"):
        mosaic(torch.rand(4, 4, 4))
    with pytest.raises(ShapeError, match="steps=None"):
        integrate_and_fire_cfa(torch.rand(3, 4, 4))
    with pytest.raises(ShapeError, match="still image"):
        integrate_and_fire_cfa(torch.rand(2, 2, 3, 4, 4), steps=3)
