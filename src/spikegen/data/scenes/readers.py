"""Reading scene folders: one split of a Blender / NeRF-synthetic scene, all its splits, a SpikeGS scene.

:func:`read_blender_scene` (one ``transforms_{split}.json``), :func:`read_scene_splits` (every
split), :func:`read_spikegs_scene` (the splits plus the TFP / TFI variants) and
:func:`scene_from_transforms` (a transforms dict already loaded). A scene costs nothing to open:
images are read when asked for.

Example:
    >>> pose = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 4], [0, 0, 0, 1]]
    >>> tr = {"camera_angle_x": 0.6911, "w": 800, "h": 800, "frames": [{"file_path": "./train/r_0", "transform_matrix": pose}]}
    >>> s = scene_from_transforms("scene", tr, "train", check_files=False)   # no image files needed
    >>> len(s), s.width, round(s.focal, 1), s.frames[0].name, s.frames[0].path
    (1, 800, 1111.1, 'r_0', None)
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from spikegen.data.common import image_size
from spikegen.data.scenes._common import PathLike, file_stem, image_candidates
from spikegen.data.scenes.types import Scene, SceneFrame, SpikeGSScene
from spikegen.errors import SpikeFileError
from spikegen.media import IMAGE_SUFFIXES

__all__ = ["read_blender_scene", "read_scene_splits", "read_spikegs_scene", "scene_from_transforms"]

_SPLIT_RE = re.compile(r"^transforms_(.+)\.json$")


def _resolve(root: Path, file_path: str) -> Path | None:
    for c in image_candidates(root, file_path):
        if c.is_file():
            return c
    return None


def _check_background(background: Sequence[float]) -> tuple[float, float, float]:
    bg = tuple(float(v) for v in background)
    if len(bg) == 1:
        bg = bg * 3
    if len(bg) != 3 or any(not 0.0 <= v <= 1.0 for v in bg):
        raise ValueError(f"background must be three values in [0, 1] (RGB), got {background!r}")
    return bg  # type: ignore[return-value]


def _transforms_files(root: Path) -> dict[str, Path]:
    out = {}
    if root.is_dir():
        for p in sorted(root.iterdir()):
            m = _SPLIT_RE.match(p.name)
            if m and p.is_file():
                out[m.group(1)] = p
    return out


def _read_json(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise SpikeFileError(f"{path}: not valid JSON ({exc})") from None
    except OSError as exc:
        raise SpikeFileError(f"{path}: cannot read ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("frames"), list):
        raise SpikeFileError(f"{path}: expected a JSON object with a 'frames' list (NeRF/Blender transforms)")
    return data


def _pose(entry: Any, where: str) -> np.ndarray:
    try:
        m = np.asarray(entry["transform_matrix"], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        raise SpikeFileError(f"{where}: frame has no valid 'transform_matrix'") from None
    if m.shape == (3, 4):
        m = np.concatenate([m, np.array([[0.0, 0.0, 0.0, 1.0]])], 0)
    if m.shape != (4, 4) or not np.all(np.isfinite(m)):
        raise SpikeFileError(f"{where}: 'transform_matrix' must be a finite 4x4 (or 3x4) matrix, got shape {m.shape}")
    return m


def scene_from_transforms(root: PathLike, transforms: dict, split: str, *, background: Sequence[float] = (1.0, 1.0, 1.0),
                          check_files: bool = True, source: str | None = None) -> Scene:
    """Build a :class:`Scene` from an already-loaded transforms dict (see :func:`read_blender_scene`)."""
    root = Path(root)
    bg = _check_background(background)
    where = source or f"{root}/transforms_{split}.json"
    frames: list[SceneFrame] = []
    missing: list[str] = []
    for k, entry in enumerate(transforms["frames"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("file_path"), str):
            raise SpikeFileError(f"{where}: frame {k} has no 'file_path' string")
        fp = entry["file_path"]
        path = _resolve(root, fp)
        if path is None:
            missing.append(fp)
        frames.append(SceneFrame(fp, _pose(entry, f"{where} frame {k}"), path, entry))
    if check_files and missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise SpikeFileError(f"{where}: image for file_path {missing[0]!r} not found under {root} "
                             f"(tried {image_candidates(root, missing[0])[0].name}){more}")
    if "w" in transforms and "h" in transforms:
        width, height = int(transforms["w"]), int(transforms["h"])
    else:
        first = next((f.path for f in frames if f.path is not None), None)
        if first is None:
            raise SpikeFileError(f"{where}: no image found to take the image size from (and no 'w'/'h' in the json)")
        height, width = image_size(first)
    if "camera_angle_x" in transforms:
        fov = float(transforms["camera_angle_x"])
    elif "fl_x" in transforms:
        fov = 2.0 * math.atan(0.5 * width / float(transforms["fl_x"]))
    else:
        raise SpikeFileError(f"{where}: no 'camera_angle_x' (or 'fl_x') in the json")
    if not 0.0 < fov < math.pi:
        raise SpikeFileError(f"{where}: camera_angle_x must be in (0, pi) radians, got {fov}")
    return Scene(root, split, frames, fov, width, height, bg, transforms)


def read_blender_scene(root: PathLike, split: str = "train", background: Sequence[float] = (1.0, 1.0, 1.0), *,
                       check_files: bool = True) -> Scene:
    """Read one split of a Blender / NeRF-synthetic scene folder.

    Args:
        root: the scene folder (holding ``transforms_{split}.json``), or that json file itself.
        split: which ``transforms_{split}.json`` to read.
        background: RGB in [0, 1] that RGBA views are composited on.
        check_files: fail now (rather than at the first :meth:`Scene.image`) when an image is missing.

    Returns:
        A :class:`Scene`; images are read when asked for (``scene.image(i)``), so a large scene
        costs nothing to open.

    Raises:
        SpikeFileError: no such json (the message lists the splits that exist), invalid json,
            a frame without ``file_path`` / a valid 4x4 ``transform_matrix``, a missing image.
    """
    root = Path(root)
    if root.is_file() and root.suffix == ".json":
        json_path, root = root, root.parent
        m = _SPLIT_RE.match(json_path.name)
        split = m.group(1) if m else json_path.stem
    else:
        if not root.is_dir():
            raise SpikeFileError(f"{root}: no such scene folder")
        json_path = root / f"transforms_{split}.json"
        if not json_path.is_file():
            have = sorted(_transforms_files(root))
            hint = f"; found splits {have}" if have else "; no transforms_*.json there at all"
            raise SpikeFileError(f"{json_path}: missing (a Blender scene needs transforms_{split}.json{hint})")
    data = _read_json(json_path)
    return scene_from_transforms(root, data, split, background=background, check_files=check_files, source=str(json_path))


def read_scene_splits(root: PathLike, background: Sequence[float] = (1.0, 1.0, 1.0), *, check_files: bool = True) -> dict[str, Scene]:
    """Every ``transforms_{split}.json`` of a scene folder, read as ``{split: Scene}``."""
    root = Path(root)
    files = _transforms_files(root)
    if not files:
        raise SpikeFileError(f"{root}: no transforms_*.json found (not a Blender/NeRF-synthetic scene folder)")
    return {s: read_blender_scene(p, s, background, check_files=check_files) for s, p in files.items()}


_VARIANT_DIRS = {"tfp": ("TFP_noise", "TFP", "tfp_noise", "tfp"), "tfi": ("TFI_noise", "TFI", "tfi_noise", "tfi")}


def _variant_from_folder(train: Scene, folder: Path, split: str) -> Scene:
    files = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            files.setdefault(p.stem, p)
    frames, entries, missing = [], [], []
    for f in train.frames:
        st = file_stem(f.file_path)
        p = files.get(st)
        if p is None:
            missing.append(st)
            continue
        rel = f"./{folder.name}/{st}"
        entry = dict(f.entry)
        entry["file_path"] = rel
        entries.append(entry)
        frames.append(SceneFrame(rel, f.transform_matrix.copy(), p, entry))
    if missing:
        raise SpikeFileError(f"{folder}: no image for training view(s) {missing[:3]}{' ...' if len(missing) > 3 else ''} "
                             f"(expected files named like the train file_path stems, e.g. {missing[0]}.png)")
    tr = {k: v for k, v in train.transforms.items() if k != "frames"}
    tr["frames"] = entries
    return Scene(train.root, split, frames, train.camera_angle_x, train.width, train.height, train.background, tr)


def read_spikegs_scene(root: PathLike, background: Sequence[float] = (1.0, 1.0, 1.0), *, check_files: bool = True) -> SpikeGSScene:
    """Read a SpikeGS scene folder (Blender layout + ``TFP_noise/`` / ``TFI_noise/``).

    Every ``transforms_*.json`` becomes a split. The TFP / TFI variants come from
    ``transforms_TFP.json`` / ``transforms_TFI.json`` when present, otherwise from the folders
    ``TFP_noise/`` / ``TFI_noise/`` (also ``TFP/``, ``TFI/``) matched to the training views by
    file name stem. Any other ``<NAME>_noise/`` folder is read the same way as variant ``name``.

    Raises:
        SpikeFileError: no ``transforms_train.json``, a variant folder lacking a training view.
    """
    root = Path(root)
    if not root.is_dir():
        raise SpikeFileError(f"{root}: no such scene folder")
    files = _transforms_files(root)
    if "train" not in files:
        raise SpikeFileError(f"{root}/transforms_train.json: missing (a SpikeGS scene needs it; found {sorted(files) or 'no transforms_*.json'})")
    splits = {s: read_blender_scene(p, s, background, check_files=check_files) for s, p in files.items()}
    variants: dict[str, Scene] = {}
    for name, split in splits.items():
        if name.lower() in ("tfp", "tfi"):
            variants[name.lower()] = split
    for key, dirs in _VARIANT_DIRS.items():
        if key in variants:
            continue
        for d in dirs:
            if (root / d).is_dir():
                variants[key] = _variant_from_folder(splits["train"], root / d, key.upper())
                break
    for p in sorted(root.iterdir()):
        if p.is_dir() and p.name.lower().endswith("_noise"):
            key = p.name[: -len("_noise")].lower()
            if key and key not in variants:
                variants[key] = _variant_from_folder(splits["train"], p, key.upper())
    return SpikeGSScene(root, splits, variants)
