"""Bayer CFA through the command line: simulate --cfa records the pattern (npz) or warns (dat),
info shows it, reconstruct --cfa (default: the npz metadata) gives colour TFP/TFI that recovers
a colour chart."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_helpers import run
from spikegen.image import load_image, save_image
from spikegen.spikes.io import load_spikes

P = 12  # patch size
N = 4   # patches per side


@pytest.fixture
def chart(tmp_path) -> tuple[Path, torch.Tensor]:
    cols = torch.from_numpy(np.random.default_rng(0).uniform(0.1, 0.9, (N, N, 3)).astype(np.float32))
    img = cols.permute(2, 0, 1).repeat_interleave(P, 1).repeat_interleave(P, 2)  # [3, 48, 48]
    path = save_image(tmp_path / "chart.png", img)
    return path, load_image(path)  # the 8-bit image as simulated


def patch_errors(rec: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """|rec - ref| inside the patches (2 px from their edges, where demosaicking mixes colours)."""
    m = torch.zeros(N * P, N * P, dtype=torch.bool)
    for i in range(N):
        for j in range(N):
            m[i * P + 2:(i + 1) * P - 2, j * P + 2:(j + 1) * P - 2] = True
    return (rec - ref).abs()[:, m]


@pytest.mark.parametrize("pattern", ["RGGB", "GBRG"])
def test_simulate_cfa_then_reconstruct_recovers_the_chart(chart, tmp_path, pattern, capsys):
    src, ref = chart
    npz = tmp_path / "c.npz"
    code, _, err = run(["simulate", src, "-o", npz, "--cfa", pattern, "--frames", 400, "--gain", 0.6], capsys)
    assert code == 0 and err == ""
    s, meta = load_spikes(npz, with_meta=True)
    assert meta["cfa"] == pattern and meta["fps"] == 20000
    info = json.loads(run(["info", npz, "--json"], capsys)[1])
    assert info["cfa"] == pattern
    assert f"cfa: {pattern}" in run(["info", npz], capsys)[1]
    # one frame, the pattern from the metadata: TFP of all 400 frames (window 399), / gain
    out = tmp_path / "tfp.png"
    assert run(["reconstruct", npz, "-o", out, "--window", 399, "--scale", 1 / 0.6], capsys)[0] == 0
    rec = load_image(out)
    assert rec.shape == (3, N * P, N * P)
    e = patch_errors(rec, ref)
    # measured: mean 0.0005, max 0.004 (one 8-bit step); rates are quantised to 1/399 frames
    assert float(e.mean()) < 0.005 and float(e.max()) < 0.02
    # the gray reconstruction shows the mosaic, not the colours
    gray = tmp_path / "gray.png"
    assert run(["reconstruct", npz, "-o", gray, "--window", 399, "--scale", 1 / 0.6, "--cfa", "none"], capsys)[0] == 0
    g = load_image(gray)
    assert torch.equal(g[0], g[1]) and torch.equal(g[1], g[2])  # a gray PNG


def test_dat_cannot_store_the_pattern_the_reader_passes_it(chart, tmp_path, capsys):
    src, ref = chart
    dat = tmp_path / "c.dat"
    code, out, err = run(["simulate", src, "-o", dat, "--cfa", "GRBG", "--frames", 400], capsys)
    assert code == 0 and "cannot store the CFA pattern" in err and "--cfa GRBG" in err
    dims = ["--height", N * P, "--width", N * P]
    one = tmp_path / "one.png"
    assert run(["reconstruct", dat, *dims, "--cfa", "GRBG", "-o", one, "--window", 399, "--scale", 1 / 0.6], capsys)[0] == 0
    e = patch_errors(load_image(one), ref)
    assert float(e.mean()) < 0.005 and float(e.max()) < 0.02
    # --all: each streamed TFP frame demosaicked (41-frame windows: noisier, rates in steps of 1/41)
    folder = tmp_path / "all"
    assert run(["reconstruct", dat, *dims, "--cfa", "GRBG", "--all", "--stride", 100, "-o", folder,
                "--scale", 1 / 0.6], capsys)[0] == 0
    frames = sorted(folder.iterdir())
    assert [f.name for f in frames] == [f"frame_{t:06d}.png" for t in (0, 100, 200, 300)]
    mid = load_image(frames[2])
    assert mid.shape == (3, N * P, N * P)
    assert float(patch_errors(mid, ref).mean()) < 0.06
    # TFI in colour too (about gain x the intensity on a simulated stream)
    tfi = tmp_path / "tfi.png"
    assert run(["reconstruct", dat, *dims, "--cfa", "GRBG", "--method", "tfi", "-o", tfi], capsys)[0] == 0
    assert float(patch_errors(load_image(tfi), 0.6 * ref).mean()) < 0.06


@pytest.mark.parametrize("argv, msg", [
    (["simulate", "IMG", "-o", "OUT.npz", "--cfa", "RGBG"], "--cfa"),
    (["simulate", "IMG", "-o", "OUT.npz", "--cfa", "RGGB", "--method", "photon"], "--cfa"),
])
def test_bad_cfa_is_a_one_line_error(chart, tmp_path, argv, msg, capsys):
    argv = [str(chart[0]) if a == "IMG" else str(tmp_path / a) if a.startswith("OUT") else a for a in argv]
    code, out, err = run(argv, capsys)
    assert code == 2 and msg in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "OUT.npz").exists()
