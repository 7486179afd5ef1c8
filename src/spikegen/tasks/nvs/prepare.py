"""``spikegen nvs prepare``: a sharp Blender scene -> the blurry views and spike streams of a high-speed capture.

Per training view a blurry image (a motion kernel of the pretraining kernel bank,
:func:`spikegen.degrade.motion_blur`; there is no renderer in this package, so the blur is a
2-D kernel, not the average of renders along the camera path) and a spike stream
(integrate-and-fire of the sharp view, :func:`spikegen.spikes.integrate_and_fire`); test views
are held out as sharp ground truth. The layout written is in :mod:`spikegen.tasks.nvs`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from spikegen.data.scenes import Scene, image_relpath, load_rgba_composited, read_blender_scene, write_scene
from spikegen.degrade import motion_blur, rgb_to_gray
from spikegen.errors import ShapeError, SpikeFileError, SpikeGenError
from spikegen.spikes.io import save_spikes
from spikegen.spikes.simulate import integrate_and_fire
from spikegen.tasks.nvs.helpers import (DEFAULT_GAIN, DEFAULT_VTH, PREPARE_JSON, PathLike, check_outputs,
                                        parse_background, progress_bar, resize, resized_size, view_names,
                                        write_json)

__all__ = ["prepare_scene"]

_INTRINSIC_KEYS_X = ("fl_x", "cx")
_INTRINSIC_KEYS_Y = ("fl_y", "cy")


def _view_seed(seed: int, index: int, stream: int) -> int:
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(index), int(stream)]).generate_state(1)[0])



def _retarget(scene, width: int, height: int, *, split: str | None = None, root: Path | None = None):
    """A copy of ``scene`` at another image size, intrinsics scaled.

    ``camera_angle_x`` is resolution-independent and kept; explicit ``fl_x, cx`` (x) and
    ``fl_y, cy`` (y) keys, top-level or per frame, are scaled by ``width / W`` and
    ``height / H``; ``w`` / ``h`` are set to the new size where present.
    """
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
        out: the output folder (layout in :mod:`spikegen.tasks.nvs`).
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
    check_outputs(planned, overwrite)

    n_total = sum(len(sp.out) for sp in splits)
    bar = progress_bar(n_total * 2, f"prepare {src.name}", progress)

    # pass 1: the sharp scene at the output size (sharp/, same file_path entries)
    by_split = {sp.out.split: sp for sp in splits}

    def sharp_image(sc, i: int) -> torch.Tensor:
        img = resize(by_split[sc.split].source.image(i), (h, w))
        if bar is not None:
            bar.update(1)
        return img

    write_scene([sp.out for sp in splits], out / "sharp", images=sharp_image, overwrite=overwrite)
    (out / "spikes").mkdir(parents=True, exist_ok=True)

    # pass 2: blurry training views + spikes; test views are the sharp ground truth
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
    write_json(out / PREPARE_JSON, meta)
    return meta
