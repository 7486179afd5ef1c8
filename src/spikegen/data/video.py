"""``VideoPairs``: the GOPRO protocol on any frame folder or video file, made on the fly.

A sample is a window of ``n_blur`` consecutive frames (after optional linear interpolation by
``interp``, i.e. ``interp - 1`` frames inserted between neighbours) centred on an original
frame: the **blurry** image is the mean of the window, the **clean** target is its middle frame
(always an original frame, never an interpolated one), and the **spikes** are
integrate-and-fire of the window's gray intensity, one spike frame per window frame (or
``spike_frames`` frames, the intensity resampled linearly in time over the same exposure).
All frames share one random crop and flip. The paper's GOPRO setting is ``n_blur=97,
interp=8`` (13 original frames); ``n_blur=7, interp=1`` is a small-scale version.

Example:
    >>> from spikegen.data import VideoPairs
    >>> ds = VideoPairs("shared/data/video", 128, n_blur=7)   # doctest: +SKIP
    >>> s = ds[0]                                             # doctest: +SKIP
    >>> s["blurry"].shape, s["spikes"].shape                  # doctest: +SKIP
    (torch.Size([3, 128, 128]), torch.Size([7, 128, 128]))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from spikegen.data.common import (
    DEFAULT_GAIN,
    PathLike,
    Range,
    SeededDataset,
    as_range,
    as_roots,
    as_size,
    coin,
    is_excluded,
    random_crop_box,
    resize_min_side,
    uniform,
)
from spikegen.degrade import rgb_to_gray
from spikegen.errors import SpikeFileError
from spikegen.image import load_image
from spikegen.media import is_image_file, is_video_file, natural_key
from spikegen.spikes.simulate import integrate_and_fire


@dataclass
class Clip:
    """One source of consecutive frames: a folder of images or a video file."""

    source: Path
    frames: list[Path] | None  # image files, or None for a video file
    length: int

    @property
    def is_video(self) -> bool:
        return self.frames is None


def video_frame_count(path: Path) -> int:
    """Number of frames of a video file (from the container, else by counting packets)."""
    import av

    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise SpikeFileError(f"{path}: no video stream")
            st = c.streams.video[0]
            n = int(st.frames or 0)
            if n > 0:
                return n
            return sum(1 for p in c.demux(st) if p.size > 0)
    except SpikeFileError:
        raise
    except Exception as exc:  # PyAV raises its own error types for unreadable files
        raise SpikeFileError(f"{path}: cannot read as a video ({exc})") from None


def read_video_frames(path: Path, start: int, stop: int) -> torch.Tensor:
    """Frames ``start .. stop-1`` of a video as float ``[n, 3, H, W]`` in [0, 1] (decoded in order)."""
    import av

    out = []
    try:
        with av.open(str(path)) as c:
            st = c.streams.video[0]
            for i, frame in enumerate(c.decode(st)):
                if i >= stop:
                    break
                if i >= start:
                    out.append(frame.to_ndarray(format="rgb24"))
    except Exception as exc:
        raise SpikeFileError(f"{path}: cannot decode frames {start}..{stop - 1} ({exc})") from None
    if len(out) != stop - start:
        raise SpikeFileError(f"{path}: has only {start + len(out)} frames, needed frames {start}..{stop - 1}")
    arr = np.stack(out).astype(np.float32) / 255.0
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def find_clips(roots: Sequence[Path], *, recursive: bool = True, exclude: Iterable[str] = (), min_frames: int = 1) -> list[Clip]:
    """Frame folders (every folder holding images directly) and video files under ``roots``."""
    exclude = tuple(exclude)
    clips: list[Clip] = []
    for root in roots:
        if root.is_file():
            if is_video_file(root):
                clips.append(Clip(root, None, video_frame_count(root)))
            continue
        dirs = [root] + (sorted(p for p in root.rglob("*") if p.is_dir()) if recursive else [])
        for d in dirs:
            rel = d.relative_to(root).parts
            if any(part.startswith(".") for part in rel) or (rel and is_excluded(d, root, exclude)):
                continue
            imgs, vids = [], []
            for p in d.iterdir():
                if not p.is_file() or p.name.startswith(".") or is_excluded(p, root, exclude):
                    continue
                if is_image_file(p):
                    imgs.append(p)
                elif is_video_file(p):
                    vids.append(p)
            if len(imgs) >= max(1, min_frames):
                imgs.sort(key=natural_key)
                clips.append(Clip(d, imgs, len(imgs)))
            for v in sorted(vids):
                clips.append(Clip(v, None, video_frame_count(v)))
    return clips


class VideoPairs(SeededDataset):
    """Blurry frame (mean of ``n_blur`` frames) + spikes + sharp middle frame, from videos.

    Args:
        root: a folder whose subfolders are clips (frame images), a folder of frames (one clip),
            a video file, a folder of video files, or a list of these.
        size: crop size (int or ``(h, w)``); frames smaller than it are upscaled first.
        n_blur: frames averaged into the blurry image (odd), counted after interpolation.
        interp: linear interpolation factor (``1`` = none; ``8`` inserts 7 frames between
            neighbours, as the GOPRO protocol does with XVFI).
        stride: use every ``stride``-th original frame as a window centre.
        v_th, gain: integrate-and-fire threshold and gain (numbers or ``(low, high)`` ranges drawn
            per sample). The gain is per window frame, whatever ``interp``.
        init: initial charge, ``"random"`` or ``"zero"``.
        spike_frames: number of spike frames; ``None`` = one per window frame (``n_blur``).
        recursive, exclude: clip discovery (as :class:`~spikegen.data.SyntheticPairs`).
        seed, length, augment: as :class:`~spikegen.data.SyntheticPairs`.

    Returns (per sample):
        ``{"clean": [3,h,w], "blurry": [3,h,w], "spikes": [T,h,w] uint8, "meta": {"source",
        "frame": centre frame (file name or index), "frames": [first, last] original frames
        used, "n_blur", "interp", "v_th", "gain", "crop", "flip", ...}}``.

    Raises:
        SpikeFileError: no clip found, or no clip long enough for one window.
    """

    def __init__(
        self,
        root: PathLike | Sequence[PathLike],
        size: int | tuple[int, int] = 256,
        *,
        n_blur: int = 7,
        interp: int = 1,
        stride: int = 1,
        v_th: Range = 1.0,
        gain: Range = DEFAULT_GAIN,
        init: Literal["random", "zero"] = "random",
        spike_frames: int | None = None,
        recursive: bool = True,
        exclude: Iterable[str] = (),
        seed: int = 0,
        length: int | None = None,
        augment: bool = True,
    ) -> None:
        if int(n_blur) < 1 or int(n_blur) % 2 == 0:
            raise ValueError(f"n_blur must be odd and >= 1 (the sharp target is the middle frame), got {n_blur}")
        if int(interp) < 1:
            raise ValueError(f"interp must be >= 1, got {interp}")
        if int(stride) < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        if spike_frames is not None and int(spike_frames) < 1:
            raise ValueError(f"spike_frames must be >= 1, got {spike_frames}")
        if init not in ("random", "zero"):
            raise ValueError(f"init must be 'random' or 'zero', got {init!r}")
        self.roots = as_roots(root)
        self.size = as_size(size)
        self.n_blur, self.interp, self.stride = int(n_blur), int(interp), int(stride)
        self.v_th = as_range(v_th, "v_th")
        self.gain = as_range(gain, "gain")
        self.init = init
        self.spike_frames = int(spike_frames) if spike_frames is not None else None
        self.exclude = tuple(exclude)
        self.seed = int(seed)
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.augment = bool(augment)
        self.clips = find_clips(self.roots, recursive=recursive, exclude=self.exclude)
        where = ", ".join(str(r) for r in self.roots)
        if not self.clips:
            raise SpikeFileError(f"{where}: no frame folders or video files found")
        half = (self.n_blur - 1) // 2
        raw_needed = math.ceil(half / self.interp)  # original frames needed on each side
        self.samples: list[tuple[int, int]] = []
        for ci, clip in enumerate(self.clips):
            for k in range(raw_needed, clip.length - raw_needed, self.stride):
                self.samples.append((ci, k))
        if not self.samples:
            longest = max(c.length for c in self.clips)
            raise SpikeFileError(f"{where}: no clip is long enough for a window of n_blur={self.n_blur} at interp={self.interp} "
                                 f"(needs {2 * raw_needed + 1} frames; the longest clip has {longest})")
        self._set_length(length, len(self.samples))

    def __repr__(self) -> str:
        return (f"VideoPairs({len(self.clips)} clips, {len(self.samples)} windows, size={self.size}, n_blur={self.n_blur}, "
                f"interp={self.interp}, v_th={self.v_th}, gain={self.gain}, seed={self.seed}, epoch={self.epoch})")

    def _load(self, clip: Clip, start: int, stop: int) -> torch.Tensor:
        if clip.is_video:
            return read_video_frames(clip.source, start, stop)
        return torch.stack([load_image(p) for p in clip.frames[start:stop]])

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = self._check_index(index)
        g = self.generator(index)
        ci, k = self.samples[index % len(self.samples)]
        clip = self.clips[ci]
        half = (self.n_blur - 1) // 2
        c = k * self.interp  # centre in interpolated time
        t = torch.arange(c - half, c + half + 1, dtype=torch.float64) / self.interp  # original-frame positions
        first, last = int(math.floor(t[0].item())), int(math.ceil(t[-1].item()))
        raw = self._load(clip, first, last + 1)  # [R, 3, H, W]
        raw, up = resize_min_side(raw, self.size)
        H, W = raw.shape[-2:]
        top, left = random_crop_box(H, W, self.size, g if self.augment else None)
        flip = coin(g) if self.augment else False
        raw = raw[..., top: top + self.size[0], left: left + self.size[1]]
        if flip:
            raw = raw.flip(-1)
        # Linear interpolation of the window frames.
        window = lerp_frames(raw, t - first)  # [n_blur, 3, h, w]
        clean = raw[k - first].contiguous()
        blurry = window.mean(0).clamp(0, 1).contiguous()
        v_th = uniform(g, *self.v_th)
        gain = uniform(g, *self.gain)
        gray = rgb_to_gray(window)[:, 0]  # [n_blur, h, w]
        n_sp = self.spike_frames or self.n_blur
        if n_sp != self.n_blur:
            gray = resample_time(gray, n_sp)
        spikes = integrate_and_fire(gray[None], v_th=v_th, gain=gain, init=self.init, generator=g)[0]
        frame_name = clip.frames[k].name if clip.frames is not None else k
        meta = {
            "source": str(clip.source), "frame": frame_name, "frame_index": k, "frames": [first, last],
            "n_blur": self.n_blur, "interp": self.interp, "spike_frames": n_sp, "index": index, "epoch": self.epoch,
            "seed": self.seed, "sample_seed": self.sample_seed(index), "crop": [top, left, self.size[0], self.size[1]],
            "flip": flip, "resize": round(float(up), 6), "spikes": "if", "v_th": v_th, "gain": gain, "init": self.init,
        }
        return {"clean": clean, "blurry": blurry, "spikes": spikes.to(torch.uint8).contiguous(), "meta": meta}


def lerp_frames(raw: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Frames of ``raw`` ``[R, ...]`` at fractional positions ``pos`` ``[n]`` (>= 0, float64),
    linearly interpolated between neighbours (positions past the last frame take it).

    Example:
        >>> lerp_frames(torch.tensor([[0.0], [2.0]]), torch.tensor([0.0, 0.25, 1.0], dtype=torch.float64)).flatten().tolist()
        [0.0, 0.5, 2.0]
    """
    i0 = pos.floor().long().clamp(max=raw.shape[0] - 1)
    i1 = (i0 + 1).clamp(max=raw.shape[0] - 1)
    a = (pos - i0.double()).float().view(-1, *([1] * (raw.ndim - 1)))
    return (1 - a) * raw[i0] + a * raw[i1]


def resample_time(seq: torch.Tensor, n: int) -> torch.Tensor:
    """Linearly resample ``[T, H, W]`` to ``[n, H, W]`` over the same time span (ends kept)."""
    T = seq.shape[0]
    if n == T:
        return seq
    if T == 1:
        return seq.expand(n, *seq.shape[1:]).clone()
    x = seq.permute(1, 2, 0).reshape(1, -1, T)
    y = F.interpolate(x.float(), size=n, mode="linear", align_corners=True)
    return y.reshape(*seq.shape[1:], n).permute(2, 0, 1).contiguous().to(seq.dtype)
