"""What every ``spikegen nvs`` step shares (the bottom of :mod:`spikegen.tasks.nvs`; imports no sibling).

Option parsing (:func:`parse_background`, :func:`resized_size`), view names and the resize
every step applies (:func:`view_names`, :func:`resize`), the file names and sensor defaults
the steps agree on, and the output plumbing: :func:`check_outputs` (every planned output,
before any work), :func:`write_json` (atomic, from :mod:`spikegen.data.scenes`) and
:func:`progress_bar`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from spikegen.data.common import DEFAULT_GAIN
from spikegen.data.scenes import image_relpath, write_json
from spikegen.errors import OutputExistsError, SpikeGenError

__all__ = [
    "DEFAULT_GAIN",
    "DEFAULT_VTH",
    "PREPARE_JSON",
    "RESTORE_JSON",
    "PathLike",
    "check_outputs",
    "parse_background",
    "progress_bar",
    "resize",
    "resized_size",
    "view_names",
    "write_json",
]

PathLike = str | os.PathLike
PREPARE_JSON = "prepare.json"
RESTORE_JSON = "restore.json"
DEFAULT_VTH = 1.0  # and DEFAULT_GAIN, the training data's gain (spikegen.data.common)


def parse_background(value: str | Sequence[float] | None) -> tuple[float, float, float]:
    """``"white"``, ``"black"``, ``"R,G,B"`` in [0, 1] (or 0-255 integers) -> RGB floats in [0, 1].

    Example:
        >>> parse_background("white"), parse_background("0,0.5,1"), parse_background("255,0,0")
        ((1.0, 1.0, 1.0), (0.0, 0.5, 1.0), (1.0, 0.0, 0.0))
    """
    if value is None:
        return (1.0, 1.0, 1.0)
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ("white", "w"):
            return (1.0, 1.0, 1.0)
        if v in ("black", "k"):
            return (0.0, 0.0, 0.0)
        try:
            parts = [float(p) for p in v.replace(" ", "").split(",") if p]
        except ValueError:
            raise SpikeGenError(f"--background: expected white, black or R,G,B, got {value!r}") from None
    else:
        parts = [float(p) for p in value]
    if len(parts) == 1:
        parts = parts * 3
    if len(parts) != 3 or any(not math.isfinite(p) or p < 0 for p in parts):
        raise SpikeGenError(f"--background: expected white, black or three values R,G,B, got {value!r}")
    if any(p > 1 for p in parts):
        if any(p > 255 for p in parts):
            raise SpikeGenError(f"--background: values must lie in [0, 1] (or 0-255), got {value!r}")
        parts = [p / 255.0 for p in parts]
    return tuple(parts)  # type: ignore[return-value]


def resized_size(width: int, height: int, resolution: int | None) -> tuple[int, int]:
    """``(width, height)`` with the longer side ``resolution`` px, aspect kept (rounded); no-op for None.

    Example:
        >>> resized_size(800, 800, 200), resized_size(400, 250, 200), resized_size(64, 48, None)
        ((200, 200), (200, 125), (64, 48))
    """
    if resolution is None:
        return int(width), int(height)
    r = int(resolution)
    if r < 8:
        raise SpikeGenError(f"--resolution must be >= 8 pixels, got {resolution}")
    s = r / max(width, height)
    return max(1, round(width * s)), max(1, round(height * s))


def resize(img: torch.Tensor, size_hw: tuple[int, int]) -> torch.Tensor:
    """Antialiased bilinear resize of ``[C, H, W]`` in [0, 1] to ``size_hw`` (the same tensor when
    the size already matches).

    Example:
        >>> resize(torch.ones(3, 8, 6), (4, 3)).shape
        torch.Size([3, 4, 3])
    """
    if tuple(img.shape[-2:]) == tuple(size_hw):
        return img
    out = F.interpolate(img[None].float(), size=size_hw, mode="bilinear", antialias=True, align_corners=False)[0]
    return out.clamp_(0, 1)


def view_names(frames: Sequence[Any]) -> list[str]:
    """A file-name-safe, unique name per frame: the ``file_path`` stem (``r_0``), or the path
    with ``/`` -> ``__`` where two frames share a stem.

    Example:
        >>> from types import SimpleNamespace as N
        >>> view_names([N(file_path="./train/r_0"), N(file_path="./train/r_1")])
        ['r_0', 'r_1']
        >>> view_names([N(file_path="./a/r_0"), N(file_path="./b/r_0.png")])
        ['a__r_0', 'b__r_0']
    """
    rels = [image_relpath(f.file_path) for f in frames]
    stems = [Path(r).stem for r in rels]
    if len(set(stems)) == len(stems):
        return stems
    return [str(Path(r).with_suffix("")).replace("\\", "/").replace("/", "__") for r in rels]


def check_outputs(paths: Sequence[Path], overwrite: bool) -> None:
    """Refuse to start when any of the planned output files exists (unless ``overwrite``).

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp()); (d / "a.json").write_text("{}") and None
        >>> check_outputs([d / "a.json", d / "b.png"], overwrite=True)
        >>> check_outputs([d / "a.json", d / "b.png"], overwrite=False)
        Traceback (most recent call last):
        ...
        spikegen.errors.OutputExistsError: ...a.json: exists; pass --overwrite (overwrite=True) to replace
    """
    if overwrite:
        return
    existing = [p for p in paths if p.exists()]
    if existing:
        more = f" (and {len(existing) - 1} more outputs)" if len(existing) > 1 else ""
        raise OutputExistsError(f"{existing[0]}: exists{more}; pass --overwrite (overwrite=True) to replace")


def progress_bar(total: int, desc: str, enabled: bool):
    """A tqdm bar counting views, or ``None`` when ``enabled`` is False (callers test for it)."""
    if not enabled:
        return None
    return tqdm(total=total, desc=desc, unit="view", dynamic_ncols=True)
