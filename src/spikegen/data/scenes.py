"""Novel-view-synthesis scene folders: Blender/NeRF-synthetic and SpikeGS, read and written.

**Blender / NeRF-synthetic** (Mildenhall et al.; also what 3DGS, nerfstudio's ``blender-data``
and SpikeGS read)::

    scene/
      transforms_train.json   {"camera_angle_x": fov_x, "frames": [{"file_path": "./train/r_0",
      transforms_test.json                                     "transform_matrix": 4x4 c2w}, ...]}
      train/r_0.png ...       RGBA PNGs; "file_path" has no suffix, ".png" is appended
      test/r_0.png ...

``transform_matrix`` is camera-to-world in the OpenGL/Blender camera convention (x right,
y up, the camera looks down -z). The focal length in pixels is
``0.5 * width / tan(0.5 * camera_angle_x)``; the principal point is the image centre.
RGBA images are composited on ``background`` (white by default, as 3DGS ``--white_background``
and nerfstudio's Blender parser do).

**SpikeGS** (Guo et al., AAAI 2025) keeps the Blender layout and adds per-view spike
reconstructions beside the (blurry) training views::

    scene/
      transforms_train.json  train/       blurry RGB training views
      transforms_test.json   test/        sharp held-out views (the metric's ground truth)
      [transforms_TFP.json]  TFP_noise/   TFP of each training view's spike stream (noisy sensor)
                             TFI_noise/   TFI of each training view's spike stream

A variant folder without its own ``transforms_*.json`` gets the training poses, matched by
file name stem (``TFP_noise/r_0.png`` <-> ``./train/r_0``).

**Writing** (:func:`write_scene`) puts every image at exactly its ``file_path`` entry (with
``.png`` appended when the entry has no suffix, as Blender readers do), writes each
``transforms_{split}.json`` with the same content, and adds nerfstudio's ``transforms.json``
(``fl_x, fl_y, cx, cy, w, h``, ``camera_model: OPENCV`` with zero distortion, frames with
``file_path`` and ``transform_matrix``, and ``train/val/test_filenames``). nerfstudio also
uses the OpenGL camera convention, so poses are copied without any axis change.

Example:
    >>> from spikegen.data.scenes import read_blender_scene, write_scene
    >>> scene = read_blender_scene("shared/data/nvs/lego", "train")      # doctest: +SKIP
    >>> len(scene), scene.width, round(scene.focal, 1)                   # doctest: +SKIP
    (50, 800, 1111.1)
    >>> img = scene.image(0)          # float [3, 800, 800], composited on white  # doctest: +SKIP
    >>> write_scene(scene, "out/lego_restored", images=restored)         # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch

from spikegen.errors import OutputExistsError, ShapeError, SpikeFileError
from spikegen.image import save_image
from spikegen.media import IMAGE_SUFFIXES
from spikegen.outputs import atomic_write_text

PathLike = str | os.PathLike
ImagesArg = Sequence[torch.Tensor] | Mapping[str, torch.Tensor] | Callable[["Scene", int], torch.Tensor] | None

_SPLIT_RE = re.compile(r"^transforms_(.+)\.json$")


@dataclass
class SceneFrame:
    """One view of a scene.

    Attributes:
        file_path: the ``file_path`` entry exactly as in the json (e.g. ``"./train/r_0"``).
        transform_matrix: ``[4, 4]`` float64 camera-to-world matrix (OpenGL convention).
        path: the image file it resolves to (``None`` when the file does not exist).
        entry: the whole json entry of the frame (``rotation``, ``time`` ... kept verbatim).
    """

    file_path: str
    transform_matrix: np.ndarray
    path: Path | None
    entry: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The file name stem (``"r_0"``)."""
        return _stem(self.file_path)


@dataclass
class Scene:
    """The views of one split of a scene folder (images are read lazily).

    Attributes:
        root: the scene folder (``file_path`` entries are relative to it).
        split: ``"train"``, ``"test"``, ``"val"``, ``"TFP"`` ...
        frames: the views, in json order.
        camera_angle_x: horizontal field of view in radians.
        width, height: image size in pixels.
        background: RGB in [0, 1] that RGBA images are composited on.
        transforms: the json content as read (written back by :func:`write_scene`).
    """

    root: Path
    split: str
    frames: list[SceneFrame]
    camera_angle_x: float
    width: int
    height: int
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    transforms: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def focal(self) -> float:
        """Horizontal focal length in pixels, ``0.5 * width / tan(0.5 * camera_angle_x)``."""
        if "fl_x" in self.transforms:
            return float(self.transforms["fl_x"])
        return 0.5 * self.width / math.tan(0.5 * self.camera_angle_x)

    @property
    def focal_y(self) -> float:
        """Vertical focal length in pixels (equal to :attr:`focal` unless the json says otherwise)."""
        if "fl_y" in self.transforms:
            return float(self.transforms["fl_y"])
        if "camera_angle_y" in self.transforms:
            return 0.5 * self.height / math.tan(0.5 * float(self.transforms["camera_angle_y"]))
        return self.focal

    @property
    def cx(self) -> float:
        return float(self.transforms.get("cx", self.width / 2.0))

    @property
    def cy(self) -> float:
        return float(self.transforms.get("cy", self.height / 2.0))

    @property
    def poses(self) -> np.ndarray:
        """``[N, 4, 4]`` float64 camera-to-world matrices."""
        if not self.frames:
            return np.zeros((0, 4, 4))
        return np.stack([f.transform_matrix for f in self.frames])

    def intrinsics(self) -> np.ndarray:
        """``[3, 3]`` pinhole matrix ``K`` in pixels."""
        return np.array([[self.focal, 0.0, self.cx], [0.0, self.focal_y, self.cy], [0.0, 0.0, 1.0]])

    def image(self, i: int) -> torch.Tensor:
        """View ``i`` as float ``[3, H, W]`` in [0, 1], RGBA composited on :attr:`background`."""
        f = self.frames[i]
        if f.path is None:
            raise SpikeFileError(f"{self.root}: no image file for file_path {f.file_path!r} "
                                 f"(looked for {_candidates(self.root, f.file_path)[0]})")
        return load_rgba_composited(f.path, self.background)

    def images(self) -> Iterator[torch.Tensor]:
        """All views in order, one at a time."""
        for i in range(len(self.frames)):
            yield self.image(i)

    def subset(self, indices: Sequence[int], split: str | None = None) -> "Scene":
        """A scene with only the given views (the json's ``frames`` list is cut to match)."""
        frames = [replace(self.frames[i], transform_matrix=self.frames[i].transform_matrix.copy(),
                          entry=dict(self.frames[i].entry)) for i in indices]
        tr = dict(self.transforms)
        tr["frames"] = [f.entry for f in frames]
        return Scene(self.root, split or self.split, frames, self.camera_angle_x, self.width, self.height,
                     self.background, tr)


@dataclass
class SpikeGSScene:
    """A SpikeGS scene folder: Blender splits plus the per-view TFP / TFI reconstructions.

    Attributes:
        root: the scene folder.
        splits: every ``transforms_{split}.json`` found, by split name.
        variants: ``"tfp"`` / ``"tfi"`` (and any other ``*_noise`` folder, lower-cased, without the
            suffix) -> a :class:`Scene` whose frames point into that folder with the poses of the
            matching training views.
    """

    root: Path
    splits: dict[str, Scene]
    variants: dict[str, Scene]

    @property
    def train(self) -> Scene:
        return self.splits["train"]

    @property
    def test(self) -> Scene | None:
        return self.splits.get("test")

    @property
    def tfp(self) -> Scene | None:
        return self.variants.get("tfp")

    @property
    def tfi(self) -> Scene | None:
        return self.variants.get("tfi")


# --------------------------------------------------------------------------------------------
# reading


def load_rgba_composited(path: PathLike, background: Sequence[float] = (1.0, 1.0, 1.0)) -> torch.Tensor:
    """Read an image as float ``[3, H, W]``; an alpha channel is composited on ``background``.

    ``rgb * a + background * (1 - a)``, with 8-bit (/255) or 16-bit (/65535) values.
    """
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise SpikeFileError(f"{path}: no such image file")
    try:
        with Image.open(path) as im:
            im.load()
            has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float32)[..., None] / 65535.0
                arr = np.repeat(arr, 3, axis=-1)
            elif has_alpha:
                arr = np.asarray(im.convert("RGBA"), dtype=np.float32) / 255.0
            else:
                arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    except (OSError, ValueError) as exc:
        raise SpikeFileError(f"{path}: cannot read as an image ({exc})") from None
    if arr.shape[-1] == 4:
        bg = np.asarray(background, dtype=np.float32).reshape(1, 1, 3)
        a = arr[..., 3:4]
        arr = arr[..., :3] * a + bg * (1.0 - a)
    t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)
    return t.clamp_(0, 1)


def _candidates(root: Path, file_path: str) -> list[Path]:
    rel = file_path.replace("\\", "/")
    base = root / rel
    if PurePosixPath(rel).suffix.lower() in IMAGE_SUFFIXES:
        return [base]
    return [base.with_name(base.name + ".png")] + [base.with_name(base.name + s) for s in IMAGE_SUFFIXES if s != ".png"] + [base]


def _resolve(root: Path, file_path: str) -> Path | None:
    for c in _candidates(root, file_path):
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
                             f"(tried {_candidates(root, missing[0])[0].name}){more}")
    if "w" in transforms and "h" in transforms:
        width, height = int(transforms["w"]), int(transforms["h"])
    else:
        first = next((f.path for f in frames if f.path is not None), None)
        if first is None:
            raise SpikeFileError(f"{where}: no image found to take the image size from (and no 'w'/'h' in the json)")
        from spikegen.data.common import image_size

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


def _stem(file_path: str) -> str:
    name = PurePosixPath(file_path.replace("\\", "/")).name
    return name[: -len(PurePosixPath(name).suffix)] if PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES else name


def _variant_from_folder(train: Scene, folder: Path, split: str) -> Scene:
    files = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            files.setdefault(p.stem, p)
    frames, entries, missing = [], [], []
    for f in train.frames:
        st = _stem(f.file_path)
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


# --------------------------------------------------------------------------------------------
# writing


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
