"""``ReconstructionPairs``: moving-scene samples for "TFP & Spike" dense frame reconstruction.

The STIR / SREDS protocol made on the fly from photos or videos. A sample is a window of
``window`` spike frames of a *moving* scene:

- photos (``source="images"``): a random crop that pans (up to ``max_shift`` pixels over the
  window, random direction) and zooms (log-zoom up to ``max_zoom``) while the spike camera
  records it;
- videos (``source="video"``): the window spans ``span`` original frames (drawn up to
  ``max_span``), linearly interpolated to one frame per spike step.

Integrate-and-fire of the gray intensity runs over the whole window with a random initial
charge, at a white-pixel firing rate ``rate = gain / V_th`` drawn log-uniformly from ``rate``
(sparse ~0.05 to dense ~0.9: real scenes and cameras give any). The sample is then what the
evaluation protocol (:func:`spikegen.tasks.evaluate.evaluate_reconstruct`) gives SpikeGen:

- ``blurry``: the pseudo-frame, by default the window's mean firing rate / ``rate`` (the TFP at
  its proper intensity scale), clamped to [0, 1], on 3 channels -- it stands in for the RGB
  input; ``tfp_window`` / ``tfp_min_spikes`` / ``tfi`` make it the TFP of fewer centre frames
  blended with the TFI (:func:`blended_pseudo_frame`), as reconstruction weights that name
  them get it at run time;
- ``spikes``: the centre ``frames`` spike frames (frames ``c - frames // 2 ...`` with ``c =
  window // 2``, the convention of :func:`spikegen.spikes.tfp`);
- ``clean``: the gray target at the centre frame (an exact crop, never resampled), 3 channels.

Example:
    >>> from spikegen.data import ReconstructionPairs
    >>> ds = ReconstructionPairs("shared/data/images", 96, window=41)    # doctest: +SKIP
    >>> s = ds[0]                                                        # doctest: +SKIP
    >>> s["blurry"].shape, s["spikes"].shape, s["meta"]["rate"] <= 0.9   # doctest: +SKIP
    (torch.Size([3, 96, 96]), torch.Size([8, 96, 96]), True)
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Literal, Sequence

import torch
import torch.nn.functional as F

from spikegen.data.common import (
    PathLike,
    Range,
    SeededDataset,
    as_range,
    as_roots,
    as_size,
    coin,
    find_images,
    random_crop_box,
    rescale,
    resize_min_side,
    uniform,
)
from spikegen.data.video import find_clips, lerp_frames, read_video_frames
from spikegen.degrade import rgb_to_gray
from spikegen.errors import SpikeFileError
from spikegen.image import load_image
from spikegen.spikes.reconstruct import tfi, tfp
from spikegen.spikes.reconstruct.playback import mean_rate, widened_window
from spikegen.spikes.simulate import integrate_and_fire

__all__ = ["ReconstructionPairs", "blended_pseudo_frame", "tfi_weight", "tfp_tfi_blend"]


def _window_range(window: int | Sequence[int]) -> tuple[int, int]:
    lo, hi = (int(window), int(window)) if isinstance(window, (int, float)) else (int(window[0]), int(window[1]))
    if lo < 1 or hi < lo:
        raise ValueError(f"window must be >= 1 (or a (low, high) range with low <= high), got {window}")
    return lo, hi


def _draw(window: tuple[int, int], g: torch.Generator) -> int:
    """A frame count drawn uniformly from the inclusive ``(low, high)`` range (no draw when equal)."""
    lo, hi = window
    return lo + int(torch.randint(0, hi - lo + 1, (1,), generator=g)) if hi > lo else lo


def tfi_weight(value: float | str) -> float | str:
    """A pseudo-frame TFI weight: a number in [0, 1] or ``"ivw"`` (else ``ValueError``)."""
    if value == "ivw":
        return "ivw"
    try:
        b = float(value)
    except (TypeError, ValueError):
        b = float("nan")
    if not 0.0 <= b <= 1.0:
        raise ValueError(f"the pseudo-frame's TFI weight must be a number in [0, 1] or 'ivw', got {value!r}")
    return b


def blended_pseudo_frame(spikes: torch.Tensor, n_tfp: int, scale: float, weight: float | str,
                         center: int | None = None) -> torch.Tensor:
    """``[H, W]`` pseudo-frame at frame ``center`` (default ``T // 2``) of ``spikes [T, H, W]``:
    ``((1 - b) x`` the TFP rate of the ``n_tfp`` centred frames ``+ b x`` the TFI rate searched
    over the whole window (``T // 2`` frames each side)) ``x scale``, clamped to [0, 1].

    ``weight``: the TFI's ``b``, a number (0: the TFP alone), or ``"ivw"``: per pixel the
    inverse-variance weight ``b = 1 / (1 + (n r^2)^2)`` with ``r`` the pixel's TFP rate. An
    integrate-and-fire pixel firing at rate ``r`` has a count over ``n`` frames quantised to
    1 (the TFP's error ~ ``1 / n`` in rate) and an interval quantised to one frame (the TFI's
    error ~ ``r^2``): the TFI wins on sparse pixels (and under motion, which it does not blur),
    the TFP on dense ones (docs/model.md, "The pseudo-frame of reconstruction"). The training
    pairs' pseudo-frame, and through :func:`spikegen.tasks.deblur.pseudo_frame` the one the
    weights get at run time."""
    c = spikes.shape[0] // 2 if center is None else int(center)
    weight = tfi_weight(weight)
    if weight == 0:
        return tfp(spikes, n_tfp, centers=[c], scale=scale)[0]
    rate = tfp(spikes, n_tfp, centers=[c])[0]
    ti = tfi(spikes, v_th=1.0, centers=[c], max_half_window=max(spikes.shape[0] // 2, 1))[0]
    b = 1.0 / (1.0 + (n_tfp * rate * rate) ** 2) if weight == "ivw" else weight
    return (((1.0 - b) * rate + b * ti) * float(scale)).clamp(0, 1)


#: the classic TFP/TFI blend row of ``spikegen eval reconstruct|real`` (``--methods blend``): the
#: TFP over 21 frames widened until the mean pixel fired twice, per-pixel inverse-variance weights
BLEND_TFP_WINDOW, BLEND_MIN_SPIKES = 21, 2.0


def tfp_tfi_blend(spikes: torch.Tensor, center: int, scale: float = 1.0) -> torch.Tensor:
    """The classic inverse-variance blend of TFP and TFI at ``center`` of a window ``spikes
    [T, H, W]`` (``[H, W]``, x ``scale``, clamped to [0, 1]): :func:`blended_pseudo_frame` with
    ``"ivw"`` and the TFP over ``BLEND_TFP_WINDOW`` frames, widened on sparse windows until the
    mean pixel has fired ``BLEND_MIN_SPIKES`` times (at most ``T``). No learned part: the
    reconstruction weights start from the same frame.

    Example:
        >>> s = torch.zeros(41, 1, 2, dtype=torch.uint8); s[::4, 0, 0] = 1; s[::2, 0, 1] = 1
        >>> [round(v, 3) for v in tfp_tfi_blend(s, 20).flatten().tolist()]  # TFP 5/21, 11/21; TFI 1/4, 1/2
        [0.243, 0.523]
    """
    n = widened_window(BLEND_TFP_WINDOW, spikes.shape[0], mean_rate(spikes), BLEND_MIN_SPIKES)
    return blended_pseudo_frame(spikes, n, scale, "ivw", center)


class ReconstructionPairs(SeededDataset):
    """TFP pseudo-frame + centre spike frames + gray centre frame, from moving scenes.

    Args:
        root: image folder(s) (``source="images"``) or video / frame folders (``"video"``).
        size: crop size (int or ``(h, w)``).
        source: ``"images"`` (synthetic pans and zooms of stills) or ``"video"``.
        window: spike frames the TFP averages (an int, or a ``(low, high)`` range drawn per
            sample; the evaluation uses 61, ``spikegen reconstruct`` 41).
        frames: centre spike frames returned (the model's input, 8 for the tiny model).
        rate: white-pixel firing probability per frame, ``gain / V_th``; a number or a
            ``(low, high)`` range drawn log-uniformly per sample.
        v_th: integrate-and-fire threshold (number or range); ``gain = rate * V_th``.
        max_shift: largest pan over the window, in pixels of the crop (``"images"``).
        max_zoom: largest absolute log-zoom over the window (``"images"``; 0.1 = about 10 %).
        max_span: largest number of original frames one window spans (``"video"``).
        scale: ``(low, high)`` random rescale of photos before cropping (``"images"``).
        tfp_window: frames of the TFP pseudo-frame around the centre (an int or a ``(low,
            high)`` range drawn per sample, at most the window); ``None`` (default): the whole
            window. Reconstruction weights that name a ``tfp_window`` are trained this way.
        tfp_min_spikes: widen that TFP window (up to the whole window) until the mean pixel
            has fired this many times, as :func:`spikegen.tasks.deblur.pseudo_window` does for
            weights that name ``tfp_min_spikes``; 0 (default): no widening.
        tfi: the TFI's weight in the pseudo-frame, a number ``b`` in [0, 1] (``(1 - b) TFP + b
            TFI``, the TFI searched over the whole window) or ``"ivw"`` (per pixel by inverse
            variance): :func:`blended_pseudo_frame`, what :func:`spikegen.tasks.deblur.
            pseudo_frame` makes for weights that name ``pseudo_tfi``; 0 (default): TFP only.
        recursive, exclude, seed, length, augment: as :class:`~spikegen.data.SyntheticPairs`.

    Returns (per sample):
        ``{"clean": [3,h,w] gray, "blurry": [3,h,w] TFP pseudo-frame, "spikes": [frames,h,w]
        uint8, "meta": {"source", "window", "rate", "v_th", "gain", "shift", "zoom" or "span",
        "crop", "flip", ...}}``.

    Raises:
        SpikeFileError: nothing found under ``root``, or no clip long enough.
    """

    def __init__(self, root: PathLike | Sequence[PathLike], size: int | tuple[int, int] = 128, *,
                 source: Literal["images", "video"] = "images", window: int | Sequence[int] = (31, 61),
                 frames: int = 8, rate: Range = (0.05, 0.9), v_th: Range = 1.0, max_shift: float = 16.0,
                 max_zoom: float = 0.08, max_span: float = 2.0, scale: tuple[float, float] | None = (0.5, 1.0),
                 recursive: bool = True, exclude: Iterable[str] = (), seed: int = 0, length: int | None = None,
                 augment: bool = True, tfp_window: int | Sequence[int] | None = None, tfp_min_spikes: float = 0.0,
                 tfi: float | str = 0.0) -> None:
        if source not in ("images", "video"):
            raise ValueError(f"source must be 'images' or 'video', got {source!r}")
        self.roots = as_roots(root)
        self.size = as_size(size)
        self.source = source
        self.window = _window_range(window)
        self.frames = int(frames)
        if self.frames < 1 or self.frames > self.window[0]:
            raise ValueError(f"frames must lie in [1, the smallest window {self.window[0]}], got {frames}")
        self.rate = as_range(rate, "rate")
        if self.rate[1] > 1.0:
            raise ValueError(f"rate is a firing probability per frame, at most 1, got {rate}")
        self.v_th = as_range(v_th, "v_th")
        self.tfp_window = None if tfp_window is None else _window_range(tfp_window)
        if not float(tfp_min_spikes) >= 0:
            raise ValueError(f"tfp_min_spikes must be >= 0, got {tfp_min_spikes}")
        self.tfp_min_spikes, self.tfi = float(tfp_min_spikes), tfi_weight(tfi)
        if max_shift < 0 or max_zoom < 0 or max_span < 0:
            raise ValueError("max_shift, max_zoom and max_span must be >= 0")
        self.max_shift, self.max_zoom, self.max_span = float(max_shift), float(max_zoom), float(max_span)
        self.scale = None if scale is None else as_range(tuple(scale), "scale")
        self.exclude = tuple(exclude)
        self.seed = int(seed)
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.augment = bool(augment)
        where = ", ".join(str(r) for r in self.roots)
        if source == "images":
            self.images = find_images(self.roots, recursive=recursive, exclude=self.exclude)
            if not self.images:
                raise SpikeFileError(f"{where}: no images found")
            natural = len(self.images)
        else:
            need = int(math.ceil(self.max_span)) + 1
            self.clips = [c for c in find_clips(self.roots, recursive=recursive, exclude=self.exclude, min_frames=need)
                          if c.length >= need]
            if not self.clips:
                raise SpikeFileError(f"{where}: no frame folder or video file with at least {need} frames")
            self.samples = [(ci, k) for ci, c in enumerate(self.clips) for k in range(c.length)]
            natural = len(self.samples)
        self._set_length(length, natural)

    def __repr__(self) -> str:
        n = len(self.images) if self.source == "images" else len(self.clips)
        return (f"ReconstructionPairs({n} {'images' if self.source == 'images' else 'clips'}, size={self.size}, "
                f"window={self.window}, frames={self.frames}, rate={self.rate}, seed={self.seed}, epoch={self.epoch})")

    # -------------------------------------------------------------------------- scenes
    def _still_sequence(self, index: int, w: int, g: torch.Generator) -> tuple[torch.Tensor, dict]:
        """``[w, h, w_]`` gray frames of a panning / zooming crop; frame ``w // 2`` is an exact crop."""
        h, wd = self.size
        img = load_image(self.images[index % len(self.images)])
        if self.scale is not None and self.augment:
            img = rescale(img, uniform(g, *self.scale), min_size=self.size)
        gray = rgb_to_gray(img[None].float())[0]  # [1,H,W]
        shift = uniform(g, 0.0, self.max_shift) if self.augment else 0.0
        zoom = uniform(g, -self.max_zoom, self.max_zoom) if self.augment else 0.0
        # Source crop with a margin that holds the whole motion; margin even, so the centre
        # frame samples pixel centres exactly.
        per_side = shift / 2 + (math.exp(abs(zoom) / 2) - 1) * max(h, wd) / 2 + 1
        margin = 2 * int(math.ceil(per_side))
        big = (h + margin, wd + margin)
        gray, up = resize_min_side(gray, big)
        H, W = gray.shape[-2:]
        top, left = random_crop_box(H, W, big, g if self.augment else None)
        src = gray[:, top: top + big[0], left: left + big[1]]
        flip = coin(g) if self.augment else False
        if flip:
            src = src.flip(-1)
        angle = uniform(g, 0.0, 2 * math.pi) if self.augment else 0.0
        c = w // 2
        tau = (torch.arange(w, dtype=torch.float32) - c) / max(w - 1, 1)  # [-1/2, 1/2] over the window
        s = torch.exp(zoom * tau)  # zoom factor per frame (1 at the centre)
        # Normalised coordinates (align_corners=False): the output spans size/big of the source.
        ax, ay = wd / big[1], h / big[0]
        tx = (shift * math.cos(angle) * tau) * 2 / big[1]
        ty = (shift * math.sin(angle) * tau) * 2 / big[0]
        # the affine grid of theta = [[ax / s, 0, tx], [0, ay / s, ty]] (F.affine_grid's), built
        # separably: a zoom and a pan have no shear, and the batched matmul took 8 ms a sample
        bx = (torch.arange(wd, dtype=torch.float32) * 2 + 1) / wd - 1  # pixel centres in [-1, 1]
        by = (torch.arange(h, dtype=torch.float32) * 2 + 1) / h - 1
        grid = torch.empty(w, h, wd, 2)
        grid[..., 0] = ((ax / s)[:, None] * bx + tx[:, None])[:, None, :]
        grid[..., 1] = ((ay / s)[:, None] * by + ty[:, None])[:, :, None]
        seq = F.grid_sample(src[None].expand(w, -1, -1, -1), grid, mode="bilinear", padding_mode="border",
                            align_corners=False)[:, 0]
        seq[c] = src[0, margin // 2: margin // 2 + h, margin // 2: margin // 2 + wd]  # exact centre frame
        meta = {"source": str(self.images[index % len(self.images)]), "shift": round(shift, 4), "zoom": round(zoom, 5),
                "direction": round(angle, 5), "crop": [top, left, big[0], big[1]], "flip": flip, "resize": round(float(up), 6)}
        return seq.clamp(0, 1), meta

    def _video_sequence(self, index: int, w: int, g: torch.Generator) -> tuple[torch.Tensor, dict]:
        """``[w, h, w_]`` gray frames spanning ``span`` original frames around frame ``k``."""
        ci, k = self.samples[index % len(self.samples)]
        clip = self.clips[ci]
        span = uniform(g, 0.0, self.max_span) if self.augment else self.max_span / 2
        c = w // 2
        offsets = span * (torch.arange(w, dtype=torch.float64) - c) / max(w - 1, 1)
        # Keep the window inside the clip: move its centre (always an original frame) inwards.
        k = min(max(k, int(math.ceil(-offsets.min().item()))), clip.length - 1 - int(math.ceil(offsets.max().item())))
        t = k + offsets
        first, last = max(int(math.floor(t.min().item())), 0), min(int(math.ceil(t.max().item())), clip.length - 1)
        raw = (read_video_frames(clip.source, first, last + 1) if clip.is_video
               else torch.stack([load_image(p) for p in clip.frames[first: last + 1]]))
        raw = rgb_to_gray(raw.float())  # [R,1,H,W]
        raw, up = resize_min_side(raw, self.size)
        H, W = raw.shape[-2:]
        top, left = random_crop_box(H, W, self.size, g if self.augment else None)
        raw = raw[:, 0, top: top + self.size[0], left: left + self.size[1]]
        flip = coin(g) if self.augment else False
        if flip:
            raw = raw.flip(-1)
        seq = lerp_frames(raw, (t - first).clamp(0, raw.shape[0] - 1))
        seq[c] = raw[k - first]  # the target is an original frame
        frame_name = clip.frames[k].name if clip.frames is not None else k
        meta = {"source": str(clip.source), "frame": frame_name, "frame_index": k, "span": round(span, 4),
                "crop": [top, left, self.size[0], self.size[1]], "flip": flip, "resize": round(float(up), 6)}
        return seq.clamp(0, 1), meta

    # -------------------------------------------------------------------------- sample
    def __getitem__(self, index: int) -> dict[str, Any]:
        index = self._check_index(index)
        g = self.generator(index)
        w = _draw(self.window, g)
        seq, meta = (self._still_sequence if self.source == "images" else self._video_sequence)(index, w, g)
        rate = math.exp(uniform(g, math.log(self.rate[0]), math.log(self.rate[1])))
        v_th = uniform(g, *self.v_th)
        gain = rate * v_th
        spikes = integrate_and_fire(seq[None], v_th=v_th, gain=gain, init="random", generator=g)[0]  # [w,h,w_]
        c = w // 2
        n_tfp = w
        if self.tfp_window is None and self.tfi == 0:
            pseudo = (spikes.float().mean(0) / rate).clamp(0, 1)
        else:
            if self.tfp_window is not None:
                n_tfp = _draw(self.tfp_window, g)
                n_tfp = widened_window(min(n_tfp, w), w, mean_rate(spikes), self.tfp_min_spikes)
            pseudo = blended_pseudo_frame(spikes, n_tfp, 1.0 / rate, self.tfi)
        start = c - self.frames // 2
        clean = seq[c].clamp(0, 1)
        meta.update({"index": index, "epoch": self.epoch, "seed": self.seed, "sample_seed": self.sample_seed(index),
                     "window": w, "tfp_window": n_tfp, "tfi": self.tfi, "frames": self.frames, "rate": round(rate, 6), "v_th": v_th, "gain": gain,
                     "spikes": "if", "init": "random"})
        return {"clean": clean.expand(3, -1, -1).contiguous(), "blurry": pseudo.expand(3, -1, -1).contiguous(),
                "spikes": spikes[start: start + self.frames].to(torch.uint8).contiguous(), "meta": meta}
