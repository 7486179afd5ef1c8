"""``spikegen view``: a spike recording as a video a person can watch, streamed with bounded memory.

Each output frame shows one raw spike frame (white = spike), optionally side by side with the
TFP of the ``tfp_window`` frames around it, under a bar that states the frame index and its
time in milliseconds at the camera's frame rate (20 kHz by default). The file is read in blocks
and frames are written as they are made, so memory stays bounded for recordings of any length.

Outputs: ``.mp4`` (H.264 through :class:`spikegen.image.VideoWriter`), ``.gif`` (PyAV's GIF
encoder, 256 grays), or a folder of PNGs ``frame_0000123.png`` (:func:`spikegen.image.save_image`).
An existing output is refused unless ``overwrite=True``; videos are written to a temporary
file renamed when complete, so a failure leaves no truncated video.

Example:
    >>> import tempfile, pathlib, numpy as np
    >>> from spikegen.spikes.io import save_spikes
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = save_spikes(d / "s.npz", (np.random.default_rng(0).random((60, 32, 48)) < 0.2).astype(np.uint8))
    >>> r = view_file(d / "s.npz", d / "s.gif", every=2, tfp_window=9)
    >>> r["frames"], r["size"]
    (30, [100, 60])
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spikegen.errors import OutputExistsError, SpikeGenError
from spikegen.image import VideoWriter, save_image
from spikegen.spikes.io import check_fps, frame_range, open_spikes
from spikegen.spikes.reconstruct import tfp

__all__ = ["view_file", "iter_view_frames", "LABEL_HEIGHT", "PANEL_GAP"]

#: Height in pixels of the bar above each frame holding the frame index and time.
LABEL_HEIGHT = 14
#: Gap in pixels between the spike panel and the TFP panel.
PANEL_GAP = 4


def _font():
    from PIL import ImageFont

    return ImageFont.load_default()


def _stamp_texts(t: int, fps_camera: float) -> list[list[str]]:
    """The stamp of frame ``t`` in each layout, from the widest to the narrowest (lines)."""
    ms = t * 1000.0 / fps_camera
    return [[f"frame {t}  {ms:.2f} ms"], [f"{t}  {ms:.2f}ms"], [f"{t}", f"{ms:.2f}ms"]]


def _choose_layout(width: int, last: int, fps_camera: float, font) -> int:
    """The first stamp layout whose text fits in ``width`` pixels for every frame up to ``last``
    (the widest stamp is the last frame's: most digits), else the narrowest one."""
    texts = _stamp_texts(last, fps_camera)
    for k, lines in enumerate(texts):
        if max(font.getlength(line) for line in lines) + 4 <= width:
            return k
    return len(texts) - 1


def _label_bar(width: int, lines: list[str], n_lines: int, font, right_text: str | None = None,
               right_x: int = 0) -> np.ndarray:
    from PIL import Image, ImageDraw

    bar = Image.new("L", (width, LABEL_HEIGHT * n_lines), 0)
    draw = ImageDraw.Draw(bar)
    for i, line in enumerate(lines):
        draw.text((2, 1 + LABEL_HEIGHT * i), line, fill=255, font=font)
    if right_text is not None:
        draw.text((right_x + 2, 1), right_text, fill=255, font=font)
    return np.asarray(bar, dtype=np.uint8)


def _compose(spk: np.ndarray, tfp_img: np.ndarray | None, zoom: int, lines: list[str], n_lines: int,
             tfp_text: str | None, font) -> np.ndarray:
    """One gray uint8 ``[n_lines * LABEL_HEIGHT + H*zoom, W']`` frame."""
    panel = spk.astype(np.uint8) * np.uint8(255)
    if zoom > 1:
        panel = panel.repeat(zoom, 0).repeat(zoom, 1)
    right_x = 0
    if tfp_img is not None:
        t = (np.clip(tfp_img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        if zoom > 1:
            t = t.repeat(zoom, 0).repeat(zoom, 1)
        gap = np.full((panel.shape[0], PANEL_GAP), 128, np.uint8)
        right_x = panel.shape[1] + PANEL_GAP
        panel = np.concatenate([panel, gap, t], axis=1)
    bar = _label_bar(panel.shape[1], lines, n_lines, font, tfp_text, right_x)
    return np.concatenate([bar, panel], axis=0)


def _check_int(v: Any, name: str, minimum: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise SpikeGenError(f"{name} must be an integer >= {minimum}, got {v!r}")
    return int(v)


def _time_range(start: Any, end: Any, n: int, fps_camera: Any) -> tuple[Any, Any]:
    """Frames for ``start`` / ``end`` given as times (strings); ints pass unchanged."""
    if not (isinstance(start, str) or isinstance(end, str)):
        return start, end

    return frame_range(start, end, n, check_fps(fps_camera, "fps_camera"), names=("--start", "--end"))


def iter_view_frames(
    src: Any,
    *,
    start: int | str = 0,
    end: int | str | None = None,
    every: int = 1,
    tfp_window: int | None = None,
    tfp_scale: float | None = None,
    fps_camera: float | None = None,
    zoom: int = 1,
    block: int = 256,
    info: dict | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(frame index, gray uint8 image)`` for frames ``start, start + every, ... < end``
    of an open spike reader (:func:`spikegen.spikes.io.open_spikes`), reading at most about
    ``max(block, tfp_window)`` frames at a time.

    ``tfp_scale=None`` fixes the TFP display scale from the first block (the 99.5th percentile
    of its TFP maps to white); the scale used is stored in ``info["tfp_scale"]`` when ``info``
    is given.

    The stamp reads ``frame 123  6.15 ms``; when that does not fit the frame's width it is
    shortened to ``123  6.15ms``, then split over two lines (the same layout for every frame).
    The layout's bar height is stored in ``info["label_height"]``.

    ``start`` / ``end`` are frame indices, or times with units (``"10ms"``, ``"0.5s"``)
    converted at ``fps_camera`` as :func:`spikegen.spikes.io.frame_range` (start rounded down,
    end up). ``fps_camera`` (the camera's frame rate, for the stamps and the times) defaults
    to the reader's ``fps``: a packed ``.npz``'s ``fps`` metadata, else 20 000 Hz.

    Shape:
        - output images: ``[L + H * zoom, W * zoom]`` (``[L + H * zoom, 2 W * zoom + 4]`` with
          TFP), uint8, ``L`` = 14 (one line of stamp) or 28 (two lines).
    """
    n = src.num_frames
    if fps_camera is None:
        fps_camera = float(getattr(src, "fps", 20000.0))
    start, end = _time_range(start, end, n, fps_camera)
    end = n if end is None else end
    start = _check_int(start, "start", 0)
    end = _check_int(end, "end", 0)
    every = _check_int(every, "every", 1)
    zoom = _check_int(zoom, "zoom", 1)
    block = _check_int(block, "block", 1)
    if not start < end <= n:
        raise SpikeGenError(f"need 0 <= start < end <= {n} (the frames of '{src.path}'), got start={start}, end={end}")
    if tfp_window is not None:
        tfp_window = _check_int(tfp_window, "tfp_window", 1)
    if fps_camera <= 0:
        raise SpikeGenError(f"fps_camera must be > 0, got {fps_camera}")
    if tfp_scale is not None and not tfp_scale > 0:
        raise SpikeGenError(f"tfp_scale must be > 0, got {tfp_scale}")
    w = tfp_window or 1
    half = w // 2 if tfp_window else 0
    sel = range(start, end, every)
    if tfp_window and every < w:
        # overlapping windows: read contiguous spans of at most max(block, w) frames
        per_chunk = max(1, (max(block, w) - w) // every + 1)
    elif tfp_window:
        per_chunk = 1  # windows do not overlap: read each one alone
    else:
        per_chunk = block  # raw frames only: read every `every`-th frame, `block` at a time
    font = _font()
    panel_w = (2 * src.width * zoom + PANEL_GAP) if tfp_window else src.width * zoom
    tfp_text = f"TFP {tfp_window}" if tfp_window else None
    # the stamp's left part must fit left of the TFP label, or in the whole width without TFP
    stamp_w = src.width * zoom if tfp_window else panel_w
    layout = _choose_layout(stamp_w, sel[-1], fps_camera, font)
    n_lines = len(_stamp_texts(0, fps_camera)[layout])
    if info is not None:
        info["label_height"] = n_lines * LABEL_HEIGHT
    scale = tfp_scale
    for j in range(0, len(sel), per_chunk):
        cs = np.asarray(sel[j : j + per_chunk], dtype=np.int64)
        if tfp_window:
            lo = max(0, int(cs[0]) - half)
            hi = min(n, int(cs[-1]) - half + w)
            blk = src.read_frames(range(lo, hi), workers=1)
            pos = cs - lo
        else:
            lo = int(cs[0])
            blk = src.read_frames(range(lo, int(cs[-1]) + 1, every), workers=1)
            pos = np.arange(len(cs))
        rec = None
        if tfp_window:
            rec = tfp(torch.from_numpy(blk), tfp_window, centers=pos).numpy()
            if scale is None:
                q = float(np.quantile(rec, 0.995))
                scale = 1.0 / q if q > 0 else 1.0
                if info is not None:
                    info["tfp_scale"] = scale
            rec = rec * scale
        for k, t in enumerate(cs.tolist()):
            lines = _stamp_texts(t, fps_camera)[layout]
            yield t, _compose(blk[pos[k]], rec[k] if rec is not None else None, zoom, lines, n_lines, tfp_text, font)


class _GifWriter:
    """Stream gray frames into an animated GIF (PyAV's encoder) through a temporary file."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path = path
        self.fps = fps
        self.tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
        self.container = None
        self.stream = None
        self.frames = 0

    def write(self, img: np.ndarray) -> None:
        import av

        if self.container is None:
            self.container = av.open(str(self.tmp), mode="w", format="gif")
            self.stream = self.container.add_stream("gif", rate=Fraction(self.fps).limit_denominator(1000))
            self.stream.width, self.stream.height = img.shape[1], img.shape[0]
            self.stream.pix_fmt = "gray"
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="gray")
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        if self.container is None:
            return
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()
        self.container = None
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        if self.container is not None:
            try:
                self.container.close()
            except Exception:
                pass
            self.container = None
        if self.tmp.exists():
            self.tmp.unlink()


def _output_kind(output: Path) -> str:
    suffix = output.suffix.lower()
    if suffix == ".mp4":
        return "mp4"
    if suffix == ".gif":
        return "gif"
    if suffix == "" or output.is_dir():
        return "dir"
    raise SpikeGenError(f"output '{output}': expected OUT.mp4, OUT.gif or a folder (for PNG frames), got suffix '{output.suffix}'")


def view_file(
    path: str | os.PathLike,
    output: str | os.PathLike,
    *,
    start: int | str = 0,
    end: int | str | None = None,
    every: int = 1,
    tfp_window: int | None = None,
    tfp_scale: float | None = None,
    fps: float = 30.0,
    fps_camera: float | None = None,
    zoom: int = 1,
    block: int = 256,
    overwrite: bool = False,
    progress: bool = False,
    **open_kwargs: Any,
) -> dict:
    """Write the raw spike frames of a recording as a video (``.mp4`` / ``.gif``) or PNG folder.

    Args:
        path: the spike file (``.dat``, ``.npz``, ``.npy``); ``open_kwargs`` are those of
            :func:`spikegen.spikes.io.open_spikes` (``height``, ``width``, ``flip``,
            ``raw_width``, ``partial``, ``key``).
        output: ``OUT.mp4``, ``OUT.gif`` or a folder (created) for ``frame_0000123.png`` files.
        start, end: the frame range ``start .. end - 1`` (default: the whole file): frame
            indices, or times with units (``"10ms"``, ``"0.5s"``) converted at ``fps_camera``
            (start rounded down, end up; :func:`spikegen.spikes.io.frame_range`).
        every: show one frame in ``every``.
        tfp_window: also show the TFP of ``tfp_window`` frames centred on each frame, on the right.
        tfp_scale: TFP display gain (default: from the first block, its 99.5th percentile -> white).
        fps: frame rate of the video file.
        fps_camera: the camera's frame rate, for the time stamps and ``start`` / ``end`` times
            (default: the file's ``fps`` metadata, else 20 kHz, the PKU Vidar cameras).
        zoom: integer up-scaling of the panels (nearest), for small sensors.
        block: frames read at a time (memory is about ``block * H * W`` bytes, plus the TFP window).
        overwrite: replace an existing output; otherwise :class:`OutputExistsError` before any work.
        progress: show a progress bar on stderr.

    Returns:
        ``{"output", "format", "frames", "size": [width, height], "range": [start, end, every],
        "tfp_window", "tfp_scale", "label_height"}``.
    """
    out = Path(os.fspath(output))
    kind = _output_kind(out)
    if kind == "dir":
        if out.exists() and not out.is_dir():
            raise SpikeGenError(f"output '{out}' exists and is not a folder")
        if out.is_dir() and any(out.iterdir()) and not overwrite:
            raise OutputExistsError(f"output folder '{out}' exists and is not empty; pass overwrite=True (CLI: --overwrite)")
    else:
        if out.is_dir():
            raise SpikeGenError(f"output '{out}' is an existing folder, not a {kind} file")
        if out.exists() and not overwrite:
            raise OutputExistsError(f"{out}: exists; pass overwrite=True (CLI: --overwrite) to replace it")
        if not out.parent.is_dir():
            out.parent.mkdir(parents=True, exist_ok=True)
    if not fps > 0:
        raise SpikeGenError(f"fps must be > 0, got {fps}")
    src = open_spikes(path, **open_kwargs)
    if fps_camera is None:
        fps_camera = src.fps
    start, end = _time_range(start, end, src.num_frames, fps_camera)
    info: dict = {"tfp_scale": tfp_scale}
    frames = iter_view_frames(
        src, start=start, end=end, every=every, tfp_window=tfp_window, tfp_scale=tfp_scale,
        fps_camera=fps_camera, zoom=zoom, block=block, info=info,
    )
    end_ = src.num_frames if end is None else end
    total = len(range(start, end_, every)) if isinstance(start, int) and isinstance(every, int) and every > 0 else None
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="frame", desc=f"view {Path(path).name}", leave=False)
    count, size = 0, None
    try:
        if kind == "dir":
            out.mkdir(parents=True, exist_ok=True)
            for t, img in frames:
                save_image(out / f"frame_{t:07d}.png", img.astype(np.float32) / 255.0, overwrite=overwrite)
                count, size = count + 1, [img.shape[1], img.shape[0]]
                if bar is not None:
                    bar.update(1)
        elif kind == "mp4":
            with VideoWriter(out, fps=fps, overwrite=overwrite) as vw:
                for t, img in frames:
                    vw.write(img.astype(np.float32) / 255.0)
                    count, size = count + 1, [img.shape[1], img.shape[0]]
                    if bar is not None:
                        bar.update(1)
        else:
            gw = _GifWriter(out, fps)
            try:
                for t, img in frames:
                    gw.write(img)
                    count, size = count + 1, [img.shape[1], img.shape[0]]
                    if bar is not None:
                        bar.update(1)
            except BaseException:
                gw.abort()
                raise
            gw.close()
    finally:
        if bar is not None:
            bar.close()
    return {
        "output": str(out),
        "format": kind,
        "frames": count,
        "size": size,
        "range": [start, end_, every],
        "tfp_window": tfp_window,
        "tfp_scale": info.get("tfp_scale"),
        "label_height": info.get("label_height"),
    }
