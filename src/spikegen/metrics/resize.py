"""MATLAB-compatible ``imresize`` (bicubic, with antialiasing) in float64 numpy.

NIQE and BRISQUE were defined, and their reference numbers were produced, with MATLAB's
``imresize(im, 0.5)``: a bicubic kernel (Keys, a = -0.5) that is *stretched* by ``1/scale``
when shrinking (antialiasing), with mirror ("symmetric") handling of the borders. OpenCV's
``INTER_CUBIC``/``INTER_LINEAR``, PIL and ``torch.nn.functional.interpolate`` all differ from it
(no antialiasing, a = -0.75, or other borders), and the metrics move by tenths to whole
points when another resizer is used. This module reproduces MATLAB's ``contributions`` /
``imresizemex`` pair exactly as a pair of dense weight matrices, so the result equals MATLAB up
to floating-point summation order.

Example:
    >>> import numpy as np
    >>> img = np.arange(16, dtype=np.float64).reshape(4, 4)
    >>> imresize(img, 0.5).shape
    (2, 2)
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from spikegen.errors import ShapeError

__all__ = ["imresize", "resize_weights", "cubic"]


def cubic(x: np.ndarray) -> np.ndarray:
    """MATLAB's bicubic kernel (Keys, a = -0.5), support [-2, 2]."""
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * (
        (ax > 1) & (ax <= 2)
    )


@lru_cache(maxsize=64)
def _weights_cached(in_len: int, out_len: int, scale: float, antialiasing: bool) -> np.ndarray:
    kernel_width = 4.0
    if scale < 1 and antialiasing:
        # stretched kernel: h(x) = scale * cubic(scale * x), width / scale
        def h(x: np.ndarray) -> np.ndarray:
            return scale * cubic(scale * x)

        kernel_width = kernel_width / scale
    else:
        h = cubic
    # 1-based output coordinates mapped into the input, as in MATLAB's contributions()
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - kernel_width / 2.0)
    taps = int(math.ceil(kernel_width)) + 2
    idx = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]  # 1-based
    w = h(u[:, None] - idx)
    w = w / w.sum(axis=1, keepdims=True)
    # mirror out-of-range indices: aux = [1..n, n..1]
    aux = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    idx0 = aux[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    mat = np.zeros((out_len, in_len), dtype=np.float64)
    rows = np.repeat(np.arange(out_len), taps)
    np.add.at(mat, (rows, idx0.ravel()), w.ravel())
    mat.setflags(write=False)
    return mat


def resize_weights(in_len: int, out_len: int, scale: float | None = None, antialiasing: bool = True) -> np.ndarray:
    """The ``[out_len, in_len]`` matrix that resizes one axis as MATLAB's ``imresize`` does.

    Args:
        in_len: input length along the axis.
        out_len: output length along the axis.
        scale: the scale factor; defaults to ``out_len / in_len`` (MATLAB uses the factor the
            user gave when resizing by a factor, which differs for odd lengths).
        antialiasing: stretch the kernel when shrinking (MATLAB's default).

    Returns:
        A read-only float64 array ``W`` such that ``W @ x`` resizes a column ``x``.
    """
    if scale is None:
        scale = out_len / in_len
    return _weights_cached(int(in_len), int(out_len), float(scale), bool(antialiasing))


def imresize(
    img: np.ndarray,
    scale: float | None = None,
    *,
    output_shape: tuple[int, int] | None = None,
    antialiasing: bool = True,
) -> np.ndarray:
    """Resize like MATLAB's ``imresize(img, scale)`` with the default bicubic method.

    Args:
        img: ``[H, W]`` or ``[H, W, C]`` array (any real dtype; computed in float64).
        scale: the factor applied to both axes; the output size is ``ceil(scale * size)``.
        output_shape: ``(H_out, W_out)`` instead of ``scale``.
        antialiasing: MATLAB's ``'Antialiasing'`` option (default True when shrinking).

    Returns:
        float64 array ``[H_out, W_out]`` or ``[H_out, W_out, C]``. No rounding or clipping is
        applied (MATLAB rounds only when its input is an integer image).

    Raises:
        ShapeError: if ``img`` is not 2-D/3-D, or neither / both of ``scale`` and
            ``output_shape`` are given.

    Example:
        >>> import numpy as np
        >>> imresize(np.ones((96, 96)), 0.5).shape
        (48, 48)
    """
    arr = np.asarray(img)
    if arr.ndim not in (2, 3):
        raise ShapeError(f"imresize: img must be [H, W] or [H, W, C], got shape {tuple(arr.shape)}")
    if (scale is None) == (output_shape is None):
        raise ShapeError("imresize: give exactly one of scale and output_shape")
    h, w = arr.shape[:2]
    if scale is not None:
        if not scale > 0:
            raise ShapeError(f"imresize: scale must be > 0, got {scale}")
        out_h, out_w = int(math.ceil(scale * h)), int(math.ceil(scale * w))
        sh = sw = float(scale)
    else:
        out_h, out_w = (int(v) for v in output_shape)  # type: ignore[union-attr]
        if out_h < 1 or out_w < 1:
            raise ShapeError(f"imresize: output_shape must be positive, got {output_shape}")
        sh, sw = out_h / h, out_w / w
    x = arr.astype(np.float64, copy=False)
    wh = resize_weights(h, out_h, sh, antialiasing)
    ww = resize_weights(w, out_w, sw, antialiasing)
    # MATLAB resizes the axis with the smaller scale first; both orders are the same linear
    # map, and in float64 without intermediate rounding the result agrees to ~1e-13.
    if x.ndim == 2:
        return wh @ x @ ww.T
    return np.einsum("oh,hwc,pw->opc", wh, x, ww, optimize=True)
