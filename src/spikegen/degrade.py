"""Image degradations used to synthesise training pairs: gray conversion, colour fading, motion
blur (the SpikeGen pretraining kernel bank) and video blur (the GOPRO protocol).

All functions are batched torch operations that follow the device and dtype of their input.
Images are float tensors in ``[0, 1]`` shaped ``[B, C, H, W]`` or ``[C, H, W]``.

Example:
    >>> import torch
    >>> from spikegen.degrade import motion_blur, rgb_to_gray
    >>> img = torch.rand(2, 3, 64, 64)
    >>> blurred = motion_blur(img, generator=torch.Generator().manual_seed(0))
    >>> blurred.shape, rgb_to_gray(img).shape
    (torch.Size([2, 3, 64, 64]), torch.Size([2, 1, 64, 64]))
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spikegen.checks import check_image, per_sample, positive_int
from spikegen.errors import ShapeError

__all__ = [
    "GRAY_WEIGHTS",
    "MotionBlur",
    "color_fade",
    "gaussian_blur",
    "gaussian_kernel1d",
    "motion_blur",
    "motion_kernel",
    "motion_kernel_bank",
    "rgb_to_gray",
    "take_chroma",
    "video_blur",
]

#: ITU-R BT.601 luma weights used by the paper and the official release (R, G, B).
GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)


# ----------------------------------------------------------------------------- gray / fade
def rgb_to_gray(img: Tensor) -> Tensor:
    r"""Convert RGB to gray with the BT.601 weights ``0.2989 R + 0.5870 G + 0.1140 B``.

    Args:
        img: ``[B, 3, H, W]`` or ``[3, H, W]`` float image. A 1-channel image is returned as is.

    Returns:
        ``[B, 1, H, W]`` or ``[1, H, W]``, same dtype and device.

    Example:
        >>> rgb_to_gray(torch.ones(3, 4, 4)).shape
        torch.Size([1, 4, 4])
    """
    x, batched = check_image(img)
    c = x.shape[1]
    if c == 1:
        return img
    if c != 3:
        raise ShapeError(f"img must have 1 or 3 channels, got {c} (shape {tuple(img.shape)})")
    w = torch.tensor(GRAY_WEIGHTS, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    gray = (x * w).sum(dim=1, keepdim=True)
    return gray if batched else gray[0]


def take_chroma(luma_from: Tensor, chroma_from: Tensor) -> Tensor:
    r"""Luminance of one image with the chroma of another (BT.601 YCbCr), clamped to [0, 1].

    ``Y`` is :func:`rgb_to_gray` (BT.601 luma); Cb and Cr are the scaled ``B - Y`` and
    ``R - Y``. Keeping ``chroma_from``'s Cb/Cr and ``luma_from``'s Y is, because the
    transform is linear, ``chroma_from + (Y(luma_from) - Y(chroma_from))`` on every channel.
    This is how deblurring returns full colour: blur destroys fine luminance detail far more
    than chroma, which cameras store at reduced resolution anyway.

    Args:
        luma_from: ``[B, 3, H, W]`` / ``[3, H, W]`` (or 1-channel) image giving the luminance.
        chroma_from: image of the same size giving the colour (3 channels).

    Returns:
        ``[B, 3, H, W]`` / ``[3, H, W]`` in [0, 1], dtype of ``chroma_from``.

    Shape:
        - luma_from: ``(B, 1|3, H, W)`` or ``(1|3, H, W)``
        - chroma_from: ``(B, 3, H, W)`` or ``(3, H, W)``
        - output: ``(B, 3, H, W)`` or ``(3, H, W)``, as ``chroma_from``

    Example:
        >>> red = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1).expand(3, 2, 2)
        >>> out = take_chroma(torch.full((3, 2, 2), 0.2989), red)
        >>> [round(v, 3) for v in out[:, 0, 0].tolist()]  # same colour, same luma
        [1.0, 0.0, 0.0]
    """
    check_image(chroma_from, "chroma_from")
    check_image(luma_from, "luma_from")
    if chroma_from.shape[-3] != 3:
        raise ShapeError(f"chroma_from must have 3 channels, got shape {tuple(chroma_from.shape)}")
    if luma_from.shape[-2:] != chroma_from.shape[-2:] or luma_from.ndim != chroma_from.ndim:
        raise ShapeError(f"luma_from {tuple(luma_from.shape)} and chroma_from {tuple(chroma_from.shape)} differ in size")
    c = chroma_from.float()
    y = rgb_to_gray(luma_from.float())
    # the weights sum to 0.9999: dividing by the sum keeps the luma exact
    return (c + (y - rgb_to_gray(c)) / sum(GRAY_WEIGHTS)).clamp(0.0, 1.0).to(chroma_from.dtype)


def color_fade(img: Tensor, g: float | Tensor) -> Tensor:
    r"""Fade colour towards gray: ``(1 - g) * img + g * gray(img)`` (paper section 3.2).

    This is the training target of SpikeGen for a modality ratio ``g`` (``g = 0``: the image,
    ``g = 1``: its gray version repeated over the 3 channels).

    Args:
        img: ``[B, 3, H, W]`` or ``[3, H, W]`` (a 1-channel image is returned unchanged).
        g: a float in ``[0, 1]`` or a tensor of ``B`` per-sample values.

    Returns:
        Tensor of the same shape as ``img``.

    Example:
        >>> x = torch.rand(2, 3, 8, 8)
        >>> torch.allclose(color_fade(x, 0.0), x)
        True
        >>> color_fade(x, torch.tensor([0.0, 1.0])).shape
        torch.Size([2, 3, 8, 8])
    """
    x, batched = check_image(img)
    gv = per_sample(g, x.shape[0], "g", device=x.device, dtype=x.dtype)
    if bool(((gv < 0) | (gv > 1)).any()):
        raise ShapeError(f"g must lie in [0, 1], got {g}")
    gray = rgb_to_gray(x)
    out = torch.lerp(x, gray.expand_as(x), gv)
    return out if batched else out[0]


# ----------------------------------------------------------------------------- motion blur
def _uniform(n: int, low: float, high: float, generator: torch.Generator | None, device) -> Tensor:
    gen_device = generator.device if generator is not None else device
    u = torch.rand(n, generator=generator, device=gen_device, dtype=torch.float64)
    return (low + (high - low) * u).to(device)


def motion_kernel_bank(
    n: int = 8,
    size: int = 40,
    *,
    angle: float | None = None,
    spread: float = 30.0,
    falloff: float | tuple[float, float] = (0.75, 2.25),
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    r"""A bank of ``n`` linear motion-blur kernels around one main direction.

    Each kernel is a straight line through the kernel centre at angle ``main + U(-spread, spread)``
    degrees (``main`` is ``angle``, or ``U(0, 360)`` when ``None``). Weights along the line fall
    off as a Gaussian of the distance to the centre with standard deviation ``s * r`` (``r`` the
    line's half-length, ``s ~ U(*falloff)`` per kernel, or ``falloff`` when a float), and are
    splatted bilinearly onto the grid. Each kernel sums to 1.

    The centre is pixel ``size // 2`` on both axes and the line spans ``(size - 1) // 2`` pixels
    either side of it, so odd sizes use the full grid and even sizes (the paper's 40) leave the
    first row and column empty; the kernel is point-symmetric about its centre pixel and
    :func:`motion_blur` does not shift the image.

    Args:
        n: number of kernels.
        size: kernel side in pixels.
        angle: main angle in degrees (counter-clockwise from the +x axis), random when ``None``.
        spread: maximum deviation of each kernel from the main angle, in degrees.
        falloff: Gaussian width relative to the half-length, a value or a ``(low, high)`` range.
        generator: random source for the angles and widths.
        device: device of the result (default: the generator's device, else CPU).
        dtype: floating dtype of the result.

    Returns:
        ``[n, size, size]`` tensor, each kernel summing to 1.

    Example:
        >>> bank = motion_kernel_bank(8, 40, generator=torch.Generator().manual_seed(0))
        >>> bank.shape, torch.allclose(bank.sum(dim=(1, 2)), torch.ones(8))
        (torch.Size([8, 40, 40]), True)
    """
    positive_int(n, "n (number of kernels)")
    positive_int(size, "size (kernel side)")
    if device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    device = torch.device(device)
    main = _uniform(1, 0.0, 360.0, generator, device) if angle is None else torch.tensor(
        [float(angle)], dtype=torch.float64, device=device
    )
    angles = main + _uniform(n, -float(spread), float(spread), generator, device)
    if isinstance(falloff, Sequence):
        lo, hi = (float(v) for v in falloff)
        rel = _uniform(n, lo, hi, generator, device)
    else:
        rel = torch.full((n,), float(falloff), dtype=torch.float64, device=device)
    if bool((rel <= 0).any()):
        raise ShapeError(f"falloff must be positive, got {falloff}")

    c = size // 2
    r = (size - 1) // 2
    if r == 0:
        k = torch.zeros(n, size, size, dtype=dtype, device=device)
        k[:, c, c] = 1.0
        return k
    # dense samples along the line (8 per pixel) and bilinear splatting
    u = torch.linspace(-r, r, 8 * 2 * r + 1, dtype=torch.float64, device=device)  # [S]
    theta = torch.deg2rad(angles).view(n, 1)
    x = c + u.view(1, -1) * torch.cos(theta)  # [n, S]
    y = c - u.view(1, -1) * torch.sin(theta)  # image rows grow downwards
    w = torch.exp(-(u.view(1, -1) ** 2) / (2.0 * (rel.view(n, 1) * r) ** 2)).expand(n, -1)
    x0, y0 = torch.floor(x), torch.floor(y)
    fx, fy = x - x0, y - y0
    x0, y0 = x0.long(), y0.long()
    flat = torch.zeros(n, size * size, dtype=torch.float64, device=device)
    for dy, dx, wt in (
        (0, 0, (1 - fy) * (1 - fx)),
        (0, 1, (1 - fy) * fx),
        (1, 0, fy * (1 - fx)),
        (1, 1, fy * fx),
    ):
        yy, xx = y0 + dy, x0 + dx
        valid = (yy >= 0) & (yy < size) & (xx >= 0) & (xx < size)
        idx = (yy.clamp(0, size - 1) * size + xx.clamp(0, size - 1)).long()
        flat.scatter_add_(1, idx, torch.where(valid, w * wt, torch.zeros_like(wt)))
    flat = flat / flat.sum(dim=1, keepdim=True)
    return flat.view(n, size, size).to(dtype)


def motion_kernel(
    n: int = 8,
    size: int = 40,
    *,
    angle: float | None = None,
    spread: float = 30.0,
    weights: tuple[float, float] = (0.8, 1.2),
    falloff: float | tuple[float, float] = (0.75, 2.25),
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    r"""One pretraining blur kernel: the weighted average of a :func:`motion_kernel_bank`.

    The bank's kernels are averaged with weights ``U(*weights)`` and the result is renormalised to
    sum to 1 (the official release divides by the number of kernels instead, which scales the
    image brightness by the mean weight; we keep brightness).

    Returns:
        ``[size, size]`` tensor summing to 1.

    Example:
        >>> k = motion_kernel(generator=torch.Generator().manual_seed(0))
        >>> k.shape, round(float(k.sum()), 5)
        (torch.Size([40, 40]), 1.0)
    """
    bank = motion_kernel_bank(
        n, size, angle=angle, spread=spread, falloff=falloff, generator=generator,
        device=device, dtype=torch.float64,
    )
    wts = _uniform(n, float(weights[0]), float(weights[1]), generator, bank.device)
    k = (bank * wts.view(n, 1, 1)).sum(0) / wts.sum()
    return k.to(dtype)


#: Kernels with at least this many taps are applied by FFT (smaller ones directly).
FFT_MIN_TAPS = 64


def _pad2d(x: Tensor, left: int, right: int, top: int, bottom: int) -> Tensor:
    """Reflect padding (``numpy`` 'reflect'); falls back to 'replicate' on images too small."""
    h, w = x.shape[-2:]
    mode = "reflect" if max(top, bottom) < h and max(left, right) < w else "replicate"
    return F.pad(x, (left, right, top, bottom), mode=mode)


def _filter2d(x: Tensor, kernels: Tensor) -> Tensor:
    """Convolve ``x [B, C, H, W]`` with one kernel per sample ``[B, kh, kw]`` (true convolution,
    kernel centre at ``(kh // 2, kw // 2)``, reflect borders); output has the input's size."""
    b, c, h, w = x.shape
    kh, kw = kernels.shape[-2:]
    cy, cx = kh // 2, kw // 2
    xp = _pad2d(x, kw - 1 - cx, cx, kh - 1 - cy, cy)
    if kh * kw >= FFT_MIN_TAPS:
        # FFT convolution: the padded image circularly convolved with the zero-padded kernel
        # equals the direct one on the valid part (no index wraps there). 40x40 kernels on a
        # 128x128 crop: ~7x faster than F.conv2d, equal to ~1e-6.
        p_, q_ = xp.shape[-2:]
        work = xp.float() if xp.dtype not in (torch.float32, torch.float64) else xp
        spec = torch.fft.rfft2(work) * torch.fft.rfft2(kernels.to(work.dtype), s=(p_, q_))[:, None]
        full = torch.fft.irfft2(spec, s=(p_, q_))
        return full[..., kh - 1:kh - 1 + h, kw - 1:kw - 1 + w].to(x.dtype).contiguous()
    weight = kernels.flip(-1, -2).to(x.dtype).repeat_interleave(c, dim=0).unsqueeze(1)
    out = F.conv2d(xp.reshape(1, b * c, *xp.shape[-2:]), weight, groups=b * c)
    return out.view(b, c, h, w)


def motion_blur(
    img: Tensor,
    *,
    kernels: int | Tensor = 8,
    size: int = 40,
    angle: float | None = None,
    spread: float = 30.0,
    generator: torch.Generator | None = None,
    return_kernel: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    r"""Blur images with the SpikeGen pretraining motion kernels (DESIGN.md section 2).

    Each sample gets its own :func:`motion_kernel` (``kernels`` bank kernels of ``size`` pixels,
    a random main angle, ``+-spread`` degrees per kernel, weights ``U(0.8, 1.2)``), applied to
    every channel as a true convolution with reflect borders ('replicate' when the image is
    smaller than the kernel). The kernel sums to 1, so the mean of a constant image is kept.

    Args:
        img: ``[B, C, H, W]`` or ``[C, H, W]`` float image.
        kernels: number of bank kernels per blur, or explicit kernels: ``[kh, kw]`` (shared) or
            ``[B, kh, kw]`` (one per sample).
        size: kernel side when ``kernels`` is a number.
        angle: fixed main angle in degrees for every sample (random per sample when ``None``).
        spread: per-kernel angle deviation in degrees.
        generator: random source (the kernels are drawn on the generator's device, then moved).
        return_kernel: also return the kernels used, ``[B, kh, kw]`` (``[kh, kw]`` unbatched).

    Returns:
        The blurred image (same shape, dtype and device), and the kernels if asked.

    Example:
        >>> x = torch.rand(2, 3, 64, 64)
        >>> y, k = motion_blur(x, generator=torch.Generator().manual_seed(0), return_kernel=True)
        >>> y.shape, k.shape
        (torch.Size([2, 3, 64, 64]), torch.Size([2, 40, 40]))
    """
    x, batched = check_image(img)
    b = x.shape[0]
    if isinstance(kernels, Tensor):
        k = kernels
        if k.ndim == 2:
            k = k.unsqueeze(0).expand(b, -1, -1)
        if k.ndim != 3 or k.shape[0] != b:
            raise ShapeError(
                f"kernels must be [kh, kw] or [B={b}, kh, kw], got shape {tuple(kernels.shape)}"
            )
        k = k.to(device=x.device, dtype=x.dtype)
    else:
        k = torch.stack(
            [
                motion_kernel(kernels, size, angle=angle, spread=spread, generator=generator,
                              dtype=x.dtype)
                for _ in range(b)
            ]
        ).to(x.device)
    out = _filter2d(x, k)
    if not batched:
        out, k = out[0], k[0]
    return (out, k) if return_kernel else out


class MotionBlur(nn.Module):
    r"""Module form of :func:`motion_blur` (a fresh random kernel per sample and call).

    Example:
        >>> blur = MotionBlur(kernels=8, size=15)
        >>> blur(torch.rand(1, 3, 32, 32), generator=torch.Generator().manual_seed(0)).shape
        torch.Size([1, 3, 32, 32])
    """

    def __init__(
        self, kernels: int = 8, size: int = 40, angle: float | None = None, spread: float = 30.0
    ) -> None:
        super().__init__()
        self.kernels, self.size, self.angle, self.spread = kernels, size, angle, spread

    def forward(self, img: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return motion_blur(
            img, kernels=self.kernels, size=self.size, angle=self.angle, spread=self.spread,
            generator=generator,
        )

    def extra_repr(self) -> str:
        return f"kernels={self.kernels}, size={self.size}, angle={self.angle}, spread={self.spread}"


# ----------------------------------------------------------------------------- video blur
def video_blur(frames: Tensor, n: int, *, stride: int = 1) -> Tensor:
    r"""Average ``n`` consecutive sharp frames (GOPRO-style blur synthesis).

    Output ``i`` is the mean of frames ``i * stride ... i * stride + n - 1`` ("valid" windows
    only, so there are ``(T - n) // stride + 1`` outputs). Use ``stride=n`` for non-overlapping
    exposures. The sum is accumulated in float64.

    Args:
        frames: ``[T, C, H, W]`` or ``[B, T, C, H, W]`` float frames.
        n: number of frames per blurry frame (``1 <= n <= T``).
        stride: step between the first frames of consecutive windows.

    Returns:
        ``[T', C, H, W]`` or ``[B, T', C, H, W]`` with ``T' = (T - n) // stride + 1``.

    Example:
        >>> video_blur(torch.rand(10, 3, 8, 8), 4).shape
        torch.Size([7, 3, 8, 8])
        >>> video_blur(torch.rand(10, 3, 8, 8), 5, stride=5).shape
        torch.Size([2, 3, 8, 8])
    """
    if not isinstance(frames, Tensor) or not frames.is_floating_point():
        raise ShapeError("frames must be a floating-point torch.Tensor [T, C, H, W] or [B, T, C, H, W]")
    if frames.ndim not in (4, 5):
        raise ShapeError(
            f"frames must be [T, C, H, W] or [B, T, C, H, W], got shape {tuple(frames.shape)}"
        )
    tdim = frames.ndim - 4
    t = frames.shape[tdim]
    if not isinstance(n, int) or not 1 <= n <= t:
        raise ShapeError(f"n must be an int in [1, T={t}], got {n!r}")
    positive_int(stride, "stride")
    cs = torch.cumsum(frames.to(torch.float64), dim=tdim)
    zero = torch.zeros_like(cs.narrow(tdim, 0, 1))
    cs = torch.cat([zero, cs], dim=tdim)  # cs[k] = sum of frames < k
    starts = torch.arange(0, t - n + 1, stride, device=frames.device)
    out = (cs.index_select(tdim, starts + n) - cs.index_select(tdim, starts)) / n
    return out.to(frames.dtype)


def gaussian_kernel1d(sigma: float, size: int | None = None, *, device=None, dtype=torch.float32) -> Tensor:
    """Normalised 1-D Gaussian ``exp(-x^2 / (2 sigma^2))`` over ``size`` taps centred on the middle.

    The one Gaussian of spikegen (blur, the spike-alignment loss, SSIM, the 3DGS training SSIM).
    ``size`` defaults to ``2 * round(3 sigma) + 1`` (the official converter's); the taps are
    computed in float64 and cast to ``dtype`` at the end.

    Example:
        >>> [round(v, 4) for v in gaussian_kernel1d(1.0).tolist()]
        [0.0044, 0.054, 0.242, 0.3991, 0.242, 0.054, 0.0044]
        >>> gaussian_kernel1d(1.5, 11, dtype=torch.float64).sum().item()
        1.0
    """
    k = 2 * round(3 * sigma) + 1 if size is None else int(size)
    x = torch.arange(k, dtype=torch.float64, device=device) - (k - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).to(dtype)


def gaussian_blur(img: Tensor, sigma: float) -> Tensor:
    r"""Separable Gaussian blur, kernel ``2 * round(3 sigma) + 1``, reflect borders.

    Args:
        img: ``[B, C, H, W]`` or ``[C, H, W]``.
        sigma: standard deviation in pixels (``0`` returns the input).

    Example:
        >>> gaussian_blur(torch.ones(1, 1, 8, 8), 1.0).allclose(torch.ones(1, 1, 8, 8))
        True
    """
    x, batched = check_image(img)
    if sigma < 0 or not math.isfinite(sigma):
        raise ShapeError(f"sigma must be a finite value >= 0, got {sigma}")
    if sigma == 0:
        return img
    g = gaussian_kernel1d(sigma, device=x.device, dtype=x.dtype)
    k = g.numel()
    p = k // 2
    b, c, h, w = x.shape
    y = x.reshape(b * c, 1, h, w)
    y = F.conv2d(_pad2d(y, p, p, 0, 0), g.view(1, 1, 1, k))
    y = F.conv2d(_pad2d(y, 0, 0, p, p), g.view(1, 1, k, 1))
    y = y.view(b, c, h, w)
    return y if batched else y[0]
