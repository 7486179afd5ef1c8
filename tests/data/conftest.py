"""Small fixtures shared by the dataset tests: tiny image folders made in tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_png(path: Path, arr: np.ndarray) -> Path:
    """Write an ``[H, W, C]`` (or ``[H, W]``) float array in [0, 1] as an 8-bit PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    a = (np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8)
    Image.fromarray(a).save(path)
    return path


def smooth_image(h: int, w: int, seed: int) -> np.ndarray:
    """A textured colour image (gradients plus a few discs), float ``[H, W, 3]``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([xx / w, yy / h, 0.5 + 0.5 * np.sin(xx / 5.0 + seed)], -1)
    for _ in range(4):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(3, 10)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0, 1, 3)
    return img.astype(np.float32)


@pytest.fixture
def image_tree(tmp_path: Path) -> Path:
    """ImageNet-style tree: two class folders, a flat image, a tiny image and a held-out folder."""
    root = tmp_path / "images"
    write_png(root / "cats" / "a.png", smooth_image(80, 96, 0))
    write_png(root / "cats" / "b.jpg", smooth_image(72, 100, 1))
    write_png(root / "dogs" / "c.png", smooth_image(90, 70, 2))
    write_png(root / "small.png", smooth_image(40, 50, 3))  # smaller than the 64 crop: upscaled
    write_png(root / "mcmaster18" / "held.png", smooth_image(80, 80, 4))
    (root / "notes.txt").write_text("not an image")
    return root


@pytest.fixture
def png():
    """``png(path, array)`` writes a float ``[H, W, C]`` array as an 8-bit PNG."""
    return write_png


@pytest.fixture
def textured():
    """``textured(h, w, seed)`` -> a float ``[H, W, 3]`` test image."""
    return smooth_image
