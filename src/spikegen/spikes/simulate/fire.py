"""Integrate-and-fire spike simulation (paper eq. 1-2): :func:`integrate_and_fire`, on the CPU a
single-threaded numpy kernel, elsewhere in-place torch ops, with the sensor noise of
:class:`~spikegen.spikes.simulate.noise.SpikeNoise`.

:func:`integrate_and_fire` runs in named steps, one private function each: the input's layout,
its values, the initial charge, the charge per step, then one of the two loops (numpy on the
CPU without temporal noise, torch otherwise); the kernels come last.

Example:
    >>> import torch
    >>> from spikegen.spikes.simulate.fire import integrate_and_fire
    >>> s, state = integrate_and_fire(torch.full((4, 4), 0.5), steps=4, init="zero", return_state=True)
    >>> s[:, 0, 0].tolist(), float(state[0, 0])
    ([0, 1, 0, 1], 0.0)
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from spikegen.checks import per_sample, plain_number
from spikegen.errors import ShapeError
from spikegen.spikes import native
from spikegen.spikes.simulate._common import light_tensor
from spikegen.spikes.simulate.noise import SpikeNoise

__all__ = ["integrate_and_fire"]

_BAD_INTENSITY = "intensity must be finite and >= 0 (light cannot be negative)"
_GRAIN = 32768  # torch's intra-op parallel grain size (elements)
_IF_TILE = 1 << 16  # pixels per tile of the numpy kernel (its state and charge stay in L2)
_IF_CHECK = 1 << 18  # bytes of input frames checked by one reduction (they stay in L2)


def integrate_and_fire(
    intensity: Tensor,
    *,
    v_th: float | Tensor = 1.0,
    gain: float | Tensor = 1.0,
    steps: int | None = None,
    init: Literal["random", "zero"] | Tensor = "random",
    noise: SpikeNoise | None = None,
    generator: torch.Generator | None = None,
    return_state: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    r"""Simulate a spike camera by integrate-and-fire (paper eq. 1-2).

    Per pixel and step: ``A += gain * I_t``; a spike fires when ``A >= v_th`` and ``v_th`` is
    subtracted (the surplus is kept). At most one spike fires per step, so a pixel with
    ``gain * I >= v_th`` fires every step (and its surplus keeps growing). The long-run firing
    rate is ``min(gain * I / v_th, 1)``. With a :class:`SpikeNoise` the charge per step is
    ``gain * prnu * I_t + dark (+ temporal noise)``.

    Internally the accumulator is kept in units of ``v_th`` (``A / v_th``), in float32 (float64
    for float64 input), updated in place step by step.

    Args:
        intensity: a static image ``[B, 1, H, W]``, ``[1, H, W]`` or ``[H, W]`` with ``steps``,
            or a sequence of per-step intensities ``[B, T, H, W]`` or ``[T, H, W]`` with
            ``steps=None``. Values must be ``>= 0``.
        v_th: threshold, a float or a tensor of ``B`` per-sample values.
        gain: charge per step of intensity 1, a float or ``B`` per-sample values.
        steps: number of steps for a static image; ``None`` for a sequence.
        init: initial charge: ``"random"`` (``U[0, v_th)`` per pixel, like a real sensor),
            ``"zero"``, or a tensor broadcastable to ``[B, H, W]`` holding the *fill level*
            ``A / v_th`` (0 = empty, 1 = at threshold), e.g. the state returned by a previous
            call, to continue a stream exactly.
        noise: optional sensor noise model.
        generator: random source for ``init="random"`` and temporal noise.
        return_state: also return the final fill level ``A / v_th``, ``[B, H, W]``
            (``[H, W]`` unbatched), to pass as ``init`` of the next block (continuing a stream
            this way gives exactly the spikes of one long call).

    Returns:
        uint8 spikes ``[B, T, H, W]`` of {0, 1} (``[T, H, W]`` for unbatched input), and the
        state if asked.

    Example:
        >>> img = torch.full((1, 1, 4, 4), 0.25)
        >>> s = integrate_and_fire(img, steps=400, init="zero")
        >>> s.shape, float(s.float().mean())
        (torch.Size([1, 400, 4, 4]), 0.25)
    """
    if steps is None and noise is None:
        fast = _sequence_numpy(intensity, v_th, gain, init, generator, return_state)
        if fast is not None:
            return fast
    x, batched, static, t_total = _as_input(intensity, steps)
    b, h, w = x.shape[0], x.shape[2], x.shape[3]
    checked = _check_light(x, static)
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    dev = x.device
    v = per_sample(v_th, b, "v_th", device=dev, dtype=dtype, ndim=3, bound="> 0", flatten=True, detach=True)
    g = per_sample(gain, b, "gain", device=dev, dtype=dtype, ndim=3, bound=">= 0", flatten=True, detach=True)
    acc = _initial_charge(init, b, h, w, dev, dtype, generator)  # in units of v_th
    scale, offset, tstd = _charge_per_step(noise, g, v, h, w, dev, dtype)
    q_all = _static_charge(x, scale, offset, dtype) if static else None
    if dev.type == "cpu" and tstd == 0:
        # (a float32 / float64 sequence is checked by the kernel, group by group of frames)
        out = _fire_numpy(x, q_all, scale, offset, acc, t_total, dtype, v_th=v_th, gain=gain)
    else:
        if not checked:
            _check_light(x, static, defer=False)
        out = _fire_torch(x, q_all, scale, offset, tstd, v, acc, t_total, generator)
    if not batched:
        out = out[0]
    if return_state:
        return out, (acc if batched else acc[0])
    return out


# ---------------------------------------------------------------------------- the steps
def _sequence_numpy(
    intensity: object,
    v_th: object,
    gain: object,
    init: object,
    generator: torch.Generator | None,
    return_state: bool,
) -> Tensor | tuple[Tensor, Tensor] | None:
    """The common CPU case in numpy from end to end, or ``None`` when the call is not it.

    A float32 / float64 ``[T, H, W]`` or ``[B, T, H, W]`` sequence on the CPU (tensor or
    array), ``v_th`` and ``gain`` plain numbers, no noise: the same numbers as the general path
    (the same initial charge, the same float ops in the same order), without its other torch
    calls, each of which costs microseconds when a large frame loop has just run. Anything else
    goes the general way."""
    if isinstance(intensity, Tensor):
        if intensity.device.type != "cpu" or intensity.dtype not in (torch.float32, torch.float64):
            return None
        x_np = (intensity.detach() if intensity.requires_grad else intensity).numpy()
    elif isinstance(intensity, np.ndarray) and intensity.dtype in (np.float32, np.float64):
        x_np = intensity
    else:
        return None
    if x_np.ndim not in (3, 4) or plain_number(v_th, "> 0") is None or plain_number(gain, ">= 0") is None:
        return None
    x4 = np.ascontiguousarray(x_np if x_np.ndim == 4 else x_np[None])
    b, t_total, h, w = x4.shape
    npd = x4.dtype.type
    # (the torch calls side by side: after a large frame loop each one is slow the first time)
    out = np.empty((b, t_total, h, w), np.uint8)
    spikes = torch.from_numpy(out if x_np.ndim == 4 else out[0])
    first = _initial_state_np(init, b, h, w, npd)
    if first is None:
        dtype = torch.float64 if npd is np.float64 else torch.float32
        a, start = _initial_charge(init, b, h, w, torch.device("cpu"), dtype, generator).numpy(), None
    else:
        a, start = first
    state = torch.from_numpy(a if x_np.ndim == 4 else a[0]) if return_state else None
    if b * h * w and t_total:
        scale = npd(gain) / npd(v_th)  # the division of the general path (g / v)
        _if_sequence_np(x4.reshape(b, t_total, h * w), None if scale == 1 else scale, None,
                        a.reshape(b, h * w), out.view(np.bool_).reshape(b, t_total, h * w),
                        start=None if start is None else start.reshape(b, h * w))
    elif start is not None:
        a[...] = start
    return (spikes, state) if return_state else spikes


def _initial_state_np(
    init: object, b: int, h: int, w: int, npd: type
) -> tuple[np.ndarray, np.ndarray | None] | None:
    """:func:`_initial_charge` without a torch call for the cases that need none: ``"zero"``,
    or a float CPU tensor / array of shape ``[B, H, W]`` (``[H, W]`` when ``B == 1``); ``None``
    for anything else (a random start, broadcasting, a bad type).

    Returns ``(state, start)``: the fresh ``[B, H, W]`` state array of dtype ``npd``, and the
    caller's array when it already has that dtype (``start``, ``[B, H, W]``: the first step
    reads it instead of a copy, one pass over the frame fewer) or ``None`` when ``state``
    holds the initial charge."""
    if isinstance(init, str):
        return (np.zeros((b, h, w), npd), None) if init == "zero" else None
    if isinstance(init, Tensor):
        if init.device.type != "cpu" or not init.is_floating_point() or init.dtype == torch.float16:
            return None
        init = (init.detach() if init.requires_grad else init).numpy()
    elif not isinstance(init, np.ndarray) or init.dtype not in (np.float32, np.float64):
        return None
    if init.shape != (b, h, w) and not (b == 1 and init.shape == (h, w)):
        return None
    if init.dtype == npd:
        return np.empty((b, h, w), npd), init.reshape(b, h, w)
    return np.array(init, dtype=npd).reshape(b, h, w), None


def _as_input(intensity: Tensor, steps: int | None) -> tuple[Tensor, bool, bool, int]:
    """``intensity`` as ``[B, 1, H, W]`` (static, with ``steps``) or ``[B, T, H, W]`` (a
    sequence): ``(x, batched, static, number of steps)``."""
    x = light_tensor(intensity, "intensity")
    if steps is not None:
        if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps < 0:
            raise ShapeError(f"steps must be a non-negative int, got {steps!r}")
        if x.ndim == 2:
            x, batched = x[None, None], False
        elif x.ndim == 3 and x.shape[0] == 1:
            x, batched = x[None], False
        elif x.ndim == 4 and x.shape[1] == 1:
            batched = True
        else:
            raise ShapeError(
                "with steps=..., intensity must be a static gray image [B, 1, H, W], [1, H, W] "
                f"or [H, W], got shape {tuple(x.shape)} (convert RGB with "
                "spikegen.degrade.rgb_to_gray; pass a [B, T, H, W] sequence with steps=None)"
            )
        return x, batched, True, int(steps)
    if x.ndim == 3:
        x, batched = x[None], False
    elif x.ndim == 4:
        batched = True
    else:
        raise ShapeError(
            "with steps=None, intensity must be a sequence [B, T, H, W] or [T, H, W], got "
            f"shape {tuple(x.shape)} (for a static image pass steps=...)"
        )
    return x, batched, False, x.shape[1]


def _check_light(x: Tensor, static: bool, defer: bool = True) -> bool:
    """Raise unless ``x >= 0`` everywhere and finite; return whether it was checked.

    With ``defer`` a float32 / float64 sequence on the CPU is left unchecked (``False``): the
    numpy kernel checks it group by group of frames while they are in cache
    (:func:`_if_sequence_np`); a caller that takes the torch loop instead checks it with
    ``defer=False``."""
    if x.numel() > 0:
        if defer and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and not static:
            return False
        # min and max propagate NaN; -inf fails `lo >= 0`, +inf fails `hi < inf` (two SIMD
        # passes in numpy on the CPU: no bool mask, no torch threads)
        if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
            xn = x.detach().numpy()
            lo, hi = float(xn.min()), float(xn.max())
        else:
            lo_t, hi_t = torch.aminmax(x.detach().float() if not x.is_floating_point() else x.detach())
            lo, hi = float(lo_t), float(hi_t)
        if not (lo >= 0 and hi < float("inf")):
            raise ShapeError(_BAD_INTENSITY)
    return True


def _initial_charge(
    init: Literal["random", "zero"] | Tensor,
    b: int,
    h: int,
    w: int,
    dev: torch.device,
    dtype: torch.dtype,
    generator: torch.Generator | None,
) -> Tensor:
    """The initial fill level ``A / v_th``, a fresh contiguous ``[B, H, W]`` tensor (updated in
    place by the loops)."""
    if isinstance(init, str):
        if init == "random":
            gen_dev = generator.device if generator is not None else dev
            return torch.rand((b, h, w), generator=generator, device=gen_dev, dtype=dtype).to(dev)
        if init == "zero":
            if dev.type == "cpu":
                return torch.from_numpy(np.zeros((b, h, w), np.float64 if dtype == torch.float64 else np.float32))
            return torch.zeros((b, h, w), device=dev, dtype=dtype)
        raise ShapeError(f"init must be 'random', 'zero' or a tensor, got {init!r}")
    if not isinstance(init, (Tensor, np.ndarray)):
        raise ShapeError(f"init must be 'random', 'zero' or a tensor, got {type(init).__name__}")
    a0 = light_tensor(init, "init").to(device=dev, dtype=dtype)
    if a0.ndim == 4 and a0.shape[1] == 1:
        a0 = a0[:, 0]
    if dev.type == "cpu" and (tuple(a0.shape) == (b, h, w) or (b == 1 and tuple(a0.shape) == (h, w))):
        # a numpy copy: a large torch op would wake torch's worker threads, whose spinning
        # then competes with the single-threaded loop on a busy machine
        npd = np.float64 if dtype == torch.float64 else np.float32
        return torch.from_numpy(np.array(a0.detach().reshape(b, h, w).numpy(), dtype=npd))
    try:
        a0 = torch.broadcast_to(a0, (b, h, w))
    except RuntimeError:
        raise ShapeError(
            f"init must broadcast to [B, H, W] = {[b, h, w]}, got shape {tuple(init.shape)}"
        ) from None
    return a0.clone().contiguous()


def _charge_per_step(
    noise: SpikeNoise | None,
    g: Tensor,
    v: Tensor,
    h: int,
    w: int,
    dev: torch.device,
    dtype: torch.dtype,
) -> tuple[Tensor, Tensor | None, float]:
    """The charge per step in units of ``v_th``, ``q = scale * I + offset`` (``scale = g * prnu
    / v``, ``offset = dark / v`` or ``None``), and the temporal noise std (in units of charge)."""
    if noise is None:
        return g / v, None, 0.0
    if not isinstance(noise, SpikeNoise):
        raise ShapeError(f"noise must be a SpikeNoise or None, got {type(noise).__name__}")
    prnu, dark = noise.maps(h, w, device=dev, dtype=dtype)
    return g * prnu / v, dark / v, noise.temporal_std  # scale [B, H, W]


def _static_charge(x: Tensor, scale: Tensor, offset: Tensor | None, dtype: torch.dtype) -> Tensor:
    """The charge per step ``[B, H, W]`` of a static image ``x [B, 1, H, W]``."""
    if x.device.type == "cpu" and x.dtype == dtype:  # numpy: the same float ops, no torch threads
        q_np = x.detach()[:, 0].numpy() * scale.numpy()
        if offset is not None:
            q_np = q_np + offset.numpy()
        return torch.from_numpy(np.ascontiguousarray(q_np))
    q_all = x[:, 0].to(dtype) * scale
    if offset is not None:
        q_all = q_all + offset
    return q_all


def _fire_numpy(
    x: Tensor,
    q_all: Tensor | None,
    scale: Tensor,
    offset: Tensor | None,
    acc: Tensor,
    t_total: int,
    dtype: torch.dtype,
    *,
    v_th: float | Tensor,
    gain: float | Tensor,
) -> Tensor:
    """The CPU loop without temporal noise (:func:`_if_numpy`): the uint8 spikes
    ``[B, T, H, W]``; ``acc`` is updated in place. NaN, infinite and negative values of a
    sequence raise here."""
    b, _, h, w = x.shape
    # numpy allocates large arrays on transparent huge pages: half the page-fault cost
    out = torch.from_numpy(np.empty((b, t_total, h, w), dtype=np.uint8))
    if offset is None and isinstance(v_th, (int, float)) and isinstance(gain, (int, float)):
        npd = np.float64 if dtype == torch.float64 else np.float32
        unit = bool(npd(gain) / npd(v_th) == 1)  # the same division as g / v
    else:
        unit = offset is None and bool((scale == 1).all())
    _if_numpy(x, q_all is not None, q_all, scale, offset, unit, acc, out, dtype)
    return out


def _fire_torch(
    x: Tensor,
    q_all: Tensor | None,
    scale: Tensor,
    offset: Tensor | None,
    tstd: float,
    v: Tensor,
    acc: Tensor,
    t_total: int,
    generator: torch.Generator | None,
) -> Tensor:
    """The torch loop (off the CPU, or with temporal noise): the uint8 spikes ``[B, T, H, W]``;
    ``acc`` is updated in place. ``q_all`` is the static charge (``None`` for a sequence)."""
    b, _, h, w = x.shape
    dev, dtype = acc.device, acc.dtype
    static = q_all is not None
    out = torch.empty((b, t_total, h, w), dtype=torch.uint8, device=dev)
    tstd_v = (tstd / v) if tstd > 0 else None
    fast = tstd == 0 and b * h * w > 0 and t_total > 0 and _stays_below_two(x, q_all, scale, offset, acc)

    # On CPU the frame is processed in tiles of rows small enough that each op runs on one
    # thread (below torch's parallel grain) and stays in cache, all steps per tile: per-step
    # thread synchronisation made the loop up to 10x slower on a busy machine. Temporal noise
    # is drawn frame by frame (so a stream split in blocks draws the same numbers): no tiles.
    tiles = _row_tiles(b, h, w, dev) if tstd == 0 else [slice(0, h)]
    for sl in tiles:
        a = acc[:, sl].contiguous()
        o = out[:, :, sl]
        if static:
            q = q_all[:, sl].contiguous()
        else:
            q = torch.empty_like(a)
            sc = scale[:, sl].contiguous() if scale.shape[1] == h else scale
            off = offset[:, sl].contiguous() if offset is not None else None
        fired = torch.empty_like(a) if not fast else None
        buf = torch.empty_like(a) if tstd > 0 else None
        for t in range(t_total):
            if not static:
                torch.mul(x[:, t, sl], sc, out=q)
                if off is not None:
                    q.add_(off)
            a.add_(q)
            if fast:
                o[:, t].copy_(a)
                a.frac_()
                continue
            if buf is not None:
                if generator is None or generator.device == dev:
                    torch.randn(buf.shape, generator=generator, out=buf)
                else:
                    buf.copy_(torch.randn(buf.shape, generator=generator,
                                          device=generator.device, dtype=dtype))
                a.addcmul_(buf, tstd_v)
            # fired = 1 where a >= 1 (floor(a) >= 1), at most one spike per step
            torch.floor(a, out=fired).clamp_(0.0, 1.0)
            a.sub_(fired)
            o[:, t].copy_(fired)
        acc[:, sl] = a
    return out


def _stays_below_two(
    x: Tensor, q_all: Tensor | None, scale: Tensor, offset: Tensor | None, acc: Tensor
) -> bool:
    """Whether the accumulator provably stays in [0, 2) without noise: then the spike is the
    integer part of the accumulator (a float -> uint8 copy truncates) and the new accumulator
    its fractional part -- three in-place ops per step instead of five."""
    lo_a, hi_a = torch.aminmax(acc)
    if q_all is not None:
        q_hi = float(q_all.amax())
    else:
        q_hi = float(x.amax()) * float(scale.amax())
        q_hi = q_hi + (float(offset.amax()) if offset is not None else 0.0)
        q_hi = q_hi if q_hi <= 1 - 1e-6 else 1.0  # margin for the rounding of x * scale
    return float(lo_a) >= 0 and float(hi_a) < 1 and q_hi < 1


# ---------------------------------------------------------------------------- kernels
def _row_tiles(b: int, h: int, w: int, device: torch.device) -> list[slice]:
    """Row ranges with at most ``_GRAIN`` elements over the batch (one tile off the CPU)."""
    if device.type != "cpu" or b * h * w <= _GRAIN:
        return [slice(0, h)]
    rows = max(1, _GRAIN // max(1, b * w))
    return [slice(r, min(r + rows, h)) for r in range(0, h, rows)]


def _float_bits(dtype: np.dtype) -> tuple[type, int]:
    """The unsigned integer type of float32 / float64's bits and the bits of +inf: the bit test
    of the input check. An integer maximum over the bits is below those of +inf when every
    value is finite and ``>= 0``, and never when one is NaN, infinite or negative (sign bit
    set). ``-0.0``, a valid 0, fails it too (its sign bit), so a failed test goes to
    :func:`_check_values`, which decides."""
    return (np.uint32, 0x7F800000) if dtype == np.float32 else (np.uint64, 0x7FF0000000000000)


def _check_values(x: np.ndarray) -> None:
    """Raise unless every value of ``x`` is finite and ``>= 0``: the float comparison behind
    the bit test of :func:`_float_bits` (which ``-0.0`` fails too)."""
    if not (float(np.minimum.reduce(x)) >= 0 and float(np.maximum.reduce(x)) < math.inf):
        raise ShapeError(_BAD_INTENSITY)


def _if_numpy(
    x: Tensor,
    static: bool,
    q_all: Tensor | None,
    scale: Tensor,
    offset: Tensor | None,
    unit: bool,
    acc: Tensor,
    out: Tensor,
    dtype: torch.dtype,
) -> None:
    """Integrate-and-fire on the CPU with numpy (single-threaded, a few microseconds per op).

    Per step ``a += q``; ``fired = a >= 1`` written straight into the uint8 output;
    ``a -= fired`` (the 0/1 plane as float: numpy's masked ops are slow on random masks; a
    sequence subtracts the bool plane, which numpy casts in small buffers): the same float
    arithmetic as the torch loop (``floor(a).clamp(0, 1)`` subtracted), so the spikes and the
    state are bit-identical.
    Static scenes are processed in tiles of rows, all steps per tile, so the state and the
    charge stay in cache; a sequence is processed frame by frame (its frames stream once).
    ``acc [B, H, W]`` is updated in place; ``out [B, T, H, W]`` is filled.
    """
    b, t_total, h, w = out.shape
    if b * h * w == 0 or t_total == 0:
        return
    npd = np.float64 if dtype == torch.float64 else np.float32
    one = npd(1.0)
    a_all = acc.numpy()
    o_all = out.numpy().view(np.bool_)
    # (numpy's masked subtract is only fast on 1-D operands: every op below works on
    # flattened contiguous rows of one sample)
    if static:
        q_np = q_all.detach().contiguous().numpy()
        lib = native.lib
        if lib is not None and a_all.flags.c_contiguous:  # one fused loop, tiles of pixels
            lib.integrate_and_fire(q_np.reshape(b, h * w), a_all.reshape(b, h * w),
                                   o_all.reshape(b, t_total, h * w), None, None, None,
                                   b, t_total, h * w, True, False)
            return
        rows = max(1, min(h, _IF_TILE // max(1, w)))
        for i in range(b):
            for r in range(0, h, rows):
                r1 = min(h, r + rows)
                a = a_all[i, r:r1].reshape(-1).copy()
                q = q_np[i, r:r1].reshape(-1).copy()
                tmp = np.empty_like(a)
                o = o_all[i, :, r:r1].reshape(t_total, -1)
                for t in range(t_total):
                    np.add(a, q, out=a)
                    f = o[t]
                    np.greater_equal(a, one, out=f)
                    np.copyto(tmp, f)
                    np.subtract(a, tmp, out=a)
                a_all[i, r:r1] = a.reshape(r1 - r, w)
        return
    xs = x.detach()
    if xs.dtype != dtype:
        xs = xs.to(dtype)
    x_np = xs.contiguous().numpy().reshape(b, t_total, h * w)
    sc = off = None
    if not unit:
        sc = np.ascontiguousarray(np.broadcast_to(scale.detach().numpy(), (b, h, w))).reshape(b, -1)
        if offset is not None:
            off = np.ascontiguousarray(np.broadcast_to(offset.detach().numpy(), (b, h, w)))
            off = off.reshape(b, -1)
    _if_sequence_np(x_np, sc, off, a_all.reshape(b, h * w), o_all.reshape(b, t_total, h * w))


def _if_sequence_np(
    x_np: np.ndarray,
    sc: np.ndarray | np.floating | None,
    off: np.ndarray | None,
    a2: np.ndarray,
    o2: np.ndarray,
    start: np.ndarray | None = None,
) -> None:
    """The numpy loop of a sequence: ``x_np [B, T, P]`` float32 / float64 intensities (``P``
    pixels), charge ``q = x * sc (+ off)`` per step (``sc`` ``[B, P]`` or one scalar;
    ``None``: ``q = x``), the state ``a2 [B, P]`` updated in place, the spikes written into the
    bool view ``o2 [B, T, P]``. Checks the input (the bit test of :func:`_float_bits`). With ``start``
    (``[B, P]``, the dtype of ``a2``) the first step starts from it instead of ``a2``, whose
    values are then never read.

    Per step three passes over the frame (add, compare, subtract the 0/1 plane), against the
    reference's four; the loop body is plain local calls over row views, since at 250 x 400 a
    step takes some 60 us and each extra Python call costs about 1 us."""
    b, t_total, p = x_np.shape
    lib = native.lib
    if lib is not None:  # the same ops fused in one pass a step, over tiles of pixels
        ok = lib.integrate_and_fire(
            x_np, a2, o2, None if start is None else np.ascontiguousarray(start),
            None if sc is None else (float(sc) if np.ndim(sc) == 0 else sc), off, b, t_total, p)
        if not ok:
            raise ShapeError(_BAD_INTENSITY)
        return
    one = x_np.dtype.type(1.0)
    bits_t, inf = _float_bits(x_np.dtype)
    bits = x_np.view(bits_t)
    q = np.empty(p, x_np.dtype) if sc is not None else None
    # The input is checked group by group of frames just before the group is integrated (so it
    # is read from cache), a group of about _IF_CHECK bytes: one reduction for a short, small
    # sequence, one per frame for large frames (see _float_bits for the bit test).
    group = max(1, _IF_CHECK // max(1, x_np.itemsize * p))
    add, ge, sub, mul, top = np.add, np.greater_equal, np.subtract, np.multiply, np.maximum.reduce
    for i in range(b):
        a, xi, oi = a2[i], x_np[i], o2[i]
        src = a if start is None else start[i]  # what the next step adds to
        s = None if sc is None else (sc if np.ndim(sc) == 0 else sc[i])
        o = None if off is None else off[i]
        bi, due = bits[i], 0  # the next frame to check from
        for t, (xt, f) in enumerate(zip(xi, oi)):  # one flat loop: views come from the zip
            if t == due:  # the check, inlined (a call costs microseconds cold)
                if top(bi[t] if group == 1 else bi[t : t + group].reshape(-1)) >= inf:
                    _check_values(xi[t : t + group].reshape(-1))
                due += group
            if s is not None:
                mul(xt, s, out=q)
                if o is not None:
                    add(q, o, out=q)
                xt = q
            add(src, xt, out=a)
            src = a
            ge(a, one, out=f)
            sub(a, f, out=a, casting="unsafe")  # the 0/1 plane cast in L1-sized buffers
