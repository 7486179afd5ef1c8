"""Writing scene folders: the Blender layout with nerfstudio's ``transforms.json``, and atomic JSON.

:func:`write_scene` (images at their ``file_path`` entries, ``transforms_{split}.json`` as read,
nerfstudio's ``transforms.json``), :func:`nerfstudio_transforms` (that json's content),
:func:`image_relpath` (the image file an entry names) and :func:`write_json` (the atomic JSON of
the scene files and of the nvs steps' records).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from spikegen.data.scenes._common import PathLike
from spikegen.data.scenes.types import Scene
from spikegen.errors import OutputExistsError, ShapeError, SpikeFileError
from spikegen.image import save_image
from spikegen.media import IMAGE_SUFFIXES
from spikegen.outputs import atomic_write_text

__all__ = ["ImagesArg", "image_relpath", "nerfstudio_transforms", "write_json", "write_scene"]

ImagesArg = Sequence[torch.Tensor] | Mapping[str, torch.Tensor] | Callable[["Scene", int], torch.Tensor] | None


def image_relpath(file_path: str) -> str:
    """The image file a ``file_path`` entry names, relative to the scene folder.

    ``"./train/r_0"`` -> ``"train/r_0.png"``; an entry that already has an image suffix is kept.
    Absolute paths and ``..`` are refused (the output must stay inside the output folder).
    """
    p = PurePosixPath(file_path.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or re.match(r"^[A-Za-z]:", file_path):
        raise SpikeFileError(f"file_path {file_path!r}: must be relative to the scene folder and stay inside it")
    parts = [x for x in p.parts if x not in (".", "")]
    if not parts:
        raise SpikeFileError(f"file_path {file_path!r}: empty")
    rel = PurePosixPath(*parts)
    if rel.suffix.lower() not in IMAGE_SUFFIXES:
        rel = rel.with_name(rel.name + ".png")
    return rel.as_posix()


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` to ``path`` as JSON indented by 4, atomically
    (:func:`spikegen.outputs.atomic_write_text`), creating the parent folder: the format of the
    scene files (``transforms*.json``) and of the nvs steps' records.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "sub" / "run.json"
        >>> write_json(p, {"a": 1}); json.loads(p.read_text())
        {'a': 1}
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=4) + "\n")


def nerfstudio_transforms(scenes: Sequence[Scene]) -> dict:
    """nerfstudio's ``transforms.json`` content for the given splits (see :func:`write_scene`).

    One OPENCV camera with zero distortion (``fl_x, fl_y, cx, cy, w, h``); frames with the
    image path (suffix included, as nerfstudio needs) and the unchanged ``transform_matrix``
    (Blender and nerfstudio both use the OpenGL camera convention). ``train_filenames``,
    ``val_filenames`` and ``test_filenames`` are written when a ``test`` or ``val`` split is
    present (``val`` falls back to ``test`` and vice versa, as for the Blender scenes).
    """
    if not scenes:
        raise ShapeError("nerfstudio_transforms needs at least one scene split")
    ref = scenes[0]
    for s in scenes[1:]:
        if (s.width, s.height) != (ref.width, ref.height) or not math.isclose(s.focal, ref.focal, rel_tol=1e-9):
            raise ShapeError(f"splits {ref.split!r} and {s.split!r} have different cameras "
                             f"({ref.width}x{ref.height} f={ref.focal:.3f} vs {s.width}x{s.height} f={s.focal:.3f}); "
                             "nerfstudio's transforms.json holds one camera")
    out: dict[str, Any] = {
        "camera_model": "OPENCV",
        "fl_x": ref.focal, "fl_y": ref.focal_y, "cx": ref.cx, "cy": ref.cy,
        "w": ref.width, "h": ref.height,
        "k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0,
        "frames": [],
    }
    by_split: dict[str, list[str]] = {}
    for s in scenes:
        for f in s.frames:
            rel = image_relpath(f.file_path)
            out["frames"].append({"file_path": rel, "transform_matrix": f.transform_matrix.tolist()})
            by_split.setdefault(s.split.lower(), []).append(rel)
    if "test" in by_split or "val" in by_split:
        train = by_split.get("train", [])
        test = by_split.get("test", by_split.get("val", []))
        val = by_split.get("val", test)
        out["train_filenames"] = train
        out["val_filenames"] = val
        out["test_filenames"] = test
    return out


def write_scene(scenes: Scene | Sequence[Scene], out_dir: PathLike, images: ImagesArg = None, *,
                overwrite: bool = False, nerfstudio: bool = True) -> Path:
    """Write a scene (one or several splits) in the Blender layout, plus nerfstudio's json.

    Args:
        scenes: a :class:`Scene` or a list of them (e.g. the train and test splits).
        out_dir: the output scene folder (created).
        images: what to write for each view: ``None`` (the scene's own images, composited),
            a mapping ``file_path -> [3, H, W]`` tensor (views not in it are copied from the
            scene), a sequence aligned with the frames (single scene only), or a callable
            ``(scene, i) -> [3, H, W]``. Images are float in [0, 1] (``[1, H, W]`` is allowed).
        overwrite: replace existing files; otherwise any existing output raises
            :class:`OutputExistsError` before anything is written.
        nerfstudio: also write ``transforms.json`` (nerfstudio-data format).

    Returns:
        ``out_dir``.

    Every image goes to ``out_dir / file_path`` (``.png`` appended when the entry has no suffix)
    and ``transforms_{split}.json`` is written with the same content as read, so the folder
    re-reads with identical poses (:func:`read_blender_scene`) and 3DGS / nerfstudio open it.
    """
    scene_list = [scenes] if isinstance(scenes, Scene) else list(scenes)
    if not scene_list:
        raise ShapeError("write_scene needs at least one scene")
    out = Path(out_dir)
    if isinstance(images, Sequence) and not isinstance(images, (str, bytes)) and len(scene_list) != 1:
        raise ShapeError("images given as a sequence need a single scene; use a mapping file_path -> image")
    splits = [s.split for s in scene_list]
    if len(set(splits)) != len(splits):
        raise ShapeError(f"write_scene got the same split twice: {splits}")
    # Plan every output first, so nothing is written when one of them would be refused.
    plan: list[tuple[Scene, int, Path]] = []
    seen: dict[Path, str] = {}
    for s in scene_list:
        if isinstance(images, Sequence) and not isinstance(images, (str, bytes)) and len(images) != len(s):
            raise ShapeError(f"images: {len(images)} given for {len(s)} views of split {s.split!r}")
        for i, f in enumerate(s.frames):
            target = out / image_relpath(f.file_path)
            if target in seen:
                raise SpikeFileError(f"file_path {f.file_path!r} (split {s.split}) writes the same file as {seen[target]!r}")
            seen[target] = f.file_path
            plan.append((s, i, target))
    jsons = [out / f"transforms_{s.split}.json" for s in scene_list] + ([out / "transforms.json"] if nerfstudio else [])
    if not overwrite:
        existing = [p for p in [t for _, _, t in plan] + jsons if p.exists()]
        if existing:
            raise OutputExistsError(f"{existing[0]}: exists{f' (and {len(existing) - 1} more outputs)' if len(existing) > 1 else ''}; "
                                    "pass overwrite=True (CLI: --overwrite) to replace")
    out.mkdir(parents=True, exist_ok=True)
    for s, i, target in plan:
        img = _image_for(s, i, images)
        save_image(target, img, overwrite=True)
    for s in scene_list:
        write_json(out / f"transforms_{s.split}.json", _transforms_json(s))
    if nerfstudio:
        write_json(out / "transforms.json", nerfstudio_transforms(scene_list))
    return out


def _transforms_json(scene: Scene) -> dict:
    """The scene's json content; frames follow ``scene.frames`` (entries kept verbatim unless a
    frame's ``file_path`` or pose was changed in memory)."""
    data = dict(scene.transforms)
    frames = []
    for f in scene.frames:
        entry = dict(f.entry)
        if entry.get("file_path") != f.file_path:
            entry["file_path"] = f.file_path
        try:
            same = np.array_equal(np.asarray(entry.get("transform_matrix"), dtype=np.float64).reshape(-1, 4)[:4],
                                  f.transform_matrix[: len(entry.get("transform_matrix", []))])
        except (TypeError, ValueError):
            same = False
        if not same:
            entry["transform_matrix"] = f.transform_matrix.tolist()
        frames.append(entry)
    data["frames"] = frames
    return data


def _image_for(scene: Scene, i: int, images: ImagesArg) -> torch.Tensor:
    f = scene.frames[i]
    if images is None:
        img = scene.image(i)
    elif callable(images) and not isinstance(images, (Mapping, Sequence)):
        img = images(scene, i)
    elif isinstance(images, Mapping):
        img = images[f.file_path] if f.file_path in images else scene.image(i)
    else:
        img = images[i]
    if not isinstance(img, torch.Tensor):
        img = torch.as_tensor(np.asarray(img))
    if img.ndim != 3 or img.shape[0] not in (1, 3):
        raise ShapeError(f"image for {f.file_path!r}: expected [3, H, W] or [1, H, W], got {tuple(img.shape)}")
    if tuple(img.shape[-2:]) != (scene.height, scene.width):
        raise ShapeError(f"image for {f.file_path!r}: size {tuple(img.shape[-2:])} differs from the scene's "
                         f"{scene.height}x{scene.width} (the intrinsics would no longer match)")
    return img
