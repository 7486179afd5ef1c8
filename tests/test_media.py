"""Tests of the shared bottom-layer pieces: spikegen.media (suffixes, natural order, frames),
spikegen.outputs' atomic writers and the one Gaussian kernel of spikegen.degrade."""

from __future__ import annotations

import importlib
import os

import numpy as np
import pytest
import torch

import spikegen.data.common
import spikegen.image
import spikegen.spikes.simulate
from spikegen import media
from spikegen.degrade import gaussian_kernel1d
from spikegen.outputs import atomic_path, atomic_write_bytes, atomic_write_text


def test_one_list_of_suffixes_everywhere():
    for mod in (spikegen.image, spikegen.spikes.simulate):
        assert mod.IMAGE_SUFFIXES is media.IMAGE_SUFFIXES and mod.VIDEO_SUFFIXES is media.VIDEO_SUFFIXES
    # every suffix either list had before the merge
    for s in (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".gif"):
        assert spikegen.image.is_video_file(f"clip{s.upper()}") and media.is_video_file(f"clip{s}")
    assert spikegen.spikes.simulate.iter_frames is media.iter_frames
    assert not media.is_video_file("x.png") and media.is_image_file("x.PNG")


def test_one_natural_key():
    assert spikegen.data.common.natural_key is media.natural_key
    names = ["f10.png", "f2.png", "F1.png", "f2b.png"]
    assert sorted(names, key=media.natural_key) == ["F1.png", "f2.png", "f2b.png", "f10.png"]
    # whole paths: a recursive listing keeps each folder's files together, folders in natural order
    paths = ["s10/a.dat", "s2/b.dat", "s2/a10.dat", "s2/a9.dat"]
    assert sorted(paths, key=media.natural_key) == ["s2/a9.dat", "s2/a10.dat", "s2/b.dat", "s10/a.dat"]


def test_iter_frames_natural_order(tmp_path):
    iio = pytest.importorskip("imageio.v3")
    for i in (10, 2, 1):
        iio.imwrite(tmp_path / f"f{i}.png", np.full((4, 5, 3), i, np.uint8))
    values = [round(float(f[0, 0, 0]) * 255) for f in media.iter_frames(tmp_path, gray=False)]
    assert values == [1, 2, 10]


def test_atomic_writers(tmp_path):
    p = atomic_write_text(tmp_path / "a.txt", "héllo\n")
    assert p.read_bytes() == "héllo\n".encode() and p.stat().st_mode & 0o777 == 0o666 & ~_umask()
    atomic_write_bytes(p, b"\x00\x01")
    assert p.read_bytes() == b"\x00\x01"
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("fail mid-write")
    assert p.read_bytes() == b"\x00\x01"  # untouched, and no temporary file left behind
    assert sorted(os.listdir(tmp_path)) == ["a.txt"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_one_gaussian_kernel():
    g = gaussian_kernel1d(1.0)
    assert g.numel() == 7 and g.dtype == torch.float32 and abs(float(g.sum()) - 1) < 1e-6
    assert torch.equal(g, g.flip(0))
    # SSIM's window is the same kernel (11 taps, sigma 1.5, float64)
    ssim_mod = importlib.import_module("spikegen.metrics.ssim")
    assert torch.equal(ssim_mod.gaussian_kernel1d(), gaussian_kernel1d(1.5, 11, dtype=torch.float64))
    x = torch.arange(11, dtype=torch.float64) - 5
    ref = torch.exp(-(x * x) / (2 * 1.5 * 1.5))
    assert torch.allclose(gaussian_kernel1d(1.5, 11, dtype=torch.float64), ref / ref.sum(), rtol=0, atol=1e-15)
