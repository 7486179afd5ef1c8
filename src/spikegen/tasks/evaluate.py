"""``spikegen eval``: the evaluation protocols of DESIGN.md section 4, with a report.

Three tasks (every detail is in ``docs/evaluation.md``):

* ``deblur`` -- GOPRO-style conditional deblurring. From an image folder: each image (sorted,
  index ``i``) is prepared exactly as the training data :class:`spikegen.data.SyntheticPairs`
  does with ``augment=False``: centre crop ``size`` (upscaled first when smaller), motion blur
  with the average of 8 random 40x40 kernels, and 8 integrate-and-fire frames of the **sharp**
  crop's gray at gain 0.6 (:data:`spikegen.data.DEFAULT_GAIN`), all drawn from one generator
  seeded with ``sample_seed(seed, 0, i)``. The same seed is used at every ``V_th``, so the
  blurry image is identical across thresholds and only the spikes change. From a video
  folder (``source="video"``): :class:`spikegen.data.VideoPairs` windows of ``n_blur`` frames
  (blur = their mean, spikes over the same frames, target = the middle frame),
  non-overlapping. Methods are scored on gray (BT.601 luma of prediction and target) and RGB
  methods also on RGB: PSNR, SSIM (Gaussian 11x11, sigma 1.5), LPIPS (AlexNet).
* ``reconstruct`` -- STIR-style: ``spike/*.dat`` + ``gt/*.png`` (Spk2ImgNet layout), a
  61-frame window centred on the GT frame; PSNR and SSIM (MATLAB protocol) on 8-bit gray
  [0, 255], LPIPS on gray.
* ``real`` -- no-reference NIQE and BRISQUE of reconstructions of real captures (every
  ``.dat`` / ``.npz`` / ``.npy`` in the folder) at a few evenly spaced centres.

Each run writes ``results.json``, ``results.csv`` (the summary table), ``per_image.csv``,
``results.md``, ``report.html`` (with side-by-side images under ``images/``) and, for
``deblur``, ``psnr_vs_vth.png``.

Example:
    >>> from spikegen.tasks.evaluate import run_eval
    >>> report = run_eval("deblur", "shared/data/images/mcmaster18", "outputs/eval",
    ...                   methods="blurry,tfp,tfi", v_ths=(1, 2, 4))   # doctest: +SKIP
"""

from __future__ import annotations

import csv
import json
import math
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from spikegen.defaults import DEFAULT_GAIN
from spikegen.errors import OutputExistsError, SpikeFileError, SpikeGenError
from spikegen.image import stretch

__all__ = [
    "TASKS",
    "DEFAULT_METHODS",
    "Method",
    "parse_methods",
    "parse_floats",
    "deblur_scores",
    "reconstruct_scores",
    "evaluate_deblur",
    "evaluate_reconstruct",
    "evaluate_real",
    "run_eval",
    "display_rows",
]

TASKS = ("deblur", "reconstruct", "real")
DEFAULT_METHODS: dict[str, tuple[str, ...]] = {
    "deblur": ("blurry", "tfp", "tfi", "spikegen-0", "spikegen-0.5", "spikegen-1"),
    "reconstruct": ("tfp", "tfi", "spikegen"),
    "real": ("tfp", "tfi", "spikegen"),
}
#: The Spk2ImgNet / REDS streams fire at about 0.6 x the intensity (shared/data/SOURCES.md).
SPK2IMGNET_RATE_SCALE = 1 / DEFAULT_GAIN

#: Column titles of the summary tables (results.md, report.html): the space each metric is in.
DISPLAY = {
    "method": "method", "v_th": "V_th", "n": "images",
    "psnr_gray": "PSNR gray (dB) ↑", "ssim_gray": "SSIM gray ↑", "lpips_gray": "LPIPS gray ↓",
    "psnr_rgb": "PSNR RGB (dB) ↑", "ssim_rgb": "SSIM RGB ↑", "lpips_rgb": "LPIPS RGB ↓",
    "psnr": "PSNR 8-bit gray (dB) ↑", "ssim": "SSIM MATLAB gray [0,255] ↑", "lpips": "LPIPS gray ↓",
    "niqe": "NIQE ↓", "brisque": "BRISQUE ↓",
}
METRIC_DOC = {
    "psnr_gray": "PSNR in dB of the BT.601 gray (0.2989 R + 0.5870 G + 0.1140 B) of prediction and sharp image, [0, 1] float",
    "ssim_gray": "SSIM (Gaussian 11x11, sigma 1.5, K1 0.01, K2 0.03, valid region) of the gray images, [0, 1] float",
    "lpips_gray": "LPIPS v0.1 AlexNet of the gray images repeated to 3 channels",
    "psnr_rgb": "PSNR in dB on RGB [0, 1] float (RGB methods only)",
    "ssim_rgb": "SSIM (Gaussian) on RGB, per channel then averaged (RGB methods only)",
    "lpips_rgb": "LPIPS v0.1 AlexNet on RGB (RGB methods only)",
    "psnr": "PSNR in dB of the 8-bit gray images (values rounded to 0..255 as MATLAB im2uint8)",
    "ssim": "SSIM, protocol='matlab': 8-bit gray [0, 255], L = 255, Gaussian 11x11 (Wang's ssim_index.m)",
    "lpips": "LPIPS v0.1 AlexNet of the gray images repeated to 3 channels",
    "niqe": "NIQE (MATLAB parameters) of the 8-bit gray reconstruction; lower is better",
    "brisque": "BRISQUE (MATLAB/LIBSVM model) of the 8-bit gray reconstruction; lower is better",
}


# ----------------------------------------------------------------------------- parsing
@dataclass(frozen=True)
class Method:
    """One evaluated method: ``kind`` in blurry / tfp / tfi / spikegen, ``gamma`` for SpikeGen."""

    name: str
    kind: str
    gamma: float | None = None

    @property
    def label(self) -> str:
        if self.kind == "spikegen":
            return f"SpikeGen g={self.gamma:g}"
        return {"blurry": "blurry input", "tfp": "TFP", "tfi": "TFI"}[self.kind]


def parse_floats(value: str | float | Sequence[float], name: str, *, positive: bool = True) -> list[float]:
    """``"1,2,4"`` or ``[1, 2, 4]`` -> ``[1.0, 2.0, 4.0]`` (checked)."""
    if isinstance(value, (int, float)):
        items: list[Any] = [value]
    elif isinstance(value, str):
        items = [v for v in value.replace(" ", "").split(",") if v]
    else:
        items = list(value)
    out = []
    for v in items:
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise SpikeGenError(f"{name}: {v!r} is not a number (expected a comma-separated list such as 1,2,4)") from None
        if not math.isfinite(f) or (positive and f <= 0):
            raise SpikeGenError(f"{name}: values must be finite{' and > 0' if positive else ''}, got {v!r}")
        out.append(f)
    if not out:
        raise SpikeGenError(f"{name}: empty list")
    return out


def parse_methods(methods: str | Sequence[str] | None, task: str) -> list[Method]:
    """Parse ``"blurry,tfp,tfi,spikegen-0.5"`` for ``task``.

    Names: ``blurry`` (deblur only), ``tfp``, ``tfi``, ``spikegen-G`` with G in [0, 1] (the
    modality ratio), and ``spikegen`` (= ``spikegen-0.5``; for reconstruct and real: "TFP & Spike", the TFP standing in for the RGB input).

    Raises:
        SpikeGenError: unknown or duplicated names, a method the task cannot run.

    Example:
        >>> [m.name for m in parse_methods("blurry,tfp,spikegen-0.5", "deblur")]
        ['blurry', 'tfp', 'spikegen-0.5']
    """
    if task not in TASKS:
        raise SpikeGenError(f"unknown eval task {task!r}; expected one of {', '.join(TASKS)}")
    if methods is None:
        names = list(DEFAULT_METHODS[task])
    elif isinstance(methods, str):
        names = [m.strip().lower() for m in methods.split(",") if m.strip()]
    else:
        names = [str(m).strip().lower() for m in methods]
    if not names:
        raise SpikeGenError("--methods: empty list")
    allowed = "blurry, tfp, tfi, spikegen-G (G in [0, 1], e.g. spikegen-0.5)" if task == "deblur" else \
        "tfp, tfi, spikegen (TFP & Spike, g = 0.5) or spikegen-G (G in [0, 1])"
    out: list[Method] = []
    for n in names:
        if n in ("tfp", "tfi"):
            m = Method(n, n)
        elif n == "blurry":
            if task != "deblur":
                raise SpikeGenError(f"--methods: 'blurry' needs an RGB input; eval {task} has none (use {allowed})")
            m = Method(n, n)
        elif n == "spikegen" or n.startswith("spikegen-"):
            if n == "spikegen":
                # "TFP & Spike" needs both branches: at g = 1 the TFP pseudo-frame would be unused
                g = 0.5
            else:
                try:
                    g = float(n[len("spikegen-"):])
                except ValueError:
                    raise SpikeGenError(f"--methods: bad SpikeGen ratio in {n!r}; expected spikegen-G with G in [0, 1]") from None
            if not 0.0 <= g <= 1.0:
                raise SpikeGenError(f"--methods: {n!r}: the modality ratio G must lie in [0, 1]")
            m = Method(f"spikegen-{g:g}" if n != "spikegen" else "spikegen", "spikegen", g)
        else:
            raise SpikeGenError(f"--methods: unknown method {n!r} for eval {task}; expected {allowed}")
        if any(o.name == m.name or (o.kind == "spikegen" and o.gamma == m.gamma and m.kind == "spikegen") for o in out):
            raise SpikeGenError(f"--methods: {n!r} is given twice")
        out.append(m)
    return out


# ----------------------------------------------------------------------------- metrics
def _gray(x: torch.Tensor) -> torch.Tensor:
    from spikegen.degrade import rgb_to_gray

    return rgb_to_gray(x) if x.shape[-3] == 3 else x


def deblur_scores(pred: torch.Tensor, sharp: torch.Tensor) -> dict[str, float]:
    """Scores of a deblurring prediction ``[C,H,W]`` (C 1 or 3) against the sharp ``[3,H,W]``.

    Always ``psnr_gray``, ``ssim_gray``, ``lpips_gray`` (BT.601 gray of both); for a 3-channel
    prediction also ``psnr_rgb``, ``ssim_rgb``, ``lpips_rgb``. Inputs are clamped to [0, 1].

    Example:
        >>> x = torch.rand(3, 32, 32)
        >>> sorted(deblur_scores(x, x))[:3]
        ['lpips_gray', 'lpips_rgb', 'psnr_gray']
    """
    from spikegen.metrics import lpips, psnr, ssim

    p, s = pred.detach().float().cpu().clamp(0, 1), sharp.detach().float().cpu().clamp(0, 1)
    pg, sg = _gray(p)[None], _gray(s)[None]
    out = {
        "psnr_gray": float(psnr(pg, sg)),
        "ssim_gray": float(ssim(pg, sg)),
        "lpips_gray": float(lpips(pg.expand(-1, 3, -1, -1), sg.expand(-1, 3, -1, -1))),
    }
    if p.shape[0] == 3:
        out.update(psnr_rgb=float(psnr(p[None], s[None])), ssim_rgb=float(ssim(p[None], s[None])),
                   lpips_rgb=float(lpips(p[None], s[None])))
    return out


def _u8(x: torch.Tensor) -> torch.Tensor:
    """Round-half-up 8-bit quantisation (MATLAB ``im2uint8``) of [0, 1] values."""
    return torch.floor(x.double().clamp(0, 1) * 255.0 + 0.5).to(torch.uint8)


def reconstruct_scores(pred: torch.Tensor, gt: torch.Tensor) -> dict[str, float]:
    """STIR-style scores of a gray reconstruction ``[C,H,W]`` against the ground truth.

    ``psnr`` and ``ssim`` (``protocol="matlab"``) on 8-bit gray [0, 255]; ``lpips`` on the
    float gray repeated to 3 channels.
    """
    from spikegen.metrics import lpips, psnr, ssim

    pg, tg = _gray(pred.detach().float().cpu().clamp(0, 1)), _gray(gt.detach().float().cpu().clamp(0, 1))
    return {
        "psnr": float(psnr(_u8(pg)[None].double() / 255.0, _u8(tg)[None].double() / 255.0)),
        "ssim": float(ssim(_u8(pg)[None], _u8(tg)[None], protocol="matlab")),
        "lpips": float(lpips(pg[None].expand(-1, 3, -1, -1), tg[None].expand(-1, 3, -1, -1))),
    }


# ----------------------------------------------------------------------------- helpers
def _warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr, flush=True)


def _check_out(out_dir: Path, overwrite: bool) -> None:
    names = ("results.json", "results.csv", "results.md", "report.html", "per_image.csv", "psnr_vs_vth.png")
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputExistsError(f"-o {out_dir}: exists and is not a folder")
    busy = [out_dir / n for n in names if (out_dir / n).exists()]
    if (out_dir / "images").is_dir() and any((out_dir / "images").iterdir()):
        busy.append(out_dir / "images")
    if busy and not overwrite:
        raise OutputExistsError(f"{busy[0]}: exists; pass --overwrite to replace the results in {out_dir}")


def _load_model(methods: list[Method], weights: str | os.PathLike | None, warn: Callable[[str], None],
                task: str = "deblur"):
    """(model or None, methods to run, skipped names); by default the shipped weights of ``task``."""
    sg = [m for m in methods if m.kind == "spikegen"]
    if not sg:
        return None, methods, []
    from spikegen.weights import has_default_weights

    if weights is None and not has_default_weights():
        skipped = [m.name for m in sg]
        warn(f"no SpikeGen weights: the shipped weights are not in this install and --weights was not given; "
             f"skipping {', '.join(skipped)}")
        return None, [m for m in methods if m.kind != "spikegen"], skipped
    from spikegen.tasks.reconstruct import load_default_model

    return load_default_model(weights, task=task), methods, []


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "_" for c in name).strip("_")


def _mean(vals: Iterable[float]) -> float:
    v = [x for x in vals if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return float(np.mean(v)) if v else float("nan")


def _summarise(rows: list[dict[str, Any]], keys: Sequence[str], group: Sequence[str]) -> list[dict[str, Any]]:
    """Mean of each metric per group (first-seen order); ``n`` = images with a value."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(r.get(g) for g in group), []).append(r)
    out = []
    for gk, rs in groups.items():
        row: dict[str, Any] = dict(zip(group, gk))
        row["n"] = len(rs)
        for k in keys:
            if any(k in r for r in rs):
                row[k] = _mean(r.get(k) for r in rs)
        out.append(row)
    return out


def display_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Summary rows with the column titles of :data:`DISPLAY` (V_th printed as ``1``, ``2`` ...)."""
    return [{DISPLAY.get(k, k): (f"{v:g}" if k == "v_th" else v) for k, v in r.items()} for r in rows]


def _to_json(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def _write_outputs(out_dir: Path, result: dict[str, Any], report) -> Path:
    from spikegen.report import markdown_table

    out_dir.mkdir(parents=True, exist_ok=True)

    def atomic(path: Path, text: str) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)

    atomic(out_dir / "results.json", json.dumps(result, indent=1, default=_to_json) + "\n")
    for name, rows in (("results.csv", result["summary"]), ("per_image.csv", result["per_image"])):
        cols: list[str] = []
        for r in rows:
            cols += [k for k in r if k not in cols]
        tmp = out_dir / f".{name}.tmp"
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, out_dir / name)
    md = [f"# spikegen eval {result['task']}", "", f"Data: `{result['data']}`", "",
          f"Reproduce: `{result['command']}`", "", markdown_table(display_rows(result["summary"]), digits=4)]
    if result.get("skipped"):
        md += [f"Skipped (no SpikeGen weights): {', '.join(result['skipped'])}", ""]
    md += ["Metrics:", ""] + [f"- `{k}`: {METRIC_DOC[k]}" for k in result["metrics"]] + [""]
    atomic(out_dir / "results.md", "\n".join(md))
    return report.write(out_dir / "report.html")


def _num(x: Any) -> str:
    """Shortest text that reads back as the same value (``1.0`` -> ``1``, ``1/0.6`` in full)."""
    if isinstance(x, float):
        short = f"{x:g}"
        return short if float(short) == x else repr(x)
    return str(x)


def _command(task: str, data: Path, out_dir: Path, **opts: Any) -> str:
    parts = ["spikegen", "eval", task, "--data", str(data)]
    for k, v in opts.items():
        if v is None or v is False:
            continue
        flag = "--" + k.replace("_", "-")
        if v is True:
            parts.append(flag)
        else:
            parts += [flag, ",".join(_num(x) for x in v) if isinstance(v, (list, tuple)) else _num(v)]
    parts += ["-o", str(out_dir)]
    return " ".join(shlex.quote(p) for p in parts)


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="image", dynamic_ncols=True, file=sys.stderr)


# ----------------------------------------------------------------------------- deblur
def _deblur_items(data: Path, source: str, size: int, v_ths: list[float], *, gain: float, frames: int, seed: int,
                  n_blur: int, interp: int):
    """(dataset per V_th, item names) for the image or video protocol."""
    from spikegen.data import SyntheticPairs, VideoPairs

    if source == "images":
        ds = {v: SyntheticPairs(data, size, v_th=v, gain=gain, frames=frames, augment=False, seed=seed) for v in v_ths}
        first = ds[v_ths[0]]
        names = [str(p.relative_to(data)) if data.is_dir() else p.name for p in first.files]
        return ds, names
    stride = max(1, math.ceil(n_blur / interp))
    ds = {v: VideoPairs(data, size, n_blur=n_blur, interp=interp, stride=stride, v_th=v, gain=gain, spike_frames=frames,
                        augment=False, seed=seed) for v in v_ths}
    first = ds[v_ths[0]]
    names = []
    for ci, k in first.samples:
        clip = first.clips[ci]
        fr = clip.frames[k].name if clip.frames is not None else f"frame{k:06d}"
        names.append(f"{clip.source.name}/{fr}")
    return ds, names


def _detect_source(data: Path) -> str:
    from spikegen.image import is_video_file

    if data.is_file():
        return "video" if is_video_file(data) else "images"
    if data.is_dir() and any(p.is_file() and is_video_file(p) for p in data.iterdir()):
        return "video"
    return "images"


def evaluate_deblur(data: str | os.PathLike, out_dir: str | os.PathLike, *, methods: str | Sequence[str] | None = None,
                    v_ths: str | Sequence[float] = (1.0, 2.0, 4.0), size: int = 256, limit: int | None = None,
                    weights: str | os.PathLike | None = None, steps: int | None = None, seed: int = 0,
                    gain: float | None = None, frames: int = 8, source: str = "auto", n_blur: int = 7, interp: int = 1,
                    report_images: int = 3, overwrite: bool = False, progress: bool = True,
                    warn: Callable[[str], None] = _warn, colour: str = "input") -> dict[str, Any]:
    """The GOPRO-style deblurring protocol (see the module docstring and docs/evaluation.md).

    Args:
        data: an image folder (searched recursively, sorted), or with ``source="video"`` a
            frame folder, a folder of clips or video files.
        out_dir: output folder.
        methods: comma-separated names (default ``blurry,tfp,tfi,spikegen-0,spikegen-0.5,spikegen-1``).
        v_ths: thresholds V_th of the simulated spikes.
        size: centre-crop size (images smaller than it are upscaled first).
        limit: evaluate the first ``limit`` items (sorted) only.
        weights: SpikeGen weights folder (default: shipped; SpikeGen rows are skipped with a
            warning when there are none).
        steps: diffusion steps (default: the model's).
        seed: base seed (per-image seeds derive from it).
        gain: integrate-and-fire gain (default :data:`spikegen.data.DEFAULT_GAIN` = 0.6).
        frames: spike frames per sample (8).
        source: ``"images"``, ``"video"`` or ``"auto"`` (video when ``data`` is a video file or
            holds video files directly; otherwise images).
        n_blur, interp: video protocol: frames averaged into a blurry frame (odd) and the
            linear-interpolation factor applied first.
        report_images: how many items get pictures in the report.
        colour: SpikeGen rows' colour: ``"input"`` (default; SpikeGen's luminance with the
            blurry input's chroma, BT.601 YCbCr) or ``"model"`` (the model's own, faded colours).
            Gray scores are (up to clamping) the same either way.

    Returns:
        The results dict (also written to ``results.json``).
    """
    from spikegen.data.common import DEFAULT_GAIN, sample_seed
    from spikegen.spikes.reconstruct import tfi, tfp
    from spikegen.tasks.deblur import check_colour, deblur_image

    t0 = time.perf_counter()
    check_colour(colour)
    data, out_dir = Path(data), Path(out_dir)
    if not data.exists():
        raise SpikeFileError(f"--data {data}: no such file or folder")
    ms = parse_methods(methods, "deblur")
    vs = parse_floats(v_ths, "--vth")
    if len(set(vs)) != len(vs):
        raise SpikeGenError(f"--vth: repeated values in {vs}")
    if int(size) < 16:
        raise SpikeGenError(f"--size must be >= 16 pixels, got {size}")
    if limit is not None and int(limit) < 1:
        raise SpikeGenError(f"--limit must be >= 1, got {limit}")
    if source not in ("auto", "images", "video"):
        raise SpikeGenError(f"--source must be auto, images or video, got {source!r}")
    gain = DEFAULT_GAIN if gain is None else float(gain)
    if gain <= 0:
        raise SpikeGenError(f"--gain must be > 0, got {gain}")
    _check_out(out_dir, overwrite)
    src = _detect_source(data) if source == "auto" else source
    try:
        ds, names = _deblur_items(data, src, int(size), vs, gain=gain, frames=int(frames), seed=int(seed),
                                  n_blur=int(n_blur), interp=int(interp))
    except ValueError as exc:
        if isinstance(exc, SpikeGenError):
            raise
        raise SpikeGenError(f"--data {data}: {exc}") from None
    n = len(names) if limit is None else min(len(names), int(limit))
    model, ms, skipped = _load_model(ms, weights, warn)
    img_dir = out_dir / "images"
    rows: list[dict[str, Any]] = []
    figs: list[tuple[str, list[list[tuple[str, str]]]]] = []
    bar = _progress(n, "eval deblur", progress)
    for i in range(n):
        shown = i < report_images
        base = None
        pics: list[list[tuple[str, str]]] = []
        for vi, v in enumerate(vs):
            s = ds[v][i]
            sharp, blurry, spikes = s["clean"], s["blurry"], s["spikes"]
            if base is None:
                base = blurry
            elif not torch.equal(base, blurry):  # the protocol's invariant: one blur for every V_th
                raise RuntimeError(f"{names[i]}: blurry input differs between V_th values")
            T = spikes.shape[0]
            preds: dict[str, torch.Tensor] = {}
            for m in ms:
                if m.kind == "blurry":
                    preds[m.name] = blurry
                elif m.kind == "tfp":
                    preds[m.name] = tfp(spikes, T, centers=[T // 2], scale=v / gain)[0][None]
                elif m.kind == "tfi":
                    preds[m.name] = (tfi(spikes, v_th=v, centers=[T // 2])[0][None] / gain).clamp(0, 1)
                else:
                    gen = torch.Generator().manual_seed(sample_seed(int(seed), 2, i))
                    preds[m.name] = deblur_image(model, blurry, spikes, gamma=m.gamma, steps=steps, generator=gen,
                                                 colour=colour).image
            for m in ms:
                rows.append({"image": names[i], "method": m.name, "v_th": v, **deblur_scores(preds[m.name], sharp)})
            if shown:
                stem = f"{i:03d}_{_safe(Path(names[i]).stem)}"
                if vi == 0:
                    pics.append([(_save(img_dir / f"{stem}_sharp.png", sharp, out_dir), "sharp (ground truth)"),
                                 (_save(img_dir / f"{stem}_blurry.png", blurry, out_dir), "blurry input")])
                row = [(_save(img_dir / f"{stem}_{_safe(m.name)}_vth{v:g}.png", preds[m.name], out_dir), f"{m.label}, V_th={v:g}")
                       for m in ms if m.kind != "blurry"]
                if row:
                    pics.append(row)
        if shown:
            figs.append((names[i], pics))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()

    keys = ["psnr_gray", "ssim_gray", "lpips_gray", "psnr_rgb", "ssim_rgb", "lpips_rgb"]
    summary = _summarise(rows, keys, ("method", "v_th"))
    order = {m.name: k for k, m in enumerate(ms)}
    summary.sort(key=lambda r: (order[r["method"]], r["v_th"]))
    protocol = {
        "source": src, "size": int(size), "crop": "centre (SyntheticPairs augment=False; upscaled first when smaller)",
        "v_th": vs, "gain": gain, "frames": int(frames), "spikes": "integrate-and-fire of the sharp gray, random initial charge",
        "seed": int(seed), "per_image_seed": "sample_seed(seed, 0, index) for blur and spikes (same at every V_th); "
                                           "sample_seed(seed, 2, index) for SpikeGen sampling",
        "steps": steps if steps is not None else (model.config.sample_steps if model is not None else None),
        "tfp": f"mean of the {frames} frames x V_th / gain", "tfi": "TFI(V_th) at the middle frame / gain",
        "colour": colour + (" (SpikeGen's luminance, the blurry input's chroma: BT.601 YCbCr)" if colour == "input"
                            else " (the model's own, gamma-faded colours)"),
    }
    if src == "images":
        protocol.update(blur="mean of 8 motion kernels, 40x40, random angle +-30 deg (spikegen.degrade.motion_blur)")
    else:
        protocol.update(blur=f"mean of {n_blur} consecutive frames (after x{interp} interpolation), non-overlapping",
                        n_blur=int(n_blur), interp=int(interp))
    result = {
        "task": "deblur", "data": str(data), "out_dir": str(out_dir),
        "command": _command("deblur", data, out_dir, methods=[m.name for m in ms] + skipped, vth=vs, size=int(size),
                            limit=limit, weights=weights, steps=steps, seed=int(seed),
                            source=None if source == "auto" else source, colour=None if colour == "input" else colour),
        "protocol": protocol, "methods": [m.name for m in ms], "skipped": skipped,
        "weights": str(weights) if weights is not None else ("shipped" if model is not None else None),
        "metrics": {k: METRIC_DOC[k] for k in keys}, "summary": summary, "per_image": rows,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    from spikegen.tasks.plots import save_line_plot

    series = {}
    for m in ms:
        ys = [next((r["psnr_gray"] for r in summary if r["method"] == m.name and r["v_th"] == v), float("nan")) for v in vs]
        series[m.name] = (vs, ys)
    save_line_plot(out_dir / "psnr_vs_vth.png", series, title=f"Deblurring: PSNR (gray) vs V_th, {n} images",
                   xlabel="V_th (spike threshold)", ylabel="PSNR gray (dB)")
    rep = _report_base(result, n, "Spike-guided deblurring (GOPRO-style)")
    rep.figures("PSNR (gray) vs V_th", [("psnr_vs_vth.png", "mean PSNR on gray against V_th")], width=640)
    _report_figs(rep, figs)
    _write_outputs(out_dir, result, rep)
    return result


def _save(path: Path, img: torch.Tensor, root: Path) -> str:
    from spikegen.image import save_image

    save_image(path, img.detach().float().cpu().clamp(0, 1), overwrite=True)
    return path.relative_to(root).as_posix()


def _report_base(result: dict[str, Any], n: int, title: str):
    from spikegen.report import Report

    rep = Report(f"spikegen eval {result['task']}: {title}",
                 f"{n} items from {result['data']}; {result['seconds']:.1f} s on {'CUDA' if torch.cuda.is_available() else 'CPU'}.")
    rep.table("Summary (mean over items)", display_rows(result["summary"]), digits=4)
    if result.get("skipped"):
        rep.text(f"Skipped (no SpikeGen weights; pass --weights DIR): {', '.join(result['skipped'])}.")
    rep.text("Metrics: " + " | ".join(f"{DISPLAY.get(k, k)}: {v}" for k, v in result["metrics"].items()) + ".")
    rep.text("Protocol: " + "; ".join(f"{k} = {v}" for k, v in result["protocol"].items()) + ".")
    rep.heading("Reproduce")
    rep.code(result["command"])
    return rep


def _report_figs(rep, figs: list[tuple[str, list[list[tuple[str, str]]]]]) -> None:
    """One heading per item, then one row of pictures per entry of its list."""
    for name, rows in figs:
        rep.heading(name)
        for row in rows:
            rep.figures(None, row, width=256)


# ----------------------------------------------------------------------------- reconstruct
def _model_frames(model, spikes: torch.Tensor, n: int | None = None) -> torch.Tensor:
    """The centred ``n`` frames (default: the model's expected count, else all) of ``[T,H,W]``."""
    from spikegen.tasks.deblur import expected_spike_frames, select_frames

    lo, hi = select_frames(spikes.shape[0], n if n is not None else expected_spike_frames(model))
    return spikes[lo:hi]


def tfp_and_spike_gray(model, spikes: torch.Tensor, gamma: float, steps: int | None, gen: torch.Generator,
                   frames: int | None = None, pseudo: torch.Tensor | None = None) -> torch.Tensor:
    """SpikeGen "TFP & Spike" on ``[T,H,W]`` spikes -> gray ``[1,H,W]`` on the CPU.

    ``pseudo`` (``[1,H,W]`` in [0, 1]): the pseudo-frame for the RGB branch — the evaluations
    pass the TFP row's own image (its window and its intensity scale), so SpikeGen starts from
    exactly what the TFP row shows; ``None``: the model's ``tfp_rgb`` over its own frames."""
    s = _model_frames(model, spikes, frames)
    if pseudo is None:
        out = model.sample(rgb=None, spikes=s[None].to(model.device), gamma=gamma, steps=steps, generator=gen, tfp_rgb=True)
    else:
        rgb = pseudo.float().clamp(0, 1).reshape(1, 1, *pseudo.shape[-2:]).expand(1, 3, -1, -1).to(model.device)
        out = model.sample(rgb=rgb, spikes=s[None].to(model.device), gamma=gamma, steps=steps, generator=gen)
    return _gray(out[0].float().cpu()).clamp(0, 1)


def evaluate_reconstruct(data: str | os.PathLike, out_dir: str | os.PathLike, *, methods: str | Sequence[str] | None = None,
                         window: int = 61, rate_scale: float = SPK2IMGNET_RATE_SCALE, size: int | None = None,
                         limit: int | None = None, weights: str | os.PathLike | None = None, steps: int | None = None,
                         seed: int = 0, spikegen_frames: int | None = None, report_images: int = 3,
                         overwrite: bool = False, progress: bool = True,
                         warn: Callable[[str], None] = _warn) -> dict[str, Any]:
    """STIR-style reconstruction on the Spk2ImgNet layout (``spike/*.dat`` + ``gt/*.png``).

    Args:
        data: the dataset folder (``spike/`` and ``gt/`` inside; ``*_key_idN`` names the GT frame,
            counted from 1; without it the middle frame).
        window: spike frames centred on the GT frame (61); TFP averages all of them, TFI searches
            ``window // 2`` frames on each side, SpikeGen takes them (or the model's expected count).
        rate_scale: firing rate -> intensity factor for TFP and TFI (1/0.6 for these files).
        size: optional centre crop (default: the full frame).
        methods: default ``tfp,tfi,spikegen`` ("TFP & Spike", g = 0.5).
        spikegen_frames: SpikeGen gets the centred ``spikegen_frames`` of the window (the paper
            uses 16 on SREDS); default: the model's expected count if its config names one, else
            the whole window.

    Returns:
        The results dict (also written to ``results.json``).
    """
    from spikegen.data import SpikeFolderPairs
    from spikegen.data.common import sample_seed
    from spikegen.spikes.reconstruct import tfi, tfp

    t0 = time.perf_counter()
    data, out_dir = Path(data), Path(out_dir)
    if not data.is_dir():
        raise SpikeFileError(f"--data {data}: not a folder (expected spike/*.dat and gt/*.png inside)")
    ms = parse_methods(methods, "reconstruct")
    if int(window) < 1:
        raise SpikeGenError(f"--window must be >= 1, got {window}")
    if not (rate_scale > 0 and math.isfinite(rate_scale)):
        raise SpikeGenError(f"--rate-scale must be > 0, got {rate_scale}")
    if limit is not None and int(limit) < 1:
        raise SpikeGenError(f"--limit must be >= 1, got {limit}")
    _check_out(out_dir, overwrite)
    try:
        ds = SpikeFolderPairs(data, window=int(window), color=False, size=size, augment=False)
    except SpikeGenError:
        raise
    except ValueError as exc:
        raise SpikeGenError(f"--data {data}: {exc}") from None
    if any(it["gt"] is None for it in ds.items):
        raise SpikeFileError(f"{data / 'gt'}: missing; eval reconstruct needs a ground-truth image per .dat "
                             "(use eval real for captures without ground truth)")
    n = len(ds) if limit is None else min(len(ds), int(limit))
    model, ms, skipped = _load_model(ms, weights, warn, task="reconstruct")
    img_dir = out_dir / "images"
    rows: list[dict[str, Any]] = []
    figs: list[tuple[str, list[list[tuple[str, str]]]]] = []
    w = int(window)
    bar = _progress(n, "eval reconstruct", progress)
    for i in range(n):
        s = ds[i]
        gt, spikes = s["clean"][:1], s["spikes"]
        name = Path(s["meta"]["source"]).stem
        c = w // 2
        preds: dict[str, torch.Tensor] = {}
        for m in ms:
            if m.kind == "tfp":
                preds[m.name] = tfp(spikes, w, centers=[c], scale=rate_scale)[0][None]
            elif m.kind == "tfi":
                preds[m.name] = (tfi(spikes, v_th=1.0, centers=[c], max_half_window=max(w // 2, 1))[0][None]
                                 * rate_scale).clamp(0, 1)
            else:
                gen = torch.Generator().manual_seed(sample_seed(int(seed), 2, i))
                pseudo = tfp(spikes, w, centers=[c], scale=rate_scale)[0][None]
                preds[m.name] = tfp_and_spike_gray(model, spikes, m.gamma, steps, gen, spikegen_frames, pseudo)
            rows.append({"image": name, "method": m.name, **reconstruct_scores(preds[m.name], gt)})
        if i < report_images:
            stem = f"{i:03d}_{_safe(name)}"
            pics = [(_save(img_dir / f"{stem}_gt.png", gt, out_dir), "ground truth")]
            pics += [(_save(img_dir / f"{stem}_{_safe(m.name)}.png", preds[m.name], out_dir), _recon_label(m)) for m in ms]
            figs.append((name, [pics]))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    keys = ["psnr", "ssim", "lpips"]
    summary = _summarise(rows, keys, ("method",))
    result = {
        "task": "reconstruct", "data": str(data), "out_dir": str(out_dir),
        "command": _command("reconstruct", data, out_dir, methods=[m.name for m in ms] + skipped, window=w,
                            rate_scale=float(rate_scale), size=size, limit=limit, weights=weights, steps=steps, seed=int(seed),
                            spikegen_frames=spikegen_frames),
        "protocol": {"layout": "spike/*.dat + gt/*.png (Spk2ImgNet); GT frame from *_key_idN (1-based), else the middle",
                     "window": w, "rate_scale": float(rate_scale), "crop": size or "none (full frame)",
                     "tfp": f"mean of the {w} frames x rate_scale", "tfi": f"TFI (V_th 1, +-{max(w // 2, 1)} frames) x rate_scale",
                     "spikegen": "TFP & Spike: model.sample(rgb=the TFP row's image, spikes=centre frames of the window, gamma=G), gray",
                     "spikegen_frames": spikegen_frames or "the model's expected count, else the whole window",
                     "seed": int(seed), "steps": steps if steps is not None else (model.config.sample_steps if model else None)},
        "methods": [m.name for m in ms], "skipped": skipped,
        "weights": str(weights) if weights is not None else ("shipped" if model is not None else None),
        "metrics": {k: METRIC_DOC[k] for k in keys}, "summary": summary, "per_image": rows,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    rep = _report_base(result, n, "dense frame reconstruction (STIR-style)")
    _report_figs(rep, figs)
    _write_outputs(out_dir, result, rep)
    return result


def _recon_label(m: Method) -> str:
    if m.kind == "spikegen":
        return f"SpikeGen TFP & Spike g={m.gamma:g}"
    return m.label


# ----------------------------------------------------------------------------- real
SPIKE_SUFFIXES = (".dat", ".npz", ".npy")


def evaluate_real(data: str | os.PathLike, out_dir: str | os.PathLike, *, methods: str | Sequence[str] | None = None,
                  window: int = 61, centers: int = 3, rate_scale: float | None = None, limit: int | None = None,
                  weights: str | os.PathLike | None = None, steps: int | None = None, seed: int = 0,
                  spikegen_frames: int | None = None, height: int | None = None, width: int | None = None,
                  report_images: int = 3, overwrite: bool = False,
                  progress: bool = True, warn: Callable[[str], None] = _warn) -> dict[str, Any]:
    """No-reference scores (NIQE, BRISQUE) of reconstructions of real captures.

    Args:
        data: a folder (searched recursively) of ``.dat`` / ``.npz`` / ``.npy`` spike files, or one file.
        window: spike frames per reconstruction (clipped to the stream's length).
        centers: reconstructions per file, at frames ``round((k + 1) T / (centers + 1))``,
            ``k = 0 .. centers - 1`` (windows shifted to fit inside the stream).
        rate_scale: firing rate -> intensity factor for TFP and TFI; default ``None``: each
            image is divided by its 99.5th percentile (a real capture's gain is unknown).
            SpikeGen's output is used as it is.
        limit: the first ``limit`` files (sorted).
        spikegen_frames: as :func:`evaluate_reconstruct`.
        height, width: frame size of ``.dat`` files (default 250x400).

    Returns:
        The results dict (also written to ``results.json``).
    """
    from spikegen.data.common import sample_seed
    from spikegen.metrics import brisque, niqe
    from spikegen.spikes.io import open_spikes
    from spikegen.spikes.reconstruct import tfi, tfp

    t0 = time.perf_counter()
    data, out_dir = Path(data), Path(out_dir)
    if not data.exists():
        raise SpikeFileError(f"--data {data}: no such file or folder")
    ms = parse_methods(methods, "real")
    if int(window) < 1 or int(centers) < 1:
        raise SpikeGenError(f"--window and --centers must be >= 1, got {window} and {centers}")
    if rate_scale is not None and not (rate_scale > 0 and math.isfinite(rate_scale)):
        raise SpikeGenError(f"--rate-scale must be > 0, got {rate_scale}")
    if limit is not None and int(limit) < 1:
        raise SpikeGenError(f"--limit must be >= 1, got {limit}")
    _check_out(out_dir, overwrite)
    if data.is_file():
        files = [data]
    else:
        files = sorted(p for p in data.rglob("*") if p.is_file() and p.suffix.lower() in SPIKE_SUFFIXES
                       and not any(part.startswith(".") for part in p.relative_to(data).parts))
    if not files:
        raise SpikeFileError(f"--data {data}: no spike files ({', '.join(SPIKE_SUFFIXES)}) found")
    files = files if limit is None else files[: int(limit)]
    model, ms, skipped = _load_model(ms, weights, warn, task="reconstruct")
    img_dir = out_dir / "images"
    rows: list[dict[str, Any]] = []
    figs: list[tuple[str, list[list[tuple[str, str]]]]] = []
    shown = 0
    bar = _progress(len(files) * int(centers), "eval real", progress)
    for fi, f in enumerate(files):
        src = open_spikes(f, height=height, width=width)
        T = src.num_frames
        w = min(int(window), T)
        for k in range(int(centers)):
            c = int(round((k + 1) * T / (int(centers) + 1)))
            lo = min(max(c - w // 2, 0), T - w)
            spikes = torch.from_numpy(src.read(lo, lo + w))
            cc = c - lo
            name = f"{f.name}@{c}"
            preds: dict[str, torch.Tensor] = {}
            for m in ms:
                if m.kind == "tfp":
                    x = tfp(spikes, w, centers=[cc], scale=1.0)[0][None]
                elif m.kind == "tfi":
                    x = tfi(spikes, v_th=1.0, centers=[cc], max_half_window=max(w // 2, 1))[0][None]
                else:
                    gen = torch.Generator().manual_seed(sample_seed(int(seed), 2, fi * int(centers) + k))
                    x = tfp(spikes, w, centers=[cc], scale=1.0)[0][None]
                    pseudo = stretch(x) if rate_scale is None else (x * rate_scale).clamp(0, 1)
                    preds[m.name] = tfp_and_spike_gray(model, spikes, m.gamma, steps, gen, spikegen_frames, pseudo)
                    continue
                preds[m.name] = stretch(x) if rate_scale is None else (x * rate_scale).clamp(0, 1)
            for m in ms:
                p = preds[m.name]
                rows.append({"image": name, "method": m.name, "niqe": float(niqe(p)), "brisque": float(brisque(p))})
            if shown < report_images:
                stem = f"{fi:03d}_{_safe(f.stem)}_{c:06d}"
                pics = [(_save(img_dir / f"{stem}_spikes.png", spikes[cc][None].float(), out_dir), f"one spike frame ({c})")]
                pics += [(_save(img_dir / f"{stem}_{_safe(m.name)}.png", preds[m.name], out_dir), _recon_label(m)) for m in ms]
                figs.append((name, [pics]))
                shown += 1
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    keys = ["niqe", "brisque"]
    summary = _summarise(rows, keys, ("method",))
    result = {
        "task": "real", "data": str(data), "out_dir": str(out_dir),
        "command": _command("real", data, out_dir, methods=[m.name for m in ms] + skipped, window=int(window),
                            centers=int(centers), rate_scale=rate_scale, limit=limit, weights=weights, steps=steps,
                            seed=int(seed), spikegen_frames=spikegen_frames, height=height, width=width),
        "protocol": {"files": [str(p) for p in files], "window": int(window), "centers": int(centers),
                     "centre_rule": "round((k + 1) T / (centers + 1)), windows shifted to fit",
                     "intensity": ("TFP/TFI divided by their 99.5th percentile" if rate_scale is None
                                   else f"TFP/TFI x {rate_scale:g}") + "; SpikeGen output as it is",
                     "tfi": f"V_th 1, +-{max(int(window) // 2, 1)} frames",
                     "spikegen_frames": spikegen_frames or "the model's expected count, else the whole window",
                     "seed": int(seed), "steps": steps if steps is not None else (model.config.sample_steps if model else None)},
        "methods": [m.name for m in ms], "skipped": skipped,
        "weights": str(weights) if weights is not None else ("shipped" if model is not None else None),
        "metrics": {k: METRIC_DOC[k] for k in keys}, "summary": summary, "per_image": rows,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    rep = _report_base(result, len(rows) // max(len(ms), 1), "real captures (no reference)")
    _report_figs(rep, figs)
    _write_outputs(out_dir, result, rep)
    return result


# ----------------------------------------------------------------------------- dispatch
def run_eval(task: str, data: str | os.PathLike, out_dir: str | os.PathLike, **kwargs: Any) -> dict[str, Any]:
    """Run ``evaluate_<task>`` (``task`` in deblur / reconstruct / real); returns the results dict."""
    fns = {"deblur": evaluate_deblur, "reconstruct": evaluate_reconstruct, "real": evaluate_real}
    if task not in fns:
        raise SpikeGenError(f"unknown eval task {task!r}; expected one of {', '.join(TASKS)}")
    return fns[task](data, out_dir, **kwargs)
