"""File-level spike toolkit jobs behind ``spikegen info | simulate | convert | blur``.

Each function takes paths and plain options, does the work with the library functions of
:mod:`spikegen.spikes` and :mod:`spikegen.degrade`, and writes files; the CLI only parses.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import torch

from spikegen.degrade import motion_blur
from spikegen.errors import SpikeFileError, SpikeGenError
from spikegen.image import is_image_file, load_image, save_image
from spikegen.outputs import claim_output
from spikegen.spikes.cfa import check_pattern, crop_pattern, integrate_and_fire_cfa, mosaic
from spikegen.spikes.io import DEFAULT_FPS, DatWriter, PackedWriter, check_fps, open_spikes, save_spikes
from spikegen.spikes.simulate import integrate_and_fire, iter_frames, iter_simulate_video, photon_sampling


def _refuse_existing(path: Path, overwrite: bool) -> None:
    """The output policy (:mod:`spikegen.outputs`): refuse an occupied path, make its folder."""
    claim_output(path, overwrite=overwrite)


def check_memory(nbytes: int, what: str, *, fraction: float = 0.5) -> None:
    """Refuse, before allocating, a request that needs more than ``fraction`` of the memory
    available now (:class:`SpikeGenError` saying how much it would need)."""
    try:
        avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not on Linux: no check
        return
    if nbytes > fraction * avail:
        raise SpikeGenError(f"{what} would need about {nbytes / 2**30:.1f} GiB of memory "
                            f"({avail / 2**30:.1f} GiB available); ask for less")


_FORMAT_KEYS = ("format", "version", "num_frames", "height", "width", "flip", "bitorder")


def bright_outliers(counts: np.ndarray, frames: int, cfa: str | None = None) -> int:
    """Pixels that fire improbably often for their neighbourhood: a spike count ``c`` with
    Poisson ``P(X >= c) < 1e-6`` at ``lam`` = the median count of its 5x5 neighbours (at least
    0.5), and ``c >= 2 lam`` (hot pixels of a dim capture, which an absolute rate threshold
    misses). A Bayer stream (``cfa``) is judged per colour plane, against same-colour neighbours.
    With 10^5 pixels of a uniform scene at most about 0.1 are expected by chance."""
    from scipy.ndimage import median_filter
    from scipy.special import pdtrc

    if frames <= 0:
        return 0
    planes = [counts] if cfa is None else [counts[i::2, j::2] for i in (0, 1) for j in (0, 1)]
    found = 0
    for c in planes:
        if c.size == 0:
            continue
        c = c.astype(np.float64)
        lam = np.maximum(median_filter(c, size=5, mode="nearest"), 0.5)
        tail = pdtrc(c - 1, lam)  # P(X > c - 1) = P(X >= c); 1 for c = 0
        found += int(((tail < 1e-6) & (c >= 2 * lam)).sum())
    return found


def spike_file_report(path: str | os.PathLike, *, block: int = 2048, fps: float | None = None,
                      start: int | str | None = None, end: int | str | None = None,
                      names: tuple[str, str] = ("start", "end"), **open_kwargs) -> dict:
    """What ``spikegen info --json`` prints: a JSON-able dict of a spike file's size, time and
    firing-rate statistics.

    The file is read in blocks of ``block`` frames (memory stays bounded). ``fps`` overrides
    the file's frame rate (default: a packed ``.npz``'s ``fps`` metadata, else 20 000 Hz);
    ``start`` / ``end`` (frames, or times such as ``"10ms"``, ``"0.5s"``; see
    :func:`spikegen.spikes.io.frame_range`) restrict the statistics to frames
    ``start .. end - 1``. ``open_kwargs`` are those of :func:`spikegen.spikes.io.open_spikes`.
    """
    src = open_spikes(path, fps=fps, **open_kwargs)
    info = src.info()
    a, b = src.time_range(start, end, names=names)
    n = b - a
    rates = np.empty(n, dtype=np.float64)
    pixel_counts = np.zeros((src.height, src.width), dtype=np.int64)
    for t0, blk in src.blocks(block, 0, start=a, stop=b):
        rates[t0 - a:t0 - a + blk.shape[0]] = blk.reshape(blk.shape[0], -1).mean(axis=1, dtype=np.float64)
        pixel_counts += blk.sum(axis=0, dtype=np.int64)
    pix = pixel_counts / n
    meta = {k: v for k, v in (info.meta or {}).items() if k not in _FORMAT_KEYS}
    pct = lambda x, q: float(np.percentile(x, q))  # noqa: E731
    out = {
        "file": str(info.path),
        "format": info.format,
        "frames": int(src.num_frames),
        "height": int(src.height),
        "width": int(src.width),
        "fps": float(src.fps),
        "fps_source": {"given": "--fps"}.get(src.fps_source, src.fps_source),
        "duration_s": src.num_frames / src.fps,
        "cfa": meta.get("cfa"),
        "range": {"start": a, "end": b, "frames": n, "start_s": a / src.fps, "end_s": b / src.fps},
        "mean_rate": float(rates.mean()),
        "frame_rate_stats": {"min": float(rates.min()), "p5": pct(rates, 5), "median": float(np.median(rates)),
                             "p95": pct(rates, 95), "max": float(rates.max())},
        "empty_frames": int((rates == 0).sum()),
        "pixel_rate_stats": {"p1": pct(pix, 1), "median": float(np.median(pix)), "p99": pct(pix, 99)},
        "silent_pixels": int((pix == 0).sum()),
        "hot_pixels": int((pix > 0.5).sum()),
        "bright_outliers": bright_outliers(pixel_counts, n, meta.get("cfa")),
        "pixels": int(pix.size),
        "trailing_bytes": int(info.extra_bytes) if info.format == "dat" else 0,
        "metadata": meta,
    }
    return out


def _duration(frames: int, fps: float) -> str:
    s = frames / fps
    return f"{s * 1000:.3f} ms ({s:.6g} s)"


_FPS_WHY = {"metadata": "from the file's metadata", "default": "default: the Vidar camera's rate; set with --fps",
            "--fps": "--fps"}


def spike_file_summary(path: str | os.PathLike, *, block: int = 2048, fps: float | None = None,
                       start: int | str | None = None, end: int | str | None = None,
                       names: tuple[str, str] = ("start", "end"), **open_kwargs) -> dict:
    """Frames, size, duration, frame rate and firing-rate statistics of a ``.dat``, ``.npz`` or
    ``.npy`` spike file, as an ordered dict of printable values (what ``spikegen info`` prints).

    Arguments as :func:`spike_file_report`.
    """
    r = spike_file_report(path, block=block, fps=fps, start=start, end=end, names=names, **open_kwargs)
    fr, px, rng = r["frame_rate_stats"], r["pixel_rate_stats"], r["range"]
    npx = r["pixels"]
    out = {
        "file": r["file"],
        "format": r["format"],
        "frames": r["frames"],
        "size (HxW)": f"{r['height']}x{r['width']}",
        "fps": f"{r['fps']:g} Hz ({_FPS_WHY.get(r['fps_source'], r['fps_source'])})",
        "duration": _duration(r["frames"], r["fps"]),
    }
    if r["cfa"] is not None:
        out["cfa"] = f"{r['cfa']} (Bayer pattern of the upright frames)"
    if (rng["start"], rng["end"]) != (0, r["frames"]):
        out["range"] = (f"frames {rng['start']}..{rng['end'] - 1} ({rng['frames']} frames, "
                        f"{rng['start_s'] * 1000:.3f}..{rng['end_s'] * 1000:.3f} ms); statistics below over these")
    out.update({
        "mean firing rate": f"{r['mean_rate']:.5f} spikes/pixel/frame",
        "per-frame rate": f"min {fr['min']:.5f}  p5 {fr['p5']:.5f}  median {fr['median']:.5f}  "
                          f"p95 {fr['p95']:.5f}  max {fr['max']:.5f}",
        "empty frames": r["empty_frames"],
        "per-pixel rate": f"p1 {px['p1']:.4f}  median {px['median']:.4f}  p99 {px['p99']:.4f}",
        "silent pixels": f"{r['silent_pixels']} ({100 * r['silent_pixels'] / npx:.2f}%)",
        "hot pixels (>0.5)": f"{r['hot_pixels']} ({100 * r['hot_pixels'] / npx:.2f}%)",
        "bright outliers": f"{r['bright_outliers']} ({100 * r['bright_outliers'] / npx:.2f}%; firing improbably "
                           "often for their 5x5 neighbours, Poisson p < 1e-6)",
    })
    if r["trailing_bytes"]:
        out["trailing bytes"] = f"{r['trailing_bytes']} (not a whole frame; ignored)"
    meta = {k: v for k, v in r["metadata"].items() if k not in ("cfa", "fps")}
    if meta:
        out["metadata"] = ", ".join(f"{k}={v}" for k, v in meta.items())
    return out


def simulate_file(input: str | os.PathLike, output: str | os.PathLike, *, method: str = "if",
                  v_th: float = 1.0, gain: float = 0.5, frames: int = 200, interp: int = 1,
                  coverage: float = 0.1, seed: int = 0, flip: bool = True,
                  overwrite: bool = False, cfa: str | None = None, fps: float | None = None,
                  warn=None) -> tuple[int, int, int, float]:
    """Simulate spikes from an image, a frame folder or a video; write ``.dat`` or ``.npz``.

    ``cfa`` (``RGGB``, ``BGGR``, ``GRBG``, ``GBRG``) simulates a Bayer colour sensor: each pixel
    integrates its own colour channel of the colour input
    (:func:`spikegen.spikes.cfa.integrate_and_fire_cfa`; method ``if`` only); the pattern is that
    of the upright frames and is recorded as ``cfa`` in a packed ``.npz``. A ``.dat`` cannot
    store it: ``warn`` (a callable, e.g. printing to stderr) is told so. ``fps`` (default
    20 000, the Vidar cameras) is the simulated camera's frame rate, recorded as ``fps`` in a
    packed ``.npz``.

    Returns ``(frames, height, width, mean firing rate)``.
    """
    input, output = Path(input), Path(output)
    if output.suffix.lower() not in (".dat", ".npz"):
        raise SpikeFileError(f"{output}: the output must end in .dat or .npz")
    if method not in ("if", "photon"):
        raise SpikeFileError(f"--method must be 'if' or 'photon', got {method!r}")
    if not input.exists():
        raise SpikeFileError(f"{input}: no such file or folder")
    if int(frames) < 1:
        raise SpikeFileError(f"--frames must be >= 1, got {frames}")

    fps = DEFAULT_FPS if fps is None else check_fps(fps, "--fps-camera")
    if cfa is not None:
        try:
            cfa = check_pattern(cfa.upper() if isinstance(cfa, str) else cfa)
        except (ValueError, SpikeGenError) as exc:
            raise SpikeFileError(f"--cfa: {exc}") from None
        if method != "if":
            raise SpikeFileError("--cfa works with --method if (integrate-and-fire of the mosaicked colour input)")
    _refuse_existing(output, overwrite)
    g = torch.Generator().manual_seed(seed)
    meta = {"source": str(input.name), "method": method, "seed": seed}
    meta.update({"v_th": v_th, "gain": gain} if method == "if" else {"coverage": coverage})
    meta["fps"] = fps
    if cfa is not None:
        meta["cfa"] = cfa
        if output.suffix.lower() == ".dat" and warn is not None:
            warn(f"a .dat file cannot store the CFA pattern; read {output.name} back with --cfa {cfa}")
    if input.is_file() and is_image_file(input):
        from PIL import Image

        with Image.open(input) as im:
            w_, h_ = im.size
        check_memory(int(frames) * h_ * w_ * (4 if method == "photon" else 2),
                     f"--frames {frames} of {h_}x{w_} pixels")
        if method == "photon":
            spikes = photon_sampling(load_image(input)[None], frames=frames, coverage=coverage, generator=g)
        elif cfa is not None:
            spikes = integrate_and_fire_cfa(load_image(input)[None], cfa, v_th=v_th, gain=gain, steps=frames, generator=g)
        else:
            spikes = integrate_and_fire(load_image(input, gray=True)[None], v_th=v_th, gain=gain, steps=frames, generator=g)
        arr = spikes[0].cpu().numpy()
        save_spikes(output, arr, flip=flip, overwrite=overwrite, kind="image", **meta)
        return arr.shape[0], arr.shape[1], arr.shape[2], float(arr.mean())

    if method == "photon":
        raise SpikeFileError("photon sampling works on still images; use --method if for videos")
    if cfa is not None:
        blocks = (b.cpu().numpy() for b in _iter_simulate_video_cfa(input, cfa, v_th=v_th, gain=gain, interp=interp,
                                                                   generator=g, block=256))
    else:
        blocks = (b.cpu().numpy() for b in iter_simulate_video(input, v_th=v_th, gain=gain, interp=interp, generator=g, block=256))
    first = next(blocks, None)
    if first is None:
        raise SpikeFileError(f"{input}: no frames found")
    h, w = first.shape[1:]
    if output.suffix.lower() == ".npz":  # the packed format is written in one piece
        arr = np.concatenate([first, *blocks])
        save_spikes(output, arr, overwrite=overwrite, kind="video", interp=interp, **meta)
        return arr.shape[0], h, w, float(arr.mean())

    n, fired = 0, 0
    with DatWriter(output, h, w, flip=flip, overwrite=overwrite) as dw:  # streamed: bounded memory
        for blk in itertools.chain([first], blocks):
            dw.write(blk)
            n += blk.shape[0]
            fired += int(blk.sum(dtype=np.int64))
    return n, h, w, fired / (n * h * w)


def _iter_simulate_video_cfa(source, pattern: str, *, v_th: float, gain: float, interp: int,
                             generator: torch.Generator, block: int = 256):
    """Bayer integrate-and-fire over a colour video, streamed as
    :func:`spikegen.spikes.simulate.iter_simulate_video`: the mosaic of each (linearly
    interpolated) frame is one step, the charge is carried across blocks."""
    state = "random"
    pending: list[torch.Tensor] = []
    prev = None

    def run(steps: list[torch.Tensor]) -> torch.Tensor:
        nonlocal state
        spikes, state = integrate_and_fire(torch.stack(steps).unsqueeze(0), v_th=v_th, gain=gain, init=state,
                                           generator=generator, return_state=True)
        return spikes[0]

    for frame in iter_frames(source, gray=False):
        m = mosaic(frame.float(), pattern)  # [H, W]
        if prev is None:
            pending.append(m)
        else:
            for j in range(1, interp + 1):
                pending.append(m if j == interp else torch.lerp(prev, m, j / interp))
        prev = m
        while len(pending) >= block:
            chunk, pending = pending[:block], pending[block:]
            yield run(chunk)
    if pending:
        yield run(pending)


def parse_crop(crop: str | tuple[int, int, int, int] | None, height: int, width: int) -> tuple[int, int, int, int] | None:
    """``"TOP,LEFT,HEIGHT,WIDTH"`` (pixels of the upright frames) as a checked tuple inside a
    ``height x width`` frame; ``None`` for no crop."""
    if crop is None:
        return None
    try:
        parts = [int(v) for v in (crop.split(",") if isinstance(crop, str) else crop)]
    except (TypeError, ValueError):
        parts = []
    if len(parts) != 4:
        raise SpikeGenError(f"--crop must be TOP,LEFT,HEIGHT,WIDTH (four integers), got {crop!r}")
    top, left, h, w = parts
    if top < 0 or left < 0 or h < 1 or w < 1 or top + h > height or left + w > width:
        raise SpikeGenError(f"--crop {top},{left},{h},{w} does not fit in the {height}x{width} frames")
    return top, left, h, w


def convert_file(input: str | os.PathLike, output: str | os.PathLike, *, start: int | str | None = None,
                 end: int | str | None = None, fps_camera: float | None = None,
                 crop: str | tuple[int, int, int, int] | None = None, compress: bool = False,
                 overwrite: bool = False, progress: bool = True, block: int = 1024, warn=None,
                 **open_kwargs) -> tuple[int, int, int, float]:
    """Convert a spike file between formats (``.dat``, packed ``.npz``; any readable input,
    ``.npy`` and plain ``.npz`` too), optionally cut to frames ``start .. end - 1`` (frames or
    times, as ``spikegen reconstruct``) and cropped (``crop``: ``"TOP,LEFT,HEIGHT,WIDTH"`` of
    the upright frames).

    Streamed ``block`` frames at a time, so memory stays bounded whatever the file's length.
    A ``.dat`` output is written in the PKU convention (upside down, no header: its metadata
    is lost, and ``warn`` is told so when there is some). An ``.npz`` output keeps the
    input's metadata (a packed input's own keys, its ``fps``, its ``cfa`` moved with the crop)
    and records ``converted_from``, ``start_frame`` (counted from the first file across
    repeated cuts), ``crop``, and ``source`` when the input names none. ``open_kwargs`` are those of
    :func:`spikegen.spikes.io.open_spikes` (``.dat`` geometry, ``flip``, ``partial``).

    Returns:
        ``(frames, height, width, mean firing rate)`` of the output.
    """
    input, output = Path(input), Path(output)
    suffix = output.suffix.lower()
    if suffix not in (".dat", ".npz"):
        raise SpikeGenError(f"{output}: the output must be .dat or .npz, got '{output.suffix}'")
    full = open_spikes(input, fps=fps_camera, **open_kwargs)
    if input.resolve() == output.resolve():
        raise SpikeGenError(f"{output} is the input; write the conversion to another file")
    a, b = full.time_range(start, end, names=("--start", "--end"))
    if b <= a:
        raise SpikeGenError(f"--start/--end select no frames of {input} ({full.num_frames} frames)")
    box = parse_crop(crop, full.height, full.width)
    top, left, h, w = box if box is not None else (0, 0, full.height, full.width)
    meta = {k: v for k, v in (getattr(full, "meta", None) or {}).items() if k not in (*_FORMAT_KEYS, "key")}
    if full.fps_source != "default" or "fps" in meta:
        meta["fps"] = full.fps
    if meta.get("cfa") is not None:
        meta["cfa"] = crop_pattern(check_pattern(meta["cfa"]), top, left)
    meta.setdefault("source", input.name)  # a simulated stream's source stays its image or video
    meta.update(converted_from=input.name, start_frame=a + int(meta.get("start_frame", 0)))
    if box is not None:
        meta["crop"] = [top, left, h, w]
    claim_output(output, overwrite=overwrite)
    n = b - a
    if suffix == ".dat":
        lost = sorted(k for k in meta if k in ("cfa", "fps", "v_th", "gain"))
        if lost and warn is not None:
            warn(f"a .dat file has no header: {', '.join(lost)} of {input.name} are not stored")
        writer = DatWriter(output, h, w, overwrite=overwrite)
    else:
        writer = PackedWriter(output, n, h, w, meta, overwrite=overwrite, compress=compress)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc=f"convert {input.name}", unit="frame", dynamic_ncols=True)
    fired = 0
    try:
        for blk in full.blocks(block, 0, start=a, stop=b, workers=1):
            x = blk.spikes[:, top:top + h, left:left + w]
            writer.write(x)
            fired += int(np.count_nonzero(x))
            if bar is not None:
                bar.update(x.shape[0])
    except BaseException:
        writer.abort()
        raise
    finally:
        if bar is not None:
            bar.close()
    writer.close()
    return n, h, w, fired / (n * h * w)


def blur_file(image: str | os.PathLike, output: str | os.PathLike, *, kernels: int = 8, size: int = 40,
              seed: int = 0, overwrite: bool = False) -> Path:
    """Motion-blur one image file with the pretraining kernel bank and write it."""
    output = Path(output)
    if not Path(image).is_file():
        raise SpikeFileError(f"{image}: no such image file")
    _refuse_existing(output, overwrite)
    img = load_image(image)
    g = torch.Generator().manual_seed(seed)
    out = motion_blur(img[None], kernels=kernels, size=size, generator=g)[0]
    return save_image(output, out, overwrite=True)
