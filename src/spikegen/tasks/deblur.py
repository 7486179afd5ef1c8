"""``spikegen deblur``: spike-guided deblurring of an RGB image or video with SpikeGen.

Inputs are a blurry RGB image (or a video file / folder of frames) and a spike file (``.dat``,
``.npz`` or ``.npy``) recorded over its exposure. The model mixes the two modalities with the
ratio ``gamma`` (0 = RGB only, 1 = spikes only; the paper's default 0.5).

Rules (also in ``docs/evaluation.md``):

* **Spike frames.** If the model's config names the number of spike frames it expects
  (``spike_frames``, the frames it was trained on), or ``frames=`` is given, the centred window
  of that many frames is used (a stream shorter than the model's count is used whole; one
  shorter than ``frames=`` is an error); otherwise all frames are passed as they are (the S3
  encoder takes any ``T``).
* **Sizes.** Spikes must have the RGB's height and width. A mismatch is an error naming both
  sizes unless ``resize_spikes=True`` (``--resize-spikes``): nearest-neighbour resizing of
  every spike frame (spikes stay binary). A ``.dat`` file has no header; its frame size
  defaults to the RGB size (``--height/--width`` override).
* **Video.** ``N`` RGB frames and a stream of ``T`` spike frames: the stream is split evenly,
  frame ``i`` gets spike frames ``floor(i T / N) ... floor((i + 1) T / N) - 1`` (its exposure),
  then the frame-count rule above applies to that window (a fixed count is centred on the
  window, clipped to the stream).
* **Colour.** ``colour="input"`` (the default): the output's luminance comes from SpikeGen
  and its chroma from the blurry RGB input (BT.601 YCbCr, :func:`spikegen.degrade.take_chroma`),
  a full-colour image; ``colour="model"``: the model's own colours, desaturated by ``gamma``
  (the paper's colour fading: its training target at ratio ``g`` is
  ``(1 - g) I + g gray(I)``). Mean images get the same treatment; the std map is the model's.
* **Samples.** With ``samples = K > 1`` the model draws K samples per input: ``OUT`` is the
  first sample, ``OUT_mean`` the per-pixel mean and ``OUT_std`` the uncertainty map: the
  per-pixel standard deviation over the K samples, averaged over R, G, B, stored as
  ``2 x std`` (a [0, 1] image's std is at most 0.5, so the map never clips; a pixel value of
  v/255 means std = v / 510).

Example:
    >>> from spikegen.tasks.deblur import deblur_image
    >>> from spikegen.models import SpikeGen, SpikeGenConfig
    >>> import torch
    >>> model = SpikeGen.from_config(SpikeGenConfig.preset("tiny")).eval()
    >>> rgb = torch.rand(3, 32, 32); spikes = (torch.rand(8, 32, 32) < 0.3).to(torch.uint8)
    >>> res = deblur_image(model, rgb, spikes, samples=2, steps=3, generator=torch.Generator().manual_seed(0))
    >>> res.image.shape, res.std.shape
    (torch.Size([3, 32, 32]), torch.Size([3, 32, 32]))
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from spikegen.data.motion import blended_pseudo_frame, tfi_weight
from spikegen.data.video import video_frame_count
from spikegen.defaults import DEFAULT_GAIN
from spikegen.degrade import take_chroma
from spikegen.errors import OutputExistsError, ShapeError, SpikeFileError, SpikeGenError
from spikegen.image import IMAGE_SUFFIXES, VIDEO_SUFFIXES, VideoWriter, is_image_file, load_image, save_image
from spikegen.models.tiling import sample_tiled, tile_boxes
from spikegen.outputs import claim_output, is_occupied
from spikegen.spikes.io import open_spikes
from spikegen.spikes.reconstruct.playback import mean_rate, widened_window
from spikegen.spikes.simulate import iter_frames
from spikegen.weights import load_default_model

__all__ = [
    "DeblurResult",
    "deblur_file",
    "deblur_image",
    "exposure_windows",
    "expected_spike_frames",
    "match_spike_size",
    "select_frames",
    "side_paths",
    "std_to_image",
]


@dataclass
class DeblurResult:
    """What :func:`deblur_image` returns (shapes follow the input: ``[3,H,W]`` or ``[B,3,H,W]``).

    Attributes:
        image: the restored image (the first sample when ``samples > 1``).
        mean: per-pixel mean over the samples, or ``None`` when ``samples == 1``.
        std: per-pixel standard deviation over the samples (uncertainty), or ``None``.
        frames: ``(start, stop)`` of the spike frames used, within the given stream.
    """

    image: torch.Tensor
    mean: torch.Tensor | None = None
    std: torch.Tensor | None = None
    frames: tuple[int, int] | None = None


def expected_spike_frames(model: Any) -> int | None:
    """The number of spike frames the model's config asks for, or ``None`` (any ``T``)."""
    cfg = getattr(model, "config", None)
    for name in ("spike_frames", "num_spike_frames"):
        v = getattr(cfg, name, None)
        if isinstance(v, int) and v > 0:
            return v
    return None


def pseudo_window(model: Any, window: int, spikes: Any = None) -> int:
    """Frames of SpikeGen's TFP pseudo-frame within a caller's ``window`` of spikes: the model's
    ``config.tfp_window`` when it names one, widened on sparse streams until the mean pixel of
    ``spikes`` (``[T, H, W]``, the window's frames) has fired ``config.tfp_min_spikes`` times,
    at most ``window``; else ``window``.

    Example:
        >>> from types import SimpleNamespace
        >>> m = SimpleNamespace(config=SimpleNamespace(tfp_window=21, tfp_min_spikes=2.0))
        >>> pseudo_window(m, 61, torch.full((61, 4, 4), 0.2)), pseudo_window(m, 61, torch.full((61, 4, 4), 0.05))
        (21, 40)
    """
    cfg = getattr(model, "config", None)
    v = getattr(cfg, "tfp_window", 0)
    if not (isinstance(v, int) and v > 0):
        return int(window)
    need = float(getattr(cfg, "tfp_min_spikes", 0.0) or 0.0)
    rate = mean_rate(torch.as_tensor(spikes)) if need > 0 and spikes is not None else 1.0
    return widened_window(int(v), int(window), rate, need if spikes is not None else 0.0)


def pseudo_frame(model: Any, spikes: Any, center: int, scale: float = 1.0) -> tuple[torch.Tensor, int]:
    """SpikeGen's "TFP & Spike" pseudo-frame (the RGB branch's input) at frame ``center`` of a
    caller's window ``spikes [T, H, W]``, and the TFP window it used.

    The TFP over :func:`pseudo_window` frames, x ``scale``; for weights whose config names
    ``pseudo_tfi`` (a weight ``b`` or ``"ivw"``), blended with the TFI (V_th 1, the reciprocal
    inter-spike interval) searched over the whole window (``T // 2`` frames each side, as the
    TFI row of ``spikegen eval reconstruct``): the TFP is smooth but blurs motion and is coarse
    on sparse pixels, the TFI sharp but coarse on dense pixels, and their errors are largely
    independent (:func:`spikegen.data.motion.blended_pseudo_frame`; docs/model.md, "The
    pseudo-frame of reconstruction"). Clamped to [0, 1], ``[1, H, W]`` float32.

    Example:
        >>> from types import SimpleNamespace
        >>> m = SimpleNamespace(config=SimpleNamespace(tfp_window=0, pseudo_tfi=0.5))
        >>> s = torch.zeros(9, 1, 1, dtype=torch.uint8); s[::2] = 1  # rate 5/9, interval 2
        >>> frame, n = pseudo_frame(m, s, 4)
        >>> round(float(frame), 4), n    # (5/9 + 1/2) / 2
        (0.5278, 9)
    """
    try:
        b = tfi_weight(getattr(getattr(model, "config", None), "pseudo_tfi", 0.0) or 0.0)
    except ValueError as exc:
        raise SpikeGenError(f"the weights' config: pseudo_tfi: {exc}") from None
    s = torch.as_tensor(spikes)
    n = pseudo_window(model, s.shape[0], s)
    return blended_pseudo_frame(s, n, float(scale), b, center)[None], n


def select_frames(num_frames: int, n: int | None, *, lo: int = 0, hi: int | None = None) -> tuple[int, int]:
    """``(start, stop)`` of ``n`` frames centred on the window ``[lo, hi)`` of a ``num_frames`` stream.

    ``n = None`` returns the window itself. Otherwise, with ``c = lo + (hi - lo) // 2`` the
    window's middle frame, the frames are ``c - n // 2 ... c - n // 2 + n - 1`` (the window
    convention of :func:`spikegen.spikes.tfp`), shifted to lie inside the stream (which must
    have at least ``n`` frames).

    Example:
        >>> select_frames(100, 8)
        (46, 54)
        >>> select_frames(100, 8, lo=0, hi=4)
        (0, 8)
        >>> select_frames(100, None, lo=10, hi=20)
        (10, 20)
    """
    hi = num_frames if hi is None else hi
    if n is None:
        return lo, hi
    if n < 1:
        raise SpikeGenError(f"frames must be >= 1, got {n}")
    if n > num_frames:
        raise SpikeFileError(f"{n} spike frames are needed but the stream has only {num_frames}")
    centre = lo + (hi - lo) // 2  # the middle frame (the later one of an even window)
    start = min(max(centre - n // 2, 0), num_frames - n)  # as tfp: frames c - n//2 ... c - n//2 + n - 1
    return start, start + n


def match_spike_size(spikes: torch.Tensor, size: tuple[int, int], *, resize: bool = False,
                     where: str = "spikes", rgb_where: str = "rgb") -> torch.Tensor:
    """Check that spikes ``[..., T, H, W]`` have the RGB's ``size``; resize (nearest) if asked.

    Raises:
        ShapeError: the sizes differ and ``resize`` is False (the message names both sizes).

    Example:
        >>> s = torch.ones(4, 10, 20, dtype=torch.uint8)
        >>> match_spike_size(s, (20, 40), resize=True).shape
        torch.Size([4, 20, 40])
    """
    h, w = spikes.shape[-2:]
    if (h, w) == tuple(size):
        return spikes
    if not resize:
        raise ShapeError(f"{where}: spike frames are {h}x{w} but {rgb_where} is {size[0]}x{size[1]} (height x width); "
                         "give spikes of the same size, or pass --resize-spikes (resize_spikes=True) to resize them "
                         "(nearest neighbour)")
    lead = spikes.shape[:-2]
    flat = spikes.reshape(-1, 1, h, w).to(torch.uint8)
    out = F.interpolate(flat.float(), size=tuple(size), mode="nearest").to(torch.uint8)
    return out.reshape(*lead, *size)


def std_to_image(std: torch.Tensor) -> torch.Tensor:
    """Uncertainty map for display: ``2 x`` the channel-mean std, ``[..., 1, H, W]`` in [0, 1]."""
    return (2.0 * std.float().mean(dim=-3, keepdim=True)).clamp(0, 1)


COLOURS = ("input", "model")


def check_colour(colour: str) -> str:
    """``colour`` if it is ``"input"`` or ``"model"``, else a :class:`SpikeGenError`."""
    if colour not in COLOURS:
        raise SpikeGenError(f"--colour must be input (luminance from SpikeGen, chroma from the blurry RGB) "
                            f"or model (the model's own, faded colours), got {colour!r}")
    return colour


def deblur_image(model: Any, rgb: torch.Tensor, spikes: torch.Tensor, *, gamma: float = 0.5, samples: int = 1,
                 steps: int | None = None, temperature: float | None = None, generator: torch.Generator | None = None,
                 frames: int | None = None, resize_spikes: bool = False, colour: str = "input",
                 tile: int | None = 512, progress: Any = None) -> DeblurResult:
    """Restore a blurry image (or batch) with SpikeGen, guided by its spike stream.

    Args:
        model: a :class:`spikegen.models.SpikeGen` (e.g. from
            :func:`spikegen.weights.load_default_model`).
        rgb: blurry image ``[3, H, W]`` or ``[B, 3, H, W]``, float in [0, 1].
        spikes: ``[T, H, W]`` or ``[B, T, H, W]`` of {0, 1} (any dtype).
        gamma: modality ratio in [0, 1] (0 = RGB only, 1 = spikes only).
        samples: number of samples K; above 1 the mean and the std (uncertainty) are returned.
        steps: diffusion steps (default: the model's ``sample_steps``).
        temperature: sampling temperature (default: the weights' ``sample_temperature``).
        generator: ``torch.Generator`` for reproducible samples.
        colour: ``"input"`` (default): SpikeGen's luminance with the blurry input's chroma
            (BT.601 YCbCr), full colour; ``"model"``: the model's own colours (faded by ``gamma``).
        frames: use the centred ``frames`` spike frames (default: the model's expected count,
            see :func:`expected_spike_frames`, else all).
        resize_spikes: resize spikes of another size to the RGB size (nearest); otherwise a
            size mismatch raises :class:`~spikegen.errors.ShapeError`.
        tile: images with a side above ``tile`` pixels are restored in overlapping tiles, and
            samples one at a time, so memory stays bounded (:func:`spikegen.models.tiling.sample_tiled`);
            ``None`` = the whole image and all samples in one call.
        progress: called with ``1`` after each tile and sample (for a progress bar).

    Returns:
        :class:`DeblurResult` (tensors on the CPU, float32, unbatched for unbatched input).

    Raises:
        ShapeError: bad shapes, sizes or ``gamma``; SpikeGenError: bad ``samples``.
    """
    if not isinstance(rgb, torch.Tensor) or rgb.ndim not in (3, 4) or rgb.shape[-3] not in (1, 3):
        raise ShapeError(f"rgb: expected [3,H,W] or [B,3,H,W], got {getattr(rgb, 'shape', type(rgb).__name__)}")
    if not isinstance(spikes, torch.Tensor) or spikes.ndim not in (3, 4):
        raise ShapeError(f"spikes: expected [T,H,W] or [B,T,H,W], got {getattr(spikes, 'shape', type(spikes).__name__)}")
    if int(samples) < 1:
        raise SpikeGenError(f"samples must be >= 1, got {samples}")
    if not 0.0 <= float(gamma) <= 1.0:
        raise ShapeError(f"gamma must lie in [0, 1] (0 = RGB only, 1 = spikes only), got {gamma}")
    check_colour(colour)
    batched = rgb.ndim == 4
    x = rgb if batched else rgb[None]
    s = spikes if spikes.ndim == 4 else spikes[None]
    if s.shape[0] != x.shape[0]:
        raise ShapeError(f"spikes: batch of {s.shape[0]} does not match rgb batch of {x.shape[0]}")
    s = match_spike_size(s, tuple(x.shape[-2:]), resize=resize_spikes)
    n = frames
    if n is None and expected_spike_frames(model) is not None:  # a shorter stream: all of it
        n = min(expected_spike_frames(model), s.shape[1])
    lo, hi = select_frames(s.shape[1], n)
    s = s[:, lo:hi]

    dev = getattr(model, "device", torch.device("cpu"))
    out = sample_tiled(model, x.to(dev, torch.float32), s.to(dev), num_samples=int(samples), tile=tile,
                       temperature=temperature, progress=progress, gamma=float(gamma), steps=steps,
                       generator=generator)  # [B, S, 3, H, W]
    if int(samples) == 1:
        img, mean, std = out[:, 0], None, None
    else:
        img, mean, std = out[:, 0], out.mean(dim=1), out.std(dim=1)
    if colour == "input" and x.shape[1] == 3:
        ref = x.float().cpu()
        img = take_chroma(img, ref)
        mean = take_chroma(mean, ref) if mean is not None else None
    if not batched:
        img = img[0]
        mean = mean[0] if mean is not None else None
        std = std[0] if std is not None else None
    return DeblurResult(img, mean, std, (lo, hi))


def exposure_windows(num_spike_frames: int, num_rgb_frames: int) -> list[tuple[int, int]]:
    """Split a stream of ``T`` spike frames evenly over ``N`` RGB frames (one exposure each).

    Frame ``i`` gets ``[floor(i T / N), floor((i + 1) T / N))``; windows tile the stream.

    Example:
        >>> exposure_windows(10, 3)
        [(0, 3), (3, 6), (6, 10)]
    """
    T, N = int(num_spike_frames), int(num_rgb_frames)
    if N < 1:
        raise SpikeFileError("the RGB video has no frames")
    if T < N:
        raise SpikeFileError(f"the spike stream has {T} frames, fewer than the {N} RGB frames; every frame needs "
                             "at least one spike frame of its exposure")
    return [((i * T) // N, ((i + 1) * T) // N) for i in range(N)]


def side_paths(output: str | os.PathLike) -> tuple[Path, Path]:
    """``(OUT_mean, OUT_std)`` beside ``output`` (same suffix; folders get ``_mean`` / ``_std``).

    Example:
        >>> [p.name for p in side_paths("out/x.png")]
        ['x_mean.png', 'x_std.png']
    """
    out = Path(output)
    return out.with_name(f"{out.stem}_mean{out.suffix}"), out.with_name(f"{out.stem}_std{out.suffix}")


def _tfp_path(output: Path) -> Path:
    return output.with_name(f"{output.stem}_tfp{output.suffix}")


def _count_frames(source: Path) -> int:
    if source.is_dir():
        n = sum(1 for p in source.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if n == 0:
            raise SpikeFileError(f"{source}: a folder without images ({', '.join(IMAGE_SUFFIXES)})")
        return n

    return video_frame_count(source)


def deblur_file(rgb: str | os.PathLike, spikes: str | os.PathLike, output: str | os.PathLike, *, model: Any = None,
                weights: str | os.PathLike | None = None, gamma: float = 0.5, samples: int = 1, steps: int | None = None,
                seed: int = 0, temperature: float | None = None, frames: int | None = None, resize_spikes: bool = False,
                colour: str = "input", tile: int | None = 512,
                tfp: bool = False, v_th: float = 1.0, gain: float | None = None, fps: float | None = None,
                overwrite: bool = False, progress: bool = True, height: int | None = None, width: int | None = None,
                flip: bool | None = None, raw_width: int | None = None, partial: str = "error",
                start: int | str | None = None, end: int | str | None = None,
                fps_camera: float | None = None) -> list[Path]:
    """Deblur an image file or a video (file or frame folder) guided by a spike file.

    Args:
        rgb: a blurry image, a video file (``.mp4`` ...) or a folder of frames (sorted naturally).
        spikes: ``.dat`` / ``.npz`` / ``.npy`` spike file covering the exposure (for a video: all
            frames, split evenly, see :func:`exposure_windows`).
        output: for an image, an image path (``.png``); for a video, ``.mp4`` or a folder of PNGs
            (``frame_000000.png`` ...). With ``samples > 1`` also ``OUT_mean`` and ``OUT_std``
            (see :func:`side_paths`; the std map is ``2 x std``, averaged over channels).
        model, weights: a loaded SpikeGen, or the weights folder to load (default: shipped).
        gamma, samples, steps, temperature, frames, resize_spikes, colour, tile: as :func:`deblur_image`
            (``temperature`` defaults to the weights' stored ``sample_temperature``).
        seed: seed of the sampling generator (one generator for the whole file).
        tfp: also write ``OUT_tfp`` (the classic spike-only reconstruction of the same window:
            firing rate x ``v_th / gain``, gray), for comparison.
        v_th, gain: the sensor's threshold and gain for ``tfp`` (gain default
            :data:`spikegen.data.DEFAULT_GAIN`, 0.6).
        fps: frame rate of an MP4 output (default: 30).
        overwrite: replace existing outputs (otherwise an existing output raises before any work).
        height, width, flip, raw_width, partial: ``.dat`` reading (height/width default to the
            RGB size); see :func:`spikegen.spikes.io.open_spikes`.
        start, end: use only spike frames ``start .. end - 1`` as the stream (the exposure of an
            image; split over a video's frames): frame indices or times with units (``"10ms"``,
            ``"0.5s"``), converted at ``fps_camera`` as :func:`spikegen.spikes.io.frame_range`
            (start rounded down, end up, end exclusive).
        fps_camera: the spike stream's frame rate (default: the file's ``fps`` metadata, else
            20 000 Hz).

    Returns:
        The written paths (``OUT`` first).

    Raises:
        SpikeFileError, ShapeError, OutputExistsError, CheckpointError (via ``SpikeGenError``).
    """
    rgb, spikes, output = Path(rgb), Path(spikes), Path(output)
    if not rgb.exists():
        raise SpikeFileError(f"--rgb {rgb}: no such file or folder")
    if not spikes.is_file():
        raise SpikeFileError(f"--spikes {spikes}: no such file")
    is_video = rgb.is_dir() or not is_image_file(rgb)
    if not is_video and output.suffix.lower() not in IMAGE_SUFFIXES:
        raise SpikeGenError(f"-o {output}: an image input is written as an image ({', '.join(IMAGE_SUFFIXES)})")
    if is_video and output.suffix.lower() in IMAGE_SUFFIXES:
        raise SpikeGenError(f"-o {output}: a video input is written as .mp4 or a folder of frames, not an image")
    if is_video and output.suffix.lower() in VIDEO_SUFFIXES and output.suffix.lower() != ".mp4":
        raise SpikeGenError(f"-o {output}: videos are written as .mp4 (or give a folder name for PNG frames)")
    if int(samples) < 1:
        raise SpikeGenError(f"--samples must be >= 1, got {samples}")
    check_colour(colour)
    outs = [output]
    if int(samples) > 1:
        outs += list(side_paths(output))
    if tfp:
        outs.append(_tfp_path(output))

    busy = [p for p in outs if is_occupied(p)]  # all checked before any folder is made
    if busy and not overwrite:
        raise OutputExistsError(f"{busy[0]}: exists; pass --overwrite to replace it")
    for p in outs:  # parent folders made now, before any work
        claim_output(p, overwrite=True, folder=is_video and p.suffix.lower() != ".mp4")

    gain = DEFAULT_GAIN if gain is None else float(gain)
    if tfp and (v_th <= 0 or gain <= 0):
        raise SpikeGenError(f"--vth and --gain must be > 0, got {v_th} and {gain}")

    # the RGB size decides the default .dat frame size
    if is_video:
        n_rgb = _count_frames(rgb)
        first = next(iter(iter_frames(rgb, gray=False, max_frames=1)))
        size = tuple(first.shape[-2:])
    else:
        image = load_image(rgb)
        size = tuple(image.shape[-2:])
    if spikes.suffix.lower() == ".dat":
        height = size[0] if height is None else height
        width = size[1] if width is None else width
    src = open_spikes(spikes, height=height, width=width, flip=flip, raw_width=raw_width, partial=partial, fps=fps_camera)
    t0, t1 = src.time_range(start, end, names=("--start", "--end"))
    if (t0, t1) != (0, src.num_frames):
        src = src.window(t0, t1)
    if (src.height, src.width) != size and not resize_spikes:
        raise ShapeError(f"{spikes}: spike frames are {src.height}x{src.width} but {rgb} is {size[0]}x{size[1]} "
                         "(height x width); pass --resize-spikes to resize the spikes (nearest neighbour)")
    if model is None:
        model = load_default_model(weights, task="deblur")
    n_fixed = frames
    if n_fixed is None and expected_spike_frames(model) is not None:  # a shorter stream: all of it
        n_fixed = min(expected_spike_frames(model), src.num_frames)
    g = torch.Generator().manual_seed(int(seed))

    def run(img: torch.Tensor, lo: int, hi: int) -> tuple[DeblurResult, torch.Tensor | None]:
        a, b = select_frames(src.num_frames, n_fixed, lo=lo, hi=hi)
        s = torch.from_numpy(src.read(a, b))
        s = match_spike_size(s, size, resize=resize_spikes, where=str(spikes), rgb_where=str(rgb))
        res = deblur_image(model, img, s, gamma=gamma, samples=samples, steps=steps, temperature=temperature,
                           generator=g, frames=None, colour=colour, tile=tile, progress=tick)
        res.frames = (a + t0, b + t0)
        ref = None
        if tfp:
            ref = (s.float().mean(0, keepdim=True) * (v_th / gain)).clamp(0, 1)
        return res, ref

    tick = None
    if not is_video:
        bar = None
        if progress:
            from tqdm.auto import tqdm

            n_tiles = len(tile_boxes(*size, tile=tile)) if tile else 1
            bar = tqdm(total=n_tiles * int(samples), desc=f"deblur {rgb.name}", unit="pass", dynamic_ncols=True)
            tick = bar.update
        try:
            res, ref = run(image, 0, src.num_frames)
        finally:
            if bar is not None:
                bar.close()

        written = [save_image(output, res.image, overwrite=True)]
        if res.std is not None:
            pm, ps = side_paths(output)
            written += [save_image(pm, res.mean, overwrite=True), save_image(ps, std_to_image(res.std), overwrite=True)]
        if ref is not None:
            written.append(save_image(_tfp_path(output), ref, overwrite=True))
        return written

    # --- video: frame by frame, bounded memory
    windows = exposure_windows(src.num_frames, n_rgb)
    sinks = [_FrameSink(output, fps or 30.0)]
    if int(samples) > 1:
        sinks += [_FrameSink(p, fps or 30.0) for p in side_paths(output)]
    if tfp:
        sinks.append(_FrameSink(_tfp_path(output), fps or 30.0))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_rgb, desc=f"deblur {rgb.name}", unit="frame", dynamic_ncols=True)
    ok = False
    try:
        for i, frame in enumerate(iter_frames(rgb, gray=False)):
            if i >= n_rgb:
                break
            res, ref = run(frame, *windows[i])
            sinks[0].write(res.image)
            k = 1
            if res.std is not None:
                sinks[1].write(res.mean)
                sinks[2].write(std_to_image(res.std))
                k = 3
            if ref is not None:
                sinks[k].write(ref)
            if bar is not None:
                bar.update(1)
        ok = True
    finally:
        for s_ in sinks:
            s_.close(ok)
        if bar is not None:
            bar.close()
    return [s_.path for s_ in sinks]


class _FrameSink:
    """Frames to an MP4 (``.mp4``) or to ``frame_%06d.png`` files in a folder."""

    def __init__(self, path: Path, fps: float):
        self.path = path
        self.index = 0
        self.video = None
        if path.suffix.lower() == ".mp4":
            self.video = VideoWriter(path, fps=fps, overwrite=True)
        else:
            path.mkdir(parents=True, exist_ok=True)

    def write(self, img: torch.Tensor) -> None:
        if self.video is not None:
            self.video.write(img)
        else:
            save_image(self.path / f"frame_{self.index:06d}.png", img, overwrite=True)
        self.index += 1

    def close(self, ok: bool) -> None:
        if self.video is not None:
            if ok:
                self.video.close()
            else:
                self.video.__exit__(RuntimeError, None, None)

