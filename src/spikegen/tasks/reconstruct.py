"""``spikegen reconstruct``: images from a spike stream by TFP, TFI, their blend or SpikeGen.

One frame (``frame=N``, default the middle) is written as a PNG. With ``all_frames=True`` the
file is streamed in blocks, so memory stays bounded whatever the recording's length, and the
frames go to an MP4 (``.mp4`` output) or a folder of PNGs (any other output path).

``start`` / ``end`` (frames or times, e.g. ``"10ms"``, ``"0.5s"``) cut the stream first: only
frames ``start .. end - 1`` are read and used, as if the file held only them (windows near the
cut are truncated as at the file's ends); outputs keep the file's frame numbers. A Bayer stream
(``cfa``, default: a packed ``.npz``'s ``cfa`` metadata) gives colour TFP / TFI: the mosaic's
reconstruction demosaicked bilinearly (:mod:`spikegen.spikes.cfa`).

``blend`` is the classic per-pixel inverse-variance blend of TFP and TFI
(:func:`spikegen.data.motion.tfp_tfi_blend`, the ``blend`` row of ``spikegen eval
reconstruct``): no learned part, over the window around each centre (61 frames by default,
shifted inwards at the stream's ends as for SpikeGen).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import torch

from spikegen.data.motion import tfp_tfi_blend
from spikegen.degrade import rgb_to_gray
from spikegen.errors import SpikeGenError
from spikegen.image import VideoWriter, save_image
from spikegen.outputs import claim_output
from spikegen.spikes.cfa import check_pattern, demosaic_bilinear
from spikegen.spikes.io import open_spikes
from spikegen.spikes.reconstruct import tfi, tfi_stream, tfp, tfp_stream
from spikegen.tasks.deblur import expected_spike_frames, pseudo_frame, select_frames
# The SpikeGen loader, also under this module's name (callers of the old
# spikegen.tasks.reconstruct.load_default_model; `eval` looks it up here).
from spikegen.weights import load_default_model

METHODS = ("tfp", "tfi", "blend", "spikegen")
#: frames read at once by the blend (and more only when one window is longer)
_BLEND_SPAN = 512


def _frames_tfp_tfi(src, method: str, window: int, centers, scale: float, v_th: float) -> Iterator[tuple[int, torch.Tensor]]:
    # Small blocks read on one thread: the reader's worker threads each keep a malloc arena,
    # which made the peak RSS grow with the recording's length (1.4 GB at 20k frames).
    blocks = src.blocks(128, 0, workers=1)
    if method == "tfp":
        return tfp_stream(blocks, window, centers=centers, scale=scale, chunk=16)
    return tfi_stream(blocks, v_th=v_th, centers=centers, max_half_window=max(window // 2, 1), chunk=16)


def _window_of(c: int, window: int, n: int) -> tuple[int, int]:
    """The ``window`` frames around centre ``c`` of a stream of ``n``, shifted inwards at its
    ends (all ``n`` when shorter): ``(lo, hi)``."""
    lo = min(max(c - window // 2, 0), max(n - window, 0))
    return lo, min(lo + window, n)


def _frames_blend(src, window: int, centers: list[int], scale: float) -> Iterator[tuple[int, torch.Tensor]]:
    """The TFP/TFI blend (:func:`~spikegen.data.motion.tfp_tfi_blend`, x ``scale``) at each of
    the increasing ``centers`` over the ``window`` frames around it (:func:`_window_of`). The
    frames are read a span of about ``_BLEND_SPAN`` at a time, each read once or twice
    (windows that cross a span's end), so memory stays bounded on long recordings."""
    n = src.num_frames
    i = 0
    while i < len(centers):
        r0, r1 = _window_of(centers[i], window, n)
        j = i + 1
        while j < len(centers):
            hi = _window_of(centers[j], window, n)[1]
            if hi - r0 > max(_BLEND_SPAN, window):
                break
            r1, j = hi, j + 1
        s = torch.from_numpy(src.read(r0, r1))
        for c in centers[i:j]:
            lo, hi = _window_of(c, window, n)
            yield c, tfp_tfi_blend(s[lo - r0 : hi - r0], c - lo, scale)
        i = j


def _classic_frame(src, method: str, window: int, c: int, scale: float, v_th: float) -> torch.Tensor:
    """The TFP, TFI or blend ``[H, W]`` at frame ``c`` of ``src`` (of the mosaic for a Bayer
    stream), as one-frame ``reconstruct`` writes it."""
    if method == "blend":
        return next(_frames_blend(src, window, [c], scale))[1]
    half = window // 2 if method == "tfp" else max(window // 2, 1)
    lo, hi = max(c - half, 0), min(c + half + 1, src.num_frames)
    spikes = torch.from_numpy(src.read(lo, hi))
    if method == "tfp":
        return tfp(spikes, window, centers=[c - lo], scale=scale)[0]
    return tfi(spikes, v_th=v_th, centers=[c - lo], max_half_window=half)[0]


def auto_gain(img: torch.Tensor) -> float:
    """The display gain of ``--scale auto``: the 99.5th percentile of ``img`` maps to white (as
    ``spikegen view``'s TFP); 1 for an all-dark image."""
    q = float(torch.quantile(img.flatten().float()[:: max(1, img.numel() // 1_000_000)], 0.995))
    return 1.0 / q if q > 0 else 1.0


def _frames_spikegen(src, model, window: int, centers: list[int], *, gamma: float, steps: int,
                     batch: int, seed: int, scale: float | None = None) -> Iterator[tuple[int, torch.Tensor]]:
    """SpikeGen "TFP & Spike" around each centre, as ``spikegen eval reconstruct`` runs it: the
    RGB input is the weights' pseudo-frame (x ``scale``, default the model's ``tfp_scale``;
    :func:`~spikegen.tasks.deblur.pseudo_frame`): the TFP of the model's ``tfp_window`` frames
    around the centre, widened on sparse streams, blended with the TFI of the window when the
    config names ``pseudo_tfi`` (the TFP of all ``window`` frames for a model with neither);
    the spike input the model's expected number of centre frames (all ``window`` frames for a
    model without one)."""
    n = src.num_frames
    k = expected_spike_frames(model)
    scale = float(model.config.tfp_scale) if scale is None else float(scale)
    g = torch.Generator().manual_seed(seed)
    for i in range(0, len(centers), batch):
        cs = centers[i:i + batch]
        rgbs, wins = [], []
        for c in cs:
            lo, hi = _window_of(c, window, n)
            s = torch.from_numpy(src.read(lo, hi))
            rgbs.append(pseudo_frame(model, s, c - lo, scale=scale)[0][0].expand(3, -1, -1))
            a, b = select_frames(s.shape[0], min(k, s.shape[0]), lo=c - lo, hi=c - lo + 1) if k else (0, s.shape[0])
            wins.append(s[a:b])
        if len({w.shape[0] for w in wins}) > 1:  # streams shorter than the model's frames
            m = min(w.shape[0] for w in wins)
            wins = [w[:m] for w in wins]
        out = model.sample(rgb=torch.stack(rgbs).to(model.device), spikes=torch.stack(wins).to(model.device),
                           gamma=gamma, steps=steps, generator=g)
        gray = rgb_to_gray(out.float())[:, 0].cpu()
        for c, fr in zip(cs, gray):
            yield c, fr


def _cfa_pattern(cfa: str | None, src, method: str) -> str | None:
    """The Bayer pattern to demosaic with: ``cfa``, else the file's ``cfa`` metadata; None: gray."""
    given = cfa is not None
    if given and str(cfa).lower() == "none":
        return None
    p = cfa if given else (getattr(src, "meta", None) or {}).get("cfa")
    if p is None:
        return None
    try:
        p = check_pattern(p)
    except SpikeGenError as exc:
        where = "--cfa" if given else f"the cfa metadata of '{src.path}'"
        raise SpikeGenError(f"{where}: {exc}") from None
    if method == "spikegen":
        if given:
            raise SpikeGenError("--cfa works with --method tfp or tfi (SpikeGen reconstructs gray)")
        return None
    return p


def reconstruct_file(file: str | os.PathLike, output: str | os.PathLike, *, method: str = "tfp", window: int | None = None,
                     frame: int | None = None, all_frames: bool = False, stride: int = 1, v_th: float = 1.0,
                     scale: float | None = None, fps: float = 30.0, weights: str | os.PathLike | None = None,
                     gamma: float = 0.5, steps: int = 25, overwrite: bool = False, progress: bool = True,
                     start: int | str | None = None, end: int | str | None = None, fps_camera: float | None = None,
                     cfa: str | None = None, info: dict | None = None, **open_kwargs) -> Path:
    """Reconstruct one frame (PNG) or every ``stride``-th frame (MP4 or PNG folder).

    Args:
        file: a ``.dat``, ``.npz`` or ``.npy`` spike file (``open_kwargs``: height, width,
            flip, raw_width, partial; see :func:`spikegen.spikes.io.open_spikes`).
        output: ``.png`` for one frame; ``.mp4`` or a folder with ``all_frames``.
        method: ``tfp``, ``tfi``, ``blend`` (the classic TFP/TFI blend, no weights: the module
            docstring) or ``spikegen`` ("TFP & Spike", as ``eval reconstruct``: the
            window's TFP, x ``scale``, stands in for the RGB input and the model's centre spike
            frames (8 for tiny) are its spike input, at ``gamma`` = 0.5; at 1 the TFP would be
            unused).
        window: TFP window / TFI search range (2 x half) / the frames the blend and SpikeGen
            use (default 41; for ``blend``, and for ``spikegen`` weights that name a
            ``tfp_window``, 61 or the whole shorter stream, as in ``eval reconstruct``: the
            pseudo-frame averages that many centred frames, widened on sparse streams; else
            the whole window).
        scale: TFP (and blend) intensity scale (default 1; for ``spikegen`` the model's ``tfp_scale``,
            1 / 0.6 for the tiny weights: a white pixel firing at 0.6). ``"auto"`` (TFP, TFI,
            blend): a display gain that maps the 99.5th percentile of the reconstruction at
            ``frame`` (with ``all_frames``: at the middle frame, then fixed for every frame, so
            the video does not flicker) to white; the gain is stored in ``info["scale"]``.
        start, end: use only frames ``start .. end - 1``: frame indices or times with units
            (``"10ms"``, ``"0.5s"``), converted at ``fps_camera`` as
            :func:`spikegen.spikes.io.frame_range` (start rounded down, end up). ``frame`` (an
            absolute frame index) must lie in the range; its default is the range's middle.
        fps_camera: the spike stream's frame rate (default: the file's ``fps`` metadata, else
            20 000 Hz).
        cfa: Bayer pattern of the upright frames (``RGGB``, ``BGGR``, ``GRBG``, ``GBRG``) for
            colour TFP / TFI; default the ``cfa`` of a packed ``.npz``'s metadata; ``"none"``:
            gray even when the file names a pattern (the blend is computed on the mosaic, then
            demosaicked). Not with ``spikegen``.
        info: a dict that receives ``"scale"``, the gain applied (``--scale auto``) or given.

    Returns:
        The written path.
    """
    if method not in METHODS:
        raise SpikeGenError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    auto = isinstance(scale, str) and scale.strip().lower() == "auto"
    if auto and method == "spikegen":
        raise SpikeGenError("--scale auto works with --method tfp, tfi or blend (SpikeGen's pseudo-frame "
                            "uses the model's tfp_scale)")
    if isinstance(scale, str) and not auto:
        try:
            scale = float(scale)
        except ValueError:
            raise SpikeGenError(f"--scale must be a number > 0 or 'auto', got {scale!r}") from None
    if scale is not None and not auto and not float(scale) > 0:
        raise SpikeGenError(f"--scale must be a number > 0 or 'auto', got {scale!r}")
    model = load_default_model(weights, task="reconstruct") if method == "spikegen" else None
    auto_window = window is None
    if auto_window:  # SpikeGen weights that pick their own pseudo-frame window: eval's 61 to pick from
        tuned = getattr(getattr(model, "config", None), "tfp_window", 0) or 0
        window = 61 if tuned > 0 or method == "blend" else 41
    if window < 1 or stride < 1:
        raise SpikeGenError(f"--window and --stride must be >= 1 (got {window}, {stride})")

    output = Path(output)
    image_out = output.suffix.lower() in (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
    if not all_frames and not image_out:
        raise SpikeGenError(f"{output}: one frame is written as an image (.png); use --all for .mp4 or a folder")
    full = open_spikes(file, fps=fps_camera, **open_kwargs)
    a, b = full.time_range(start, end, names=("--start", "--end"))
    src = full if (a, b) == (0, full.num_frames) else full.window(a, b)
    n = src.num_frames
    if auto_window and method in ("spikegen", "blend") and window > n:
        window = n  # the default span on a short stream: all of it
    pattern = _cfa_pattern(cfa, full, method)
    if window > n and method != "tfi":  # (TFI's window is a search range: any length works)
        what = "the stream" if src is full else f"the selected frames {a}..{b - 1}"
        raise SpikeGenError(f"--window {window} is longer than {what} ({n} frames)")
    if frame is not None and not a <= int(frame) < b:
        where = f"the stream of {n} frames" if src is full else f"the selected frames {a}..{b - 1}"
        raise SpikeGenError(f"--frame {frame} is outside {where}")
    claim_output(output, overwrite=overwrite, folder=all_frames and output.suffix.lower() != ".mp4")
    sg_scale = scale  # SpikeGen's pseudo-frame: default the model's tfp_scale
    c_one = n // 2 if frame is None else int(frame) - a  # the one frame (and the auto gain's)
    # --scale auto: TFP and the blend take the gain as their `scale`, TFI multiplies its output
    g = auto_gain(_classic_frame(src, method, window, n // 2 if all_frames else c_one, 1.0, v_th)) if auto else None
    if auto:
        scale = g if method != "tfi" else 1.0
    else:
        scale = 1.0 if scale is None else float(scale)
    gain = g if auto and method == "tfi" else 1.0
    if info is not None:
        info["scale"] = gain if method == "tfi" else scale

    if not all_frames:
        if method == "spikegen":
            _, img = next(_frames_spikegen(src, model, window, [c_one], gamma=gamma, steps=steps, batch=1, seed=0,
                                              scale=sg_scale))
        else:
            img = _classic_frame(src, method, window, c_one, scale, v_th) * gain
            if pattern is not None:
                return save_image(output, demosaic_bilinear(img, pattern).clamp(0, 1), overwrite=True)
        return save_image(output, img[None].clamp(0, 1), overwrite=True)

    centers = list(range(0, n, stride))
    if method == "spikegen":
        frames = _frames_spikegen(src, model, window, centers, gamma=gamma, steps=steps, batch=8, seed=0, scale=sg_scale)
    elif method == "blend":
        frames = _frames_blend(src, window, centers, scale)
    else:
        frames = _frames_tfp_tfi(src, method, window, centers if stride > 1 else "all", scale, v_th)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(centers), desc=f"{method} {Path(file).name}", unit="frame", dynamic_ncols=True)
    # (TFI is V_th / interval here as for one frame: --vth scales both alike; `gain`: auto)
    if pattern is not None:
        def image(fr: torch.Tensor) -> torch.Tensor:
            return demosaic_bilinear(fr * gain, pattern).clamp(0, 1)
    else:
        def image(fr: torch.Tensor) -> torch.Tensor:
            return (fr * gain).clamp(0, 1)[None]
    if output.suffix.lower() == ".mp4":
        with VideoWriter(output, fps=fps, overwrite=True) as vw:
            for _, fr in frames:
                vw.write(image(fr))
                if bar is not None:
                    bar.update(1)
    else:
        output.mkdir(parents=True, exist_ok=True)
        for t, fr in frames:
            save_image(output / f"frame_{t + a:06d}.png", image(fr), overwrite=True)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return output
