"""``spikegen nvs``: novel-view synthesis of high-speed scenes (paper section 4, Tables 4 and 8).

The two-stage pipeline of the paper: every training view of a fast-moving camera is a blurry RGB
image plus the spike stream recorded over its exposure; stage 1 restores each view (SpikeGen,
or the TFP / TFI baselines of Table 8), stage 2 trains 3D Gaussian splatting on the restored
views and scores renders of held-out test views (PSNR / SSIM / LPIPS).

* :func:`prepare_scene` (``spikegen nvs prepare``) turns a *sharp* Blender / NeRF-synthetic scene
  into that input: per training view a blurry image (a motion kernel of the pretraining kernel
  bank, :func:`spikegen.degrade.motion_blur` -- there is no renderer in this package, so the blur
  is a 2-D kernel, not the average of renders along the camera path) and a spike stream
  (integrate-and-fire of the sharp view, :func:`spikegen.spikes.integrate_and_fire`), with test
  views held out as sharp ground truth.
* :func:`restore_scene` (``spikegen nvs restore``) restores every training view and writes the
  restored scene (Blender layout + nerfstudio's ``transforms.json``).
* :func:`train_3dgs` (``spikegen nvs train``) runs 3DGS with ``gsplat`` on CUDA
  (:mod:`spikegen.tasks.gsplat_train`); without CUDA it raises with the equivalent nerfstudio
  command.
* :func:`evaluate_renders` (``spikegen nvs eval``) scores a folder of renders against a split's
  ground truth (runs anywhere).

Layout written by :func:`prepare_scene` (poses and ``file_path`` entries unchanged, so the folder
is itself a Blender scene of blurry views)::

    OUT/
      transforms_train.json  train/r_1.png ...   blurry training views (RGB, composited)
      transforms_test.json   test/r_0.png ...    sharp held-out views (the metric's ground truth)
      transforms.json                            nerfstudio (train/val/test_filenames)
      spikes/r_1.npz ...                         packed spike stream per training view
      sharp/                                     the same scene, sharp (evaluation only; also
                                                 the "3DGS (Clear)" upper bound's input)
      kernels.npz                                the blur kernel of every training view
      prepare.json                               every option, sizes, seeds, per-view files

Example:
    >>> from spikegen.tasks.nvs import prepare_scene, restore_scene      # doctest: +SKIP
    >>> prepare_scene("shared/data/nvs/lego", "out/lego", resolution=200)  # doctest: +SKIP
    >>> restore_scene("out/lego", "out/lego_tfp", method="tfp")          # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
import shlex
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from spikegen.errors import OutputExistsError, ShapeError, SpikeFileError, SpikeGenError

__all__ = [
    "METHODS",
    "nerfstudio_command",
    "parse_background",
    "prepare_scene",
    "resized_size",
    "restore_scene",
    "restore_views",
    "evaluate_renders",
    "train_3dgs",
    "view_names",
]

PathLike = str | os.PathLike
METHODS = ("spikegen", "tfp", "tfi")
PREPARE_JSON = "prepare.json"
RESTORE_JSON = "restore.json"
DEFAULT_VTH, DEFAULT_GAIN = 1.0, 0.6
_INTRINSIC_KEYS_X = ("fl_x", "cx")
_INTRINSIC_KEYS_Y = ("fl_y", "cy")


# --------------------------------------------------------------------------------------------
# small helpers


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


def _resize(img: torch.Tensor, size_hw: tuple[int, int]) -> torch.Tensor:
    """Antialiased bilinear resize of ``[C, H, W]`` in [0, 1] (identity when the size matches)."""
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
    from spikegen.data.scenes import image_relpath

    rels = [image_relpath(f.file_path) for f in frames]
    stems = [Path(r).stem for r in rels]
    if len(set(stems)) == len(stems):
        return stems
    return [str(Path(r).with_suffix("")).replace("\\", "/").replace("/", "__") for r in rels]


def _view_seed(seed: int, index: int, stream: int) -> int:
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(index), int(stream)]).generate_state(1)[0])


def _quantize(img: torch.Tensor) -> torch.Tensor:
    """What an 8-bit PNG of ``img`` reads back as."""
    return (img.clamp(0, 1) * 255.0).round() / 255.0


def _write_json(path: Path, data: dict) -> None:
    from spikegen.data.scenes import _write_json as write

    write(path, data)


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="view", dynamic_ncols=True)


def _check_outputs(paths: Sequence[Path], overwrite: bool) -> None:
    if overwrite:
        return
    existing = [p for p in paths if p.exists()]
    if existing:
        more = f" (and {len(existing) - 1} more outputs)" if len(existing) > 1 else ""
        raise OutputExistsError(f"{existing[0]}: exists{more}; pass --overwrite (overwrite=True) to replace")


def _retarget(scene, width: int, height: int, *, split: str | None = None, root: Path | None = None):
    """A copy of ``scene`` at another image size, intrinsics scaled.

    ``camera_angle_x`` is resolution-independent and kept; explicit ``fl_x, cx`` (x) and
    ``fl_y, cy`` (y) keys, top-level or per frame, are scaled by ``width / W`` and
    ``height / H``; ``w`` / ``h`` are set to the new size where present.
    """
    from spikegen.data.scenes import Scene

    sx, sy = width / scene.width, height / scene.height

    def scale(d: dict) -> dict:
        d = dict(d)
        for k in _INTRINSIC_KEYS_X:
            if k in d:
                d[k] = float(d[k]) * sx
        for k in _INTRINSIC_KEYS_Y:
            if k in d:
                d[k] = float(d[k]) * sy
        if "w" in d:
            d["w"] = int(width)
        if "h" in d:
            d["h"] = int(height)
        return d

    frames = [replace(f, transform_matrix=f.transform_matrix.copy(), entry=scale(f.entry)) for f in scene.frames]
    tr = scale({k: v for k, v in scene.transforms.items() if k != "frames"})
    tr["frames"] = [f.entry for f in frames]
    return Scene(root or scene.root, split or scene.split, frames, scene.camera_angle_x, int(width), int(height),
                 scene.background, tr)


# --------------------------------------------------------------------------------------------
# prepare


@dataclass
class _PrepareSplit:
    source: Any      # Scene at the source size (its images are read from here)
    out: Any         # Scene at the output size (its file_path entries are written)


def _held_out(train, test_every: int):
    """Hold out every ``test_every``-th training view (index 0, k, 2k, ...) as a ``test`` split whose
    ``file_path`` entries move to ``./test/<name>`` (the poses are unchanged)."""
    n = len(train)
    test_idx = [i for i in range(n) if i % test_every == 0]
    train_idx = [i for i in range(n) if i % test_every != 0]
    if not train_idx:
        raise SpikeGenError(f"--test-every {test_every} holds out all {n} training views; use a larger value "
                            "(or 0 to hold out none)")
    test = train.subset(test_idx, "test")
    names = view_names(test.frames)
    for f, name in zip(test.frames, names):
        f.file_path = f"./test/{name}"
        f.entry["file_path"] = f.file_path
    test.transforms["frames"] = [f.entry for f in test.frames]
    return train.subset(train_idx), test, train_idx, test_idx


def prepare_scene(scene: PathLike, out: PathLike, *, v_th: float = DEFAULT_VTH, gain: float = DEFAULT_GAIN,
                  frames: int = 8, kernels: int = 8, size: int = 40, seed: int = 0, resolution: int | None = None,
                  test_every: int = 8, background: str | Sequence[float] = "white", overwrite: bool = False,
                  progress: bool = True) -> dict:
    """Synthesise the blurry views and spike streams of a high-speed capture from a sharp scene.

    Args:
        scene: a Blender / NeRF-synthetic scene folder with ``transforms_train.json`` (and
            optionally ``transforms_test.json``), RGBA or RGB views.
        out: the output folder (layout in the module docstring).
        v_th: integrate-and-fire threshold ``V_th``.
        gain: charge per step of a white pixel (the training data's 0.6 by default).
        frames: spike frames per view (the paper's 8 for Blender).
        kernels: motion kernels averaged per blur (the pretraining bank's 8).
        size: blur kernel side in pixels *of the source images*; scaled with ``resolution`` so
            the blur is the same camera motion whatever the working resolution (the paper's
            40x40 at lego's 800x800 becomes 10x10 at 200x200).
        seed: base seed; every view's blur and spikes have their own seed derived from it and
            the view's index in the source ``transforms_train.json`` (recorded).
        resolution: resize so the longer side has this many pixels (``None``: keep). Intrinsics
            scale with it: ``camera_angle_x`` is resolution-independent and kept, explicit
            ``fl_x/fl_y/cx/cy/w/h`` keys are scaled.
        test_every: without ``transforms_test.json``, hold out training views 0, k, 2k, ... as
            the sharp test split (``./test/<name>`` in ``transforms_test.json``); 0 = none.
        background: what RGBA views are composited on (``white``, ``black``, ``R,G,B``).
        overwrite: replace existing outputs (otherwise any existing output stops the run
            before anything is written).
        progress: show a progress bar.

    Returns:
        The ``prepare.json`` content (also written to ``out``).

    Raises:
        SpikeFileError: not a Blender scene, missing images; SpikeGenError: bad options;
        OutputExistsError: outputs exist and ``overwrite`` is False.
    """
    from spikegen.data.scenes import image_relpath, read_blender_scene, write_scene
    from spikegen.degrade import motion_blur, rgb_to_gray
    from spikegen.spikes.io import save_spikes
    from spikegen.spikes.simulate import integrate_and_fire

    t0 = time.perf_counter()
    for name, v in (("--vth", v_th), ("--gain", gain)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise SpikeGenError(f"{name} must be a positive number, got {v!r}")
    for name, v in (("--frames", frames), ("--kernels", kernels), ("--size", size)):
        if int(v) < 1:
            raise SpikeGenError(f"{name} must be >= 1, got {v}")
    if int(test_every) < 0:
        raise SpikeGenError(f"--test-every must be >= 0 (0 = hold out nothing), got {test_every}")
    bg = parse_background(background)
    src, out = Path(scene), Path(out)
    if not src.is_dir():
        raise SpikeFileError(f"{src}: no such scene folder")
    if out.resolve() == src.resolve():
        raise SpikeGenError(f"{out}: the output folder must differ from the scene folder")

    train = read_blender_scene(src, "train", bg)
    if len(train) == 0:
        raise SpikeFileError(f"{src}/transforms_train.json: no frames")
    train_src_index = list(range(len(train)))
    if (src / "transforms_test.json").is_file():
        test = read_blender_scene(src, "test", bg)
        test_source, test_src_index = "transforms_test.json", list(range(len(test)))
    elif int(test_every) > 0:
        train, test, train_src_index, test_src_index = _held_out(train, int(test_every))
        test_source = f"every {int(test_every)}th view of transforms_train.json (indices {test_src_index})"
    else:
        test, test_source, test_src_index = None, "none", []
    if test is not None and len(test) == 0:
        test = None
    if test is not None and (test.width, test.height) != (train.width, train.height):
        raise ShapeError(f"{src}: test views are {test.width}x{test.height} but training views are "
                         f"{train.width}x{train.height}; one camera is expected")

    w, h = resized_size(train.width, train.height, resolution)
    scale_x = w / train.width
    ksize = max(1, int(round(int(size) * scale_x)))
    splits = [_PrepareSplit(train, _retarget(train, w, h))]
    if test is not None:
        splits.append(_PrepareSplit(test, _retarget(test, w, h)))
    out_train = splits[0].out
    names = view_names(out_train.frames)
    spike_rel = [f"spikes/{n}.npz" for n in names]

    # every output, checked before anything is written
    planned = [out / PREPARE_JSON, out / "kernels.npz", out / "transforms.json", out / "sharp" / "transforms.json"]
    for sp in splits:
        planned += [out / f"transforms_{sp.out.split}.json", out / "sharp" / f"transforms_{sp.out.split}.json"]
        for f in sp.out.frames:
            rel = image_relpath(f.file_path)
            planned += [out / rel, out / "sharp" / rel]
    planned += [out / r for r in spike_rel]
    _check_outputs(planned, overwrite)

    n_total = sum(len(sp.out) for sp in splits)
    bar = _progress(n_total * 2, f"prepare {src.name}", progress)

    # pass 1: the sharp scene at the output size (sharp/, same file_path entries)
    by_split = {sp.out.split: sp for sp in splits}

    def sharp_image(sc, i: int) -> torch.Tensor:
        img = _resize(by_split[sc.split].source.image(i), (h, w))
        if bar is not None:
            bar.update(1)
        return img

    write_scene([sp.out for sp in splits], out / "sharp", images=sharp_image, overwrite=overwrite)
    (out / "spikes").mkdir(parents=True, exist_ok=True)

    # pass 2: blurry training views + spikes; test views are the sharp ground truth
    from spikegen.data.scenes import load_rgba_composited

    kernel_list: list[np.ndarray] = []
    views: list[dict] = []
    rates: list[float] = []

    def degraded_image(sc, i: int) -> torch.Tensor:
        rel = image_relpath(sc.frames[i].file_path)
        sharp = load_rgba_composited(out / "sharp" / rel, bg)
        if sc.split != out_train.split:
            if bar is not None:
                bar.update(1)
            return sharp
        idx = train_src_index[i]
        s_blur, s_spk = _view_seed(seed, idx, 0), _view_seed(seed, idx, 1)
        blurry, k = motion_blur(sharp[None], kernels=int(kernels), size=ksize,
                                generator=torch.Generator().manual_seed(s_blur), return_kernel=True)
        gray = rgb_to_gray(sharp)[None]
        spk = integrate_and_fire(gray, v_th=float(v_th), gain=float(gain), steps=int(frames), init="random",
                                 generator=torch.Generator().manual_seed(s_spk))[0]
        save_spikes(out / spike_rel[i], spk.numpy(), overwrite=True, v_th=float(v_th), gain=float(gain),
                    source=sc.frames[i].file_path, seed=s_spk, init="random")
        kernel_list.append(k[0].numpy().astype(np.float32))
        rates.append(float(spk.float().mean()))
        views.append({"file_path": sc.frames[i].file_path, "image": rel, "sharp": f"sharp/{rel}",
                      "spikes": spike_rel[i], "source_index": idx, "blur_seed": s_blur, "spike_seed": s_spk,
                      "firing_rate": round(rates[-1], 6)})
        if bar is not None:
            bar.update(1)
        return blurry[0].clamp(0, 1)

    write_scene([sp.out for sp in splits], out, images=degraded_image, overwrite=overwrite)
    if bar is not None:
        bar.close()
    np.savez(out / "kernels.npz", kernels=np.stack(kernel_list), names=np.array(names))

    test_out = splits[1].out if len(splits) > 1 else None
    meta = {
        "format": "spikegen-nvs-prepared",
        "version": 1,
        "source": str(src.resolve()),
        "options": {"v_th": float(v_th), "gain": float(gain), "frames": int(frames), "kernels": int(kernels),
                    "size": int(size), "seed": int(seed), "resolution": resolution, "test_every": int(test_every),
                    "background": list(bg)},
        "blur": {"method": "motion kernel bank (spikegen.degrade.motion_blur): no renderer, a 2-D kernel per view",
                 "kernels": int(kernels), "size_source_px": int(size), "size_px": ksize, "spread_deg": 30.0,
                 "weights": [0.8, 1.2], "file": "kernels.npz"},
        "spikes": {"method": "integrate-and-fire of the sharp view (spikegen.spikes.integrate_and_fire)",
                   "v_th": float(v_th), "gain": float(gain), "frames": int(frames), "init": "random",
                   "format": "packed .npz (spikegen.spikes.save_spikes)",
                   "mean_firing_rate": round(float(np.mean(rates)), 6) if rates else None},
        "camera": {"source_size": [train.width, train.height], "size": [w, h],
                   "scale": [w / train.width, h / train.height], "camera_angle_x": train.camera_angle_x,
                   "focal_px": out_train.focal, "note": "camera_angle_x is resolution-independent; "
                   "fl_x/fl_y/cx/cy/w/h keys (if any) are scaled"},
        "background": list(bg),
        "splits": {"train": len(out_train), "test": len(test_out) if test_out is not None else 0},
        "test_source": test_source,
        "views": views,
        "test_views": ([{"file_path": f.file_path, "image": image_relpath(f.file_path), "source_index": j}
                        for f, j in zip(test_out.frames, test_src_index)] if test_out is not None else []),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    _write_json(out / PREPARE_JSON, meta)
    return meta


# --------------------------------------------------------------------------------------------
# restore


def restore_views(method: str, blurry: torch.Tensor, spikes: torch.Tensor, *, v_th: float = DEFAULT_VTH,
                  gain: float = DEFAULT_GAIN, model: Any = None, gamma: float = 0.5, steps: int | None = None,
                  generator: torch.Generator | None = None, colour: str = "input") -> torch.Tensor:
    """Restore a batch of views from their blurry image and spike stream.

    Args:
        method: ``spikegen`` (blurry RGB + spikes, modality ratio ``gamma``), ``tfp`` (mean
            firing rate x ``v_th / gain``) or ``tfi`` (``v_th / (gain * d)`` at the middle frame,
            ``d`` the interspike interval); TFP and TFI are gray, expanded to 3 channels.
        blurry: ``[B, 3, H, W]`` in [0, 1] (unused by TFP / TFI).
        spikes: ``[B, T, H, W]`` of {0, 1}.
        v_th, gain: the sensor's threshold and gain (a pixel of intensity ``I`` fires at rate
            ``gain * I / v_th``), which turn TFP / TFI back into intensities.
        model: a :class:`spikegen.models.SpikeGen` for ``spikegen``.
        colour: ``spikegen`` only: ``"input"`` (SpikeGen's luminance, the blurry view's chroma)
            or ``"model"`` (see :func:`spikegen.tasks.deblur.deblur_image`).

    Returns:
        ``[B, 3, H, W]`` float32 in [0, 1] on the CPU.

    Example:
        >>> s = torch.zeros(1, 8, 4, 4, dtype=torch.uint8); s[:, ::2] = 1
        >>> restore_views("tfp", torch.zeros(1, 3, 4, 4), s, v_th=1.0, gain=1.0)[0, :, 0, 0].tolist()
        [0.5, 0.5, 0.5]
    """
    from spikegen.spikes.reconstruct import tfi, tfp

    if method not in METHODS:
        raise SpikeGenError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    if spikes.ndim != 4:
        raise ShapeError(f"spikes: expected [B, T, H, W], got {tuple(spikes.shape)}")
    t = spikes.shape[1]
    if method == "tfp":
        img = tfp(spikes, t, centers=[t // 2], scale=float(v_th) / float(gain))[:, 0]
    elif method == "tfi":
        img = tfi(spikes, v_th=float(v_th) / float(gain), centers=[t // 2])[:, 0]
    else:
        from spikegen.tasks.deblur import deblur_image

        if model is None:
            raise SpikeGenError("method 'spikegen' needs a model")
        return deblur_image(model, blurry, spikes, gamma=gamma, steps=steps, generator=generator,
                            colour=colour).image.clamp(0, 1)
    return img.clamp(0, 1)[:, None].expand(-1, 3, -1, -1).float().cpu().contiguous()


def _load_prepared(scene: Path):
    """The train / test splits of a prepared scene, each training view's spike file, v_th, gain."""
    from spikegen.data.scenes import read_blender_scene

    if not scene.is_dir():
        raise SpikeFileError(f"{scene}: no such scene folder")
    meta: dict = {}
    if (scene / PREPARE_JSON).is_file():
        try:
            meta = json.loads((scene / PREPARE_JSON).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise SpikeFileError(f"{scene / PREPARE_JSON}: cannot read ({exc})") from None
    bg = tuple(meta.get("background", (1.0, 1.0, 1.0)))
    train = read_blender_scene(scene, "train", bg)
    test = read_blender_scene(scene, "test", bg) if (scene / "transforms_test.json").is_file() else None
    by_path = {v["file_path"]: v.get("spikes") for v in meta.get("views", []) if isinstance(v, dict)}
    names = view_names(train.frames)
    spike_files: list[Path] = []
    missing: list[str] = []
    for f, name in zip(train.frames, names):
        rel = by_path.get(f.file_path) or f"spikes/{name}.npz"
        p = scene / rel
        if not p.is_file():
            missing.append(str(p))
        spike_files.append(p)
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise SpikeFileError(f"{missing[0]}: no spike stream for this training view{more}; a scene to restore needs "
                             "one packed .npz per training view under spikes/ (make one with `spikegen nvs prepare`)")
    opts = meta.get("spikes", {})
    return train, test, spike_files, meta, opts.get("v_th"), opts.get("gain")


def _spike_batch(files: Sequence[Path], size_hw: tuple[int, int], names: Sequence[str]) -> tuple[torch.Tensor, list[dict]]:
    from spikegen.spikes.io import load_spikes

    arrs, metas = [], []
    for p, name in zip(files, names):
        a, m = load_spikes(p, with_meta=True)
        if tuple(a.shape[-2:]) != tuple(size_hw):
            raise ShapeError(f"{p}: spike frames are {a.shape[1]}x{a.shape[2]} but view {name} is "
                             f"{size_hw[0]}x{size_hw[1]} (height x width)")
        arrs.append(a)
        metas.append(m)
    t = {a.shape[0] for a in arrs}
    if len(t) > 1:
        n = min(t)
        arrs = [a[(a.shape[0] - n) // 2:(a.shape[0] - n) // 2 + n] for a in arrs]  # centred common window
    return torch.from_numpy(np.stack(arrs)), metas


def restore_scene(scene: PathLike, out: PathLike, *, method: str = "spikegen", weights: PathLike | None = None,
                  gamma: float = 0.5, steps: int | None = None, batch: int = 4, seed: int = 0,
                  device: str | torch.device | None = None, overwrite: bool = False, progress: bool = True,
                  model: Any = None, colour: str = "input") -> dict:
    """Restore every training view of a prepared scene and write the restored scene.

    Args:
        scene: a folder written by :func:`prepare_scene` (or any Blender scene of blurry views
            with ``spikes/<name>.npz`` per training view).
        out: the restored scene: training views at exactly their ``file_path`` entries, the
            test split (sharp ground truth) copied, ``transforms_*.json`` unchanged, nerfstudio's
            ``transforms.json``, and ``restore.json`` (options, timing, and -- when the scene
            has ``sharp/`` -- PSNR / SSIM of each restored and blurry view against the sharp one).
        method: ``spikegen``, ``tfp`` or ``tfi`` (see :func:`restore_views`).
        weights: SpikeGen weights folder (default: the shipped weights).
        gamma: SpikeGen modality ratio (0 = RGB only, 1 = spikes only).
        steps: diffusion steps (default: the model's ``sample_steps``).
        batch: views per SpikeGen call.
        seed: sampler seed; batch ``k`` (views ``k*batch ...``) uses ``seed + k*batch``, so the
            result depends on ``seed`` and ``batch``.
        device: where SpikeGen runs (default: CUDA when available, else CPU).
        model: an already loaded SpikeGen (instead of ``weights``).
        colour: SpikeGen's colour: ``"input"`` (default; the blurry view's chroma) or ``"model"``.

    Returns:
        The ``restore.json`` content.
    """
    from spikegen.data.scenes import image_relpath, load_rgba_composited, write_scene
    from spikegen.metrics import psnr, ssim

    t0 = time.perf_counter()
    if method not in METHODS:
        raise SpikeGenError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    from spikegen.tasks.deblur import check_colour

    check_colour(colour)
    if int(batch) < 1:
        raise SpikeGenError(f"--batch must be >= 1, got {batch}")
    if not 0.0 <= float(gamma) <= 1.0:
        raise SpikeGenError(f"--gamma must lie in [0, 1] (0 = RGB only, 1 = spikes only), got {gamma}")
    src, out = Path(scene), Path(out)
    if src.is_dir() and out.resolve() == src.resolve():
        raise SpikeGenError(f"{out}: the output folder must differ from the scene folder")
    train, test, spike_files, meta, v_th, gain = _load_prepared(src)
    splits = [train] + ([test] if test is not None else [])
    planned = [out / RESTORE_JSON, out / "transforms.json"] + [out / f"transforms_{s.split}.json" for s in splits]
    planned += [out / image_relpath(f.file_path) for s in splits for f in s.frames]
    _check_outputs(planned, overwrite)

    weights_info = None
    if method == "spikegen":
        weights_info = "a model passed in" if model is not None else str(weights) if weights is not None else "default (shipped)"
    if method == "spikegen" and model is None:
        from spikegen.tasks.reconstruct import load_default_model

        dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if str(dev).startswith("cuda") and not torch.cuda.is_available():
            raise SpikeGenError(f"--device {dev}: CUDA is not available on this machine (use --device cpu)")
        model = load_default_model(weights, device=dev)
    names = view_names(train.frames)
    sharp_root = src / "sharp"
    has_sharp = (sharp_root / f"transforms_{train.split}.json").is_file()
    bar = _progress(len(train), f"restore {method}", progress)
    cache: dict[int, torch.Tensor] = {}
    per_view: list[dict] = []
    sensor = {"v_th": v_th, "gain": gain}

    def compute(start: int) -> None:
        idx = list(range(start, min(start + int(batch), len(train))))
        blurry = torch.stack([train.image(i) for i in idx])
        spikes, metas = _spike_batch([spike_files[i] for i in idx], (train.height, train.width), [names[i] for i in idx])
        vt = v_th if v_th is not None else metas[0].get("v_th", DEFAULT_VTH)
        gn = gain if gain is not None else metas[0].get("gain", DEFAULT_GAIN)
        sensor.update(v_th=float(vt), gain=float(gn))
        g = torch.Generator().manual_seed(int(seed) + start)
        res = restore_views(method, blurry, spikes, v_th=float(vt), gain=float(gn), model=model, gamma=float(gamma),
                            steps=steps, generator=g, colour=colour)
        for j, i in enumerate(idx):
            img = res[j].float().cpu()
            cache[i] = img
            row = {"view": names[i], "file_path": train.frames[i].file_path}
            if has_sharp:
                sharp_path = sharp_root / image_relpath(train.frames[i].file_path)
                if sharp_path.is_file():
                    ref = load_rgba_composited(sharp_path)
                    q, b = _quantize(img)[None], blurry[j][None]
                    row.update(psnr=float(psnr(q, ref[None])), ssim=float(ssim(q, ref[None])),
                               psnr_blurry=float(psnr(b, ref[None])), ssim_blurry=float(ssim(b, ref[None])))
            per_view.append(row)
        if bar is not None:
            bar.update(len(idx))

    def restored(sc, i: int) -> torch.Tensor:
        if sc.split != train.split:
            return sc.image(i)
        if i not in cache:
            compute(i)
        return cache.pop(i)

    write_scene(splits, out, images=restored, overwrite=overwrite)
    if bar is not None:
        bar.close()
    scored = [r for r in per_view if "psnr" in r]
    summary = {}
    if scored:
        for k in ("psnr", "ssim", "psnr_blurry", "ssim_blurry"):
            summary[k] = round(float(np.mean([r[k] for r in scored])), 4)
    info = {
        "format": "spikegen-nvs-restored",
        "version": 1,
        "source": str(src.resolve()),
        "method": method,
        "options": {"gamma": float(gamma) if method == "spikegen" else None,
                    "colour": colour if method == "spikegen" else None, "steps": steps, "batch": int(batch),
                    "seed": int(seed), "weights": weights_info},
        "sensor": sensor,
        "device": str(getattr(model, "device", "cpu")) if model is not None else "cpu",
        "splits": {s.split: len(s) for s in splits},
        "vs_sharp": {"mean": summary, "views": per_view} if scored else None,
        "seconds": round(time.perf_counter() - t0, 3),
        "seconds_per_view": round((time.perf_counter() - t0) / max(len(train), 1), 4),
    }
    _write_json(out / RESTORE_JSON, info)
    return info


# --------------------------------------------------------------------------------------------
# 3DGS and evaluation


def nerfstudio_command(scene: PathLike, iterations: int = 30000, background: str = "white") -> str:
    """The nerfstudio commands that train and score 3DGS (``splatfacto``) on a scene written here.

    ``nerfstudio-data`` reads the ``transforms.json`` that :func:`write_scene` adds; its
    ``train/val/test_filenames`` select the splits (val = test). The pose normalisation of that
    parser is turned off so the Blender frame is kept.
    """
    bgc = background if background in ("white", "black") else "white"
    data = shlex.quote(str(scene))
    return (f"ns-train splatfacto --max-num-iterations {int(iterations)} --pipeline.model.background-color {bgc} "
            f"nerfstudio-data --data {data} --orientation-method none --center-method none --auto-scale-poses False\n"
            f"  then: ns-eval --load-config outputs/<experiment>/splatfacto/<timestamp>/config.yml "
            f"--output-path {shlex.quote(str(Path(scene) / 'ns_eval.json'))}")


def _metric_rows(pairs: Sequence[tuple[str, torch.Tensor, torch.Tensor]], use_lpips: bool) -> dict:
    from spikegen.metrics import lpips, psnr, ssim

    from spikegen.metrics.lpips import MIN_SIZE

    rows = []
    for name, pred, gt in pairs:
        p, g = pred[None].float(), gt[None].float()
        row = {"view": name, "psnr": float(psnr(p, g)), "ssim": float(ssim(p, g))}
        if use_lpips and min(p.shape[-2:]) >= MIN_SIZE:
            with torch.no_grad():
                row["lpips"] = float(lpips(p, g))
        rows.append(row)
    keys = ["psnr", "ssim"] + (["lpips"] if use_lpips and rows and all("lpips" in r for r in rows) else [])
    mean = {k: float(np.mean([r[k] for r in rows])) for k in keys} if rows else {}
    return {"mean": mean, "views": rows}


def evaluate_renders(run: PathLike, *, scene: PathLike | None = None, split: str = "test",
                     renders: PathLike | None = None, background: str | Sequence[float] | None = None,
                     use_lpips: bool = True, output: PathLike | None = None, overwrite: bool = False) -> dict:
    """Score renders of a split's views against its ground truth (PSNR, SSIM, LPIPS).

    Args:
        run: a folder written by :func:`train_3dgs` (``renders/`` + ``run.json``) or any folder
            of renders.
        scene: the scene whose ``split`` holds the ground truth (default: the one in
            ``run/run.json``).
        split: which ``transforms_{split}.json`` to score.
        renders: the renders folder (default ``run/renders`` if it exists, else ``run``); one
            image per view, named ``<view name>.png`` (:func:`view_names`: the ``file_path``
            stem, e.g. ``r_0.png``).
        background: what RGBA ground truth is composited on (default: the run's, else white).
        use_lpips: also compute LPIPS (AlexNet, shipped weights).
        output: the metrics file (default ``run/metrics.json``); never replaced without
            ``overwrite``.

    Returns:
        ``{"scene", "split", "renders", "mean": {psnr, ssim, lpips}, "views": [...]}``: PSNR in
        dB on RGB [0, 1]; SSIM Gaussian (11x11, sigma 1.5) per channel on RGB [0, 1]; LPIPS v0.1
        AlexNet on RGB in [-1, 1].
    """
    from spikegen.data.scenes import load_rgba_composited, read_blender_scene
    from spikegen.image import IMAGE_SUFFIXES

    run = Path(run)
    if not run.is_dir():
        raise SpikeFileError(f"{run}: no such folder")
    run_meta: dict = {}
    if (run / "run.json").is_file():
        try:
            run_meta = json.loads((run / "run.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise SpikeFileError(f"{run / 'run.json'}: cannot read ({exc})") from None
    if scene is None:
        scene = run_meta.get("scene")
        if scene is None:
            raise SpikeGenError(f"{run}: no run.json naming the scene; pass --scene SCENE (the folder whose "
                                f"transforms_{split}.json holds the ground truth)")
    rdir = Path(renders) if renders is not None else (run / "renders" if (run / "renders").is_dir() else run)
    if not rdir.is_dir():
        raise SpikeFileError(f"{rdir}: no such renders folder")
    output = Path(output) if output is not None else run / "metrics.json"
    _check_outputs([output], overwrite)
    bg = parse_background(background) if background is not None else tuple(run_meta.get("background", (1.0, 1.0, 1.0)))
    gt = read_blender_scene(scene, split, bg)
    names = view_names(gt.frames)
    pairs = []
    missing = []
    for i, name in enumerate(names):
        cand = [rdir / f"{name}{s}" for s in (".png",) + tuple(x for x in IMAGE_SUFFIXES if x != ".png")]
        path = next((c for c in cand if c.is_file()), None)
        if path is None:
            missing.append(f"{name}.png")
            continue
        pred = load_rgba_composited(path, bg)
        ref = gt.image(i)
        if pred.shape != ref.shape:
            raise ShapeError(f"{path}: render is {pred.shape[-2]}x{pred.shape[-1]} but the ground truth view {name} "
                             f"is {ref.shape[-2]}x{ref.shape[-1]} (height x width)")
        pairs.append((name, pred, ref))
    if missing:
        raise SpikeFileError(f"{rdir}: no render for {len(missing)} of the {len(names)} {split} views "
                             f"(e.g. {missing[0]}; renders are named after the file_path stems)")
    result = {"scene": str(Path(scene).resolve()), "split": split, "renders": str(rdir.resolve()),
              "metrics": {"psnr": "dB, RGB in [0, 1]", "ssim": "Gaussian 11x11 sigma 1.5, per channel, RGB [0, 1]",
                          "lpips": ("v0.1 AlexNet (images under 31 px get none)" if use_lpips else None)},
              **_metric_rows(pairs, use_lpips)}
    _write_json(output, result)
    return result


def train_3dgs(scene: PathLike, out: PathLike | None = None, *, iterations: int = 30000, ssim_weight: float = 0.2,
               resolution: int | None = None, background: str | Sequence[float] | None = None,
               overwrite: bool = False, progress: bool = True, **config: Any) -> dict:
    """Train 3D Gaussian splatting (gsplat, CUDA) on a scene and score its test views.

    Checks the scene first, then CUDA, then that ``gsplat`` imports; each failure raises
    :class:`SpikeGenError` with what to do (the nerfstudio command that does the same, or
    ``pip install gsplat``). The work itself is :func:`spikegen.tasks.gsplat_train.run_3dgs`.

    Args:
        scene: a Blender scene (typically the output of :func:`restore_scene`).
        out: the run folder (default ``SCENE/3dgs``): ``renders/``, ``metrics.json``,
            ``run.json``, ``splats.safetensors``, ``point_cloud.ply``.
        iterations, ssim_weight, resolution: see :class:`spikegen.tasks.gsplat_train.GSplatConfig`;
            ``config`` takes any other field of it.
    """
    from spikegen.data.scenes import read_blender_scene

    scene = Path(scene)
    bg = parse_background(background)
    if not (scene / "transforms_train.json").is_file():
        read_blender_scene(scene, "train", bg)  # raises with the splits found
    if not torch.cuda.is_available():
        raise SpikeGenError(
            "3D Gaussian splatting (gsplat) needs a CUDA GPU and this machine has none (torch.cuda.is_available() "
            "is False). Run `spikegen nvs train` on a CUDA machine with `pip install gsplat`, or train with "
            "nerfstudio there:\n  " + nerfstudio_command(scene, iterations, background or "white"))
    try:
        import gsplat  # noqa: F401
    except ImportError as exc:
        raise SpikeGenError(
            f"gsplat is not importable ({exc}); install it with `pip install gsplat` (it compiles its CUDA kernels on "
            "first use and needs a CUDA toolkit matching your torch build), or train with nerfstudio:\n  "
            + nerfstudio_command(scene, iterations, background or "white")) from None
    from spikegen.tasks.gsplat_train import GSplatConfig, run_3dgs

    cfg = GSplatConfig(iterations=int(iterations), ssim_weight=float(ssim_weight), resolution=resolution,
                       background=bg, **config)
    return run_3dgs(scene, Path(out) if out is not None else scene / "3dgs", cfg, overwrite=overwrite,
                    progress=progress)
