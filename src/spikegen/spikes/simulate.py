"""Spike-camera simulators: integrate-and-fire (with an optional sensor-noise model), the
SpikeGen photon-sampling converter, and video sources (frame folders and video files).

Everything is batched torch, follows the input's device, and draws random numbers only from
the ``torch.Generator`` you pass (so results are reproducible). See ``docs/simulation.md`` for
the models and the conventions chosen here.

Example:
    >>> import torch
    >>> from spikegen.spikes.simulate import integrate_and_fire, photon_sampling
    >>> g = torch.Generator().manual_seed(0)
    >>> img = torch.rand(2, 1, 32, 32)
    >>> integrate_and_fire(img, steps=100, generator=g).shape
    torch.Size([2, 100, 32, 32])
    >>> photon_sampling(torch.rand(2, 3, 32, 32), generator=g).shape
    torch.Size([2, 8, 32, 32])
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from spikegen.degrade import gaussian_blur, rgb_to_gray
from spikegen.errors import ShapeError, SpikeFileError
from spikegen.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES, iter_frames

__all__ = [
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "SpikeNoise",
    "integrate_and_fire",
    "interpolate_frames",
    "iter_frames",
    "iter_simulate_video",
    "load_frames",
    "photon_probability",
    "photon_sampling",
    "simulate_video",
]

# Statistics of the measured SpikeNeRF maps (250 x 400), used by SpikeNoise.parametric:
# relative std of the photo-response gain Nl, and the log-normal fit of the dark charge.
_PRNU_STD = 0.056
_DARK_MEDIAN = 4.5e-3
_DARK_LOG_STD = 0.46


# ============================================================================ noise model
@dataclass
class SpikeNoise:
    r"""Per-pixel sensor noise for :func:`integrate_and_fire`.

    Each step every pixel integrates the charge

    .. math:: q_t = \text{gain} \cdot \text{prnu} \cdot I_t + \text{dark} + \sigma \, \varepsilon_t,
              \qquad \varepsilon_t \sim \mathcal{N}(0, 1)

    in units where ``v_th = 1`` means "a pixel with ``gain * I = 1`` fires every step":

    * ``prnu``: fixed-pattern (photo-response non-uniformity) gain per pixel, mean about 1;
    * ``dark``: dark-current charge per step per pixel (hot pixels have large values);
    * ``temporal_std``: std ``sigma`` of a zero-mean Gaussian charge noise drawn every step
      (it keeps the mean rate; the accumulator may dip below 0).

    ``prnu`` and ``dark`` are ``[h, w]`` maps or scalars; maps are fitted to the image size by
    tiling (``fit="tile"``: crop when larger, repeat when smaller, so per-pixel statistics and
    hot-pixel density are kept) or by bilinear resizing (``fit="resize"``).

    Build one from the measured maps of a real camera with :meth:`from_maps`, or a synthetic
    camera with :meth:`parametric`.

    Example:
        >>> noise = SpikeNoise.parametric(64, 64, generator=torch.Generator().manual_seed(0))
        >>> prnu, dark = noise.maps(32, 48)
        >>> prnu.shape, dark.shape
        (torch.Size([32, 48]), torch.Size([32, 48]))
    """

    prnu: Tensor | float = 1.0
    dark: Tensor | float = 0.0
    temporal_std: float = 0.0
    fit: Literal["tile", "resize"] = "tile"
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("prnu", "dark"):
            v = getattr(self, name)
            if isinstance(v, np.ndarray):
                v = torch.from_numpy(np.ascontiguousarray(v))
                setattr(self, name, v)
            if isinstance(v, Tensor):
                if v.ndim != 2 or v.numel() == 0:
                    raise ShapeError(f"SpikeNoise.{name} must be a scalar or an [H, W] map, "
                                     f"got shape {tuple(v.shape)}")
                if not v.is_floating_point():
                    v = v.float()
                    setattr(self, name, v)
                if not bool(torch.isfinite(v).all()) or bool((v < 0).any()):
                    raise ShapeError(f"SpikeNoise.{name} must be finite and >= 0")
            elif not (math.isfinite(float(v)) and float(v) >= 0):
                raise ShapeError(f"SpikeNoise.{name} must be finite and >= 0, got {v}")
        if not (math.isfinite(self.temporal_std) and self.temporal_std >= 0):
            raise ShapeError(f"SpikeNoise.temporal_std must be >= 0, got {self.temporal_std}")
        if self.fit not in ("tile", "resize"):
            raise ShapeError(f"SpikeNoise.fit must be 'tile' or 'resize', got {self.fit!r}")

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_maps(
        cls,
        path: str | Path,
        *,
        normalize_gain: bool = True,
        temporal_std: float = 0.0,
        fit: Literal["tile", "resize"] = "tile",
    ) -> SpikeNoise:
        r"""Noise of a real camera from measured per-pixel maps (a ``.npz`` file).

        Accepts the SpikeNeRF maps (keys ``Nd``, ``Nl``, ``D_light``; BIT-Vision/SpikeNeRF
        ``data.npz``) or this class's own keys (``prnu``, ``dark``). SpikeNeRF models the noisy
        inter-spike interval as ``1/D' = Nl / D + Nd / (D_light (335 + Nd))``: a per-pixel gain
        ``Nl`` on the ideal rate plus a dark rate. We use it in charge space:
        ``prnu = Nl / mean(Nl)`` (``Nl`` itself with ``normalize_gain=False``, which also dims
        the image by about 0.64) and ``dark = Nd / (D_light (335 + Nd))`` charge per step
        (median about 0.0045; a few hot pixels reach 0.06 to 0.6).

        The file is never shipped with spikegen: pass the path of your copy.

        Example:
            >>> noise = SpikeNoise.from_maps("spikenerf_noise_maps.npz")  # doctest: +SKIP
        """
        p = Path(path)
        if not p.is_file():
            raise SpikeFileError(f"noise map file {p} does not exist")
        try:
            with np.load(p, allow_pickle=False) as d:
                data = {k: np.asarray(d[k], dtype=np.float64) for k in d.files}
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input error
            raise SpikeFileError(f"cannot read noise maps from {p}: {exc}") from None
        if {"Nd", "Nl", "D_light"} <= data.keys():
            nd, nl, dl = data["Nd"], data["Nl"], data["D_light"]
            if not (nd.shape == nl.shape == dl.shape and nd.ndim == 2):
                raise SpikeFileError(f"{p}: Nd, Nl and D_light must be [H, W] maps of one size, "
                                     f"got {nd.shape}, {nl.shape}, {dl.shape}")
            prnu = nl / nl.mean() if normalize_gain else nl
            dark = nd / (dl * (335.0 + nd))
        elif {"prnu", "dark"} <= data.keys():
            prnu, dark = data["prnu"], data["dark"]
        else:
            raise SpikeFileError(
                f"{p} holds keys {sorted(data)}; expected 'Nd', 'Nl', 'D_light' (SpikeNeRF maps) "
                "or 'prnu', 'dark'"
            )
        return cls(
            prnu=torch.from_numpy(prnu.astype(np.float32)),
            dark=torch.from_numpy(dark.astype(np.float32)),
            temporal_std=temporal_std,
            fit=fit,
        )

    @classmethod
    def parametric(
        cls,
        height: int = 250,
        width: int = 400,
        *,
        prnu_std: float = _PRNU_STD,
        dark_median: float = _DARK_MEDIAN,
        dark_log_std: float = _DARK_LOG_STD,
        temporal_std: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> SpikeNoise:
        r"""A synthetic camera: ``prnu ~ N(1, prnu_std)`` (clipped at 0) and a log-normal dark
        charge (``median * exp(dark_log_std * N(0, 1))``), drawn once for an ``height x width``
        sensor and tiled to any image size. The defaults are fitted to the measured SpikeNeRF
        maps (relative gain std 0.056, dark median 0.0045 per step, log-std 0.46).

        Example:
            >>> n = SpikeNoise.parametric(generator=torch.Generator().manual_seed(0))
            >>> round(float(n.prnu.mean()), 1)
            1.0
        """
        if height < 1 or width < 1:
            raise ShapeError(f"height and width must be positive, got {height}x{width}")
        dev = generator.device if generator is not None else torch.device("cpu")
        z = torch.randn(2, height, width, generator=generator, device=dev)
        prnu = (1.0 + prnu_std * z[0]).clamp_min(0.0)
        dark = dark_median * torch.exp(dark_log_std * z[1]) if dark_median > 0 else z[1] * 0
        return cls(prnu=prnu.cpu(), dark=dark.cpu(), temporal_std=temporal_std, fit="tile")

    # ------------------------------------------------------------------ use
    def _fit(self, m: Tensor, height: int, width: int) -> Tensor:
        h, w = m.shape
        if (h, w) == (height, width):
            return m
        if self.fit == "resize":
            return F.interpolate(m[None, None], size=(height, width), mode="bilinear",
                                 align_corners=False)[0, 0]
        reps = (math.ceil(height / h), math.ceil(width / w))
        return m.repeat(*reps)[:height, :width]

    def maps(
        self,
        height: int,
        width: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> tuple[Tensor, Tensor]:
        """The ``prnu`` and ``dark`` maps fitted to ``height x width`` (``[H, W]`` each)."""
        key = (height, width, str(device), dtype)
        if key not in self._cache:
            out = []
            for v in (self.prnu, self.dark):
                if isinstance(v, Tensor):
                    t = self._fit(v.to(torch.float32), height, width)
                else:
                    t = torch.full((height, width), float(v))
                out.append(t.to(device=device, dtype=dtype).contiguous())
            self._cache.clear()
            self._cache[key] = tuple(out)
        return self._cache[key]


# ============================================================================ integrate-and-fire
_GRAIN = 32768  # torch's intra-op parallel grain size (elements)


def _row_tiles(b: int, h: int, w: int, device: torch.device) -> list[slice]:
    """Row ranges with at most ``_GRAIN`` elements over the batch (one tile off the CPU)."""
    if device.type != "cpu" or b * h * w <= _GRAIN:
        return [slice(0, h)]
    rows = max(1, _GRAIN // max(1, b * w))
    return [slice(r, min(r + rows, h)) for r in range(0, h, rows)]


def _as_float_tensor(x: object, name: str) -> Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, Tensor):
        raise ShapeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ShapeError(
            f"{name} must be a floating-point tensor (light per step, e.g. an image in [0, 1]), "
            f"got dtype {x.dtype}; convert uint8 images with x.float() / 255"
        )
    return x


def _per_sample_value(v: float | Tensor, batch: int, name: str, device, dtype, *, positive: bool):
    if isinstance(v, (int, float)) and not isinstance(v, bool):  # fast path: no device checks
        fv = float(v)
        if math.isfinite(fv) and (fv > 0 if positive else fv >= 0):
            return torch.full((batch, 1, 1), fv, device=device, dtype=dtype)
    if isinstance(v, Tensor):
        t = v.detach().to(device=device, dtype=dtype).reshape(-1)
        if t.numel() == 1:
            t = t.expand(batch)
        if t.numel() != batch:
            raise ShapeError(
                f"{name} must be a float or a tensor of {batch} per-sample values, "
                f"got shape {tuple(v.shape)}"
            )
    else:
        t = torch.full((batch,), float(v), device=device, dtype=dtype)
    bad = ~torch.isfinite(t) | ((t <= 0) if positive else (t < 0))
    if bool(bad.any()):
        raise ShapeError(f"{name} must be finite and {'> 0' if positive else '>= 0'}, got {v}")
    return t.view(batch, 1, 1)


_BAD_INTENSITY = "intensity must be finite and >= 0 (light cannot be negative)"
_IF_TILE = 1 << 16  # pixels per tile of the numpy kernel (its state and charge stay in L2)


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
    ``a -= fired`` (as a float 0/1 plane: numpy's masked ops are slow on random masks): the
    same float arithmetic as the torch loop (``floor(a).clamp(0, 1)`` subtracted), so the
    spikes and the state are bit-identical.
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
    a2 = a_all.reshape(b, h * w)
    o2 = o_all.reshape(b, t_total, h * w)
    tmp = np.empty(h * w, npd)
    if not unit:
        sc = np.ascontiguousarray(np.broadcast_to(scale.detach().numpy(), (b, h, w))).reshape(b, -1)
        off = None
        if offset is not None:
            off = np.ascontiguousarray(np.broadcast_to(offset.detach().numpy(), (b, h, w)))
            off = off.reshape(b, -1)
        q = np.empty(h * w, npd)
    for t in range(t_total):
        for i in range(b):
            a = a2[i]
            xt = x_np[i, t]
            if not float(xt.min()) >= 0:  # NaN, -inf or negative (+inf: a non-finite state)
                raise ShapeError(_BAD_INTENSITY)
            if unit:
                np.add(a, xt, out=a)
            else:
                np.multiply(xt, sc[i], out=q)
                if off is not None:
                    np.add(q, off[i], out=q)
                np.add(a, q, out=a)
            f = o2[i, t]
            np.greater_equal(a, one, out=f)
            np.copyto(tmp, f)
            np.subtract(a, tmp, out=a)


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
    x = _as_float_tensor(intensity, "intensity")
    if steps is not None:
        if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps < 0:
            raise ShapeError(f"steps must be a non-negative int, got {steps!r}")
        steps = int(steps)
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
        static = True
        b, _, h, w = x.shape
        t_total = steps
    else:
        if x.ndim == 3:
            x, batched = x[None], False
        elif x.ndim == 4:
            batched = True
        else:
            raise ShapeError(
                "with steps=None, intensity must be a sequence [B, T, H, W] or [T, H, W], got "
                f"shape {tuple(x.shape)} (for a static image pass steps=...)"
            )
        static = False
        b, t_total, h, w = x.shape
    # One pass over the input: the minimum catches NaN, -inf and negative values. On the CPU
    # (numpy kernel below) +inf is caught after the loop, where it leaves a non-finite state.
    inf_checked = True
    if x.numel() > 0:
        if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and not static:
            # checked frame by frame by the numpy kernel (each frame while it is in cache)
            lo = 0.0
            inf_checked = False
        else:
            lo = float(x.amin())
            if not bool(torch.isfinite(x).all()):
                lo = float("nan")
        if not lo >= 0:
            raise ShapeError(_BAD_INTENSITY)

    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    dev = x.device
    v = _per_sample_value(v_th, b, "v_th", dev, dtype, positive=True)
    g = _per_sample_value(gain, b, "gain", dev, dtype, positive=False)

    # initial charge, in units of v_th
    if isinstance(init, str):
        if init == "random":
            gen_dev = generator.device if generator is not None else dev
            acc = torch.rand((b, h, w), generator=generator, device=gen_dev, dtype=dtype).to(dev)
        elif init == "zero":
            if dev.type == "cpu":
                acc = torch.from_numpy(np.zeros((b, h, w), np.float64 if dtype == torch.float64 else np.float32))
            else:
                acc = torch.zeros((b, h, w), device=dev, dtype=dtype)
        else:
            raise ShapeError(f"init must be 'random', 'zero' or a tensor, got {init!r}")
    elif isinstance(init, (Tensor, np.ndarray)):
        a0 = _as_float_tensor(init, "init").to(device=dev, dtype=dtype)
        if a0.ndim == 4 and a0.shape[1] == 1:
            a0 = a0[:, 0]
        if dev.type == "cpu" and (tuple(a0.shape) == (b, h, w) or (b == 1 and tuple(a0.shape) == (h, w))):
            # a numpy copy: a large torch op would wake torch's worker threads, whose spinning
            # then competes with the single-threaded loop below on a busy machine
            npd = np.float64 if dtype == torch.float64 else np.float32
            acc = torch.from_numpy(np.array(a0.detach().reshape(b, h, w).numpy(), dtype=npd))
        else:
            try:
                a0 = torch.broadcast_to(a0, (b, h, w))
            except RuntimeError:
                raise ShapeError(
                    f"init must broadcast to [B, H, W] = {[b, h, w]}, got shape {tuple(init.shape)}"
                ) from None
            acc = a0.clone().contiguous()
    else:
        raise ShapeError(f"init must be 'random', 'zero' or a tensor, got {type(init).__name__}")

    # charge per step, in units of v_th: q = (g * prnu * I + dark) / v
    if noise is not None:
        if not isinstance(noise, SpikeNoise):
            raise ShapeError(f"noise must be a SpikeNoise or None, got {type(noise).__name__}")
        prnu, dark = noise.maps(h, w, device=dev, dtype=dtype)
        scale = g * prnu / v  # [B, H, W]
        offset = dark / v
        tstd = noise.temporal_std
    else:
        scale, offset, tstd = g / v, None, 0.0

    if dev.type != "cpu" or tstd > 0:
        out = torch.empty((b, t_total, h, w), dtype=torch.uint8, device=dev)
    if static:
        if dev.type == "cpu" and x.dtype == dtype:  # numpy: the same float ops, no torch threads
            q_np = x.detach()[:, 0].numpy() * scale.numpy()
            if offset is not None:
                q_np = q_np + offset.numpy()
            q_all = torch.from_numpy(np.ascontiguousarray(q_np))
        else:
            q_all = x[:, 0].to(dtype) * scale
            if offset is not None:
                q_all = q_all + offset
    if dev.type == "cpu" and tstd == 0:
        # numpy allocates large arrays on transparent huge pages: half the page-fault cost
        out = torch.from_numpy(np.empty((b, t_total, h, w), dtype=np.uint8))
        if offset is None and isinstance(v_th, (int, float)) and isinstance(gain, (int, float)):
            npd = np.float64 if dtype == torch.float64 else np.float32
            unit = bool(npd(gain) / npd(v_th) == 1)  # the same division as g / v
        else:
            unit = offset is None and bool((scale == 1).all())
        _if_numpy(x, static, q_all if static else None, scale, offset, unit, acc, out, dtype)
        # NaN and -inf were caught frame by frame (by the minimum); +inf leaves +inf behind
        if not inf_checked and b * h * w and not float(acc.numpy().max()) < math.inf:
            if not bool(torch.isfinite(x).all()):
                raise ShapeError(_BAD_INTENSITY)
        if not batched:
            out = out[0]
        if return_state:
            return out, (acc if batched else acc[0])
        return out
    if not inf_checked and not bool(torch.isfinite(x).all()):
        raise ShapeError(_BAD_INTENSITY)
    tstd_v = (tstd / v) if tstd > 0 else None

    # Fast path when the accumulator provably stays in [0, 2): then the spike is the integer
    # part of the accumulator (a float -> uint8 copy truncates) and the new accumulator its
    # fractional part -- three in-place ops per step instead of five.
    fast = tstd == 0 and b * h * w > 0 and t_total > 0
    if fast:
        lo_a, hi_a = torch.aminmax(acc)
        if static:
            q_hi = float(q_all.amax())
        else:
            q_hi = float(x.amax()) * float(scale.amax())
            q_hi = q_hi + (float(offset.amax()) if offset is not None else 0.0)
            q_hi = q_hi if q_hi <= 1 - 1e-6 else 1.0  # margin for the rounding of x * scale
        fast = float(lo_a) >= 0 and float(hi_a) < 1 and q_hi < 1

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

    if not batched:
        out = out[0]
    if return_state:
        return out, (acc if batched else acc[0])
    return out


# ============================================================================ photon sampling
def photon_probability(rgb: Tensor, *, sigma: float = 1.0, gamma: float = 1.0) -> Tensor:
    r"""The photon-sampling intensity map before noise (differentiable).

    ``gray = 0.2989 R + 0.5870 G + 0.1140 B``, min-max normalised per sample (a constant image
    gives zeros), Gaussian smoothing (``sigma``, kernel ``2 * round(3 sigma) + 1``, reflect
    borders), then the power ``gamma``. Not yet normalised to sum 1.

    Args:
        rgb: ``[B, 3, H, W]``, ``[3, H, W]`` or 1-channel images in [0, 1].

    Returns:
        ``[B, 1, H, W]`` (``[1, H, W]`` unbatched), values in [0, 1].

    Example:
        >>> photon_probability(torch.rand(2, 3, 16, 16)).shape
        torch.Size([2, 1, 16, 16])
    """
    x = _as_float_tensor(rgb, "rgb")
    if x.ndim not in (3, 4) or x.shape[-3] not in (1, 3):
        raise ShapeError(
            f"rgb must be [B, 3, H, W], [3, H, W] or 1-channel, got shape {tuple(x.shape)}"
        )
    batched = x.ndim == 4
    x = x if batched else x[None]
    gray = rgb_to_gray(x)
    lo = gray.amin(dim=(1, 2, 3), keepdim=True)
    hi = gray.amax(dim=(1, 2, 3), keepdim=True)
    rng = hi - lo
    gray = torch.where(rng > 0, (gray - lo) / torch.where(rng > 0, rng, torch.ones_like(rng)),
                       torch.zeros_like(gray))
    if sigma > 0:
        gray = gaussian_blur(gray, sigma)
    if gamma != 1.0:
        gray = gray.clamp_min(0).pow(gamma)
    return gray if batched else gray[0]


def photon_sampling(
    rgb: Tensor,
    *,
    frames: int = 8,
    coverage: float = 0.1,
    sigma: float = 1.0,
    gamma: float = 1.0,
    noise: float = 0.1,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""The official SpikeGen pretraining converter (DESIGN.md section 2).

    :func:`photon_probability` (gray, min-max, Gaussian ``sigma``, power ``gamma``), plus
    ``U(0, noise)`` drawn per pixel and per frame, normalised to a probability map; then each
    frame draws ``round(coverage * H * W)`` pixel positions with replacement and sets them to 1.
    Because of collisions, the expected density is
    ``mean_i 1 - (1 - p_i) ** round(coverage * H * W)``, a little below ``coverage``.

    Args:
        rgb: ``[B, 3, H, W]`` / ``[3, H, W]`` (or 1-channel) images in [0, 1].
        frames: spike frames per image.
        coverage: draws per frame as a fraction of the pixels.
        sigma, gamma, noise: see above.
        generator: random source (noise and draws).

    Returns:
        uint8 ``[B, frames, H, W]`` of {0, 1} (``[frames, H, W]`` unbatched).

    Example:
        >>> s = photon_sampling(torch.rand(3, 64, 64), generator=torch.Generator().manual_seed(0))
        >>> s.shape, 0.08 < float(s.float().mean()) < 0.1
        (torch.Size([8, 64, 64]), True)
    """
    if not isinstance(frames, int) or frames < 1:
        raise ShapeError(f"frames must be a positive int, got {frames!r}")
    if not (0 <= coverage) or not math.isfinite(coverage):
        raise ShapeError(f"coverage must be a finite value >= 0, got {coverage}")
    if noise < 0:
        raise ShapeError(f"noise must be >= 0, got {noise}")
    base = photon_probability(rgb, sigma=sigma, gamma=gamma)
    batched = base.ndim == 4
    base = base if batched else base[None]
    b, _, h, w = base.shape
    dev = base.device
    n = int(round(coverage * h * w))
    out = torch.zeros((b * frames, h * w), dtype=torch.uint8, device=dev)
    if n > 0 and b > 0:
        p = base.detach().to(torch.float32).expand(b, frames, h, w).reshape(b * frames, h * w)
        if noise > 0:
            gen_dev = generator.device if generator is not None else dev
            u = torch.rand((b * frames, h * w), generator=generator, device=gen_dev).to(dev)
            p = p + noise * u
        s = p.sum(dim=1, keepdim=True)
        p = torch.where(s > 0, p / torch.where(s > 0, s, torch.ones_like(s)),
                        torch.full_like(p, 1.0 / (h * w)))
        if generator is not None and generator.device != dev:
            idx = torch.multinomial(p.to(generator.device), n, replacement=True,
                                    generator=generator).to(dev)
        else:
            idx = torch.multinomial(p, n, replacement=True, generator=generator)
        out.scatter_(1, idx, 1)
    out = out.view(b, frames, h, w)
    return out if batched else out[0]


# ============================================================================ video sources
def interpolate_frames(frames: Tensor, n: int) -> Tensor:
    r"""Temporal up-sampling by linear interpolation: ``n - 1`` frames between neighbours.

    Frame ``k * n + j`` of the result is ``lerp(f_k, f_{k+1}, j / n)``; the originals are kept,
    so ``T`` frames become ``(T - 1) * n + 1``.

    Args:
        frames: ``[T, ...]`` float tensor (e.g. ``[T, C, H, W]``).
        n: up-sampling factor (``1`` returns the input).

    Example:
        >>> f = torch.stack([torch.zeros(1, 2, 2), torch.ones(1, 2, 2)])
        >>> interpolate_frames(f, 4)[:, 0, 0, 0].tolist()
        [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    if not isinstance(frames, Tensor) or not frames.is_floating_point() or frames.ndim < 1:
        raise ShapeError("frames must be a floating-point tensor [T, ...]")
    if not isinstance(n, int) or n < 1:
        raise ShapeError(f"interpolation factor n must be a positive int, got {n!r}")
    t = frames.shape[0]
    if n == 1 or t < 2:
        return frames
    a, bnext = frames[:-1], frames[1:]
    wts = torch.arange(n, device=frames.device, dtype=frames.dtype) / n  # [n]
    wshape = (1, n) + (1,) * (frames.ndim - 1)
    mid = torch.lerp(a.unsqueeze(1), bnext.unsqueeze(1), wts.view(wshape))  # [T-1, n, ...]
    return torch.cat([mid.reshape((t - 1) * n, *frames.shape[1:]), frames[-1:]], dim=0)


def load_frames(
    source: str | Path,
    *,
    interp: int = 1,
    gray: bool = True,
    max_frames: int | None = None,
) -> Tensor:
    r"""Load a frame folder or a video file as float ``[T, 1, H, W]`` (``[T, 3, H, W]`` with
    ``gray=False``), optionally up-sampled in time by ``interp`` (see :func:`interpolate_frames`;
    ``max_frames`` counts source frames).

    Example:
        >>> frames = load_frames("shared/data/video/davis_tennis", interp=2)  # doctest: +SKIP
    """
    frames = list(iter_frames(source, gray=gray, max_frames=max_frames))
    if not frames:
        raise SpikeFileError(f"{source}: no frames")
    return interpolate_frames(torch.stack(frames), interp)


def iter_simulate_video(
    source: str | Path | Tensor,
    *,
    v_th: float = 1.0,
    gain: float = 1.0,
    interp: int = 1,
    init: Literal["random", "zero"] | Tensor = "random",
    noise: SpikeNoise | None = None,
    generator: torch.Generator | None = None,
    max_frames: int | None = None,
    block: int = 64,
) -> Iterator[Tensor]:
    r"""Integrate-and-fire over a video, streamed: yields uint8 spike blocks ``[t, H, W]``.

    Each (interpolated) frame is one time step; the frames are read, interpolated and simulated
    ``block`` steps at a time with the accumulator carried across blocks, so memory stays bounded
    and the concatenated blocks equal :func:`simulate_video` exactly.

    Args:
        source: a frame folder, a video file, or a float tensor ``[T, H, W]``, ``[T, 1, H, W]``
            or ``[T, 3, H, W]`` (RGB is converted to gray).
        v_th, gain, init, noise, generator: as in :func:`integrate_and_fire`.
        interp: temporal up-sampling factor (linear interpolation).
        max_frames: read at most this many source frames.
        block: steps per yielded block.

    Example:
        >>> for spikes in iter_simulate_video("clip.mp4", interp=4):  # doctest: +SKIP
        ...     print(spikes.shape)
    """
    if not isinstance(block, int) or block < 1:
        raise ShapeError(f"block must be a positive int, got {block!r}")
    if not isinstance(interp, int) or interp < 1:
        raise ShapeError(f"interp must be a positive int, got {interp!r}")
    if isinstance(source, Tensor):
        src = source if source.ndim == 4 else source.unsqueeze(1)
        if src.ndim != 4 or src.shape[1] not in (1, 3):
            raise ShapeError(f"a frame tensor must be [T, H, W], [T, 1, H, W] or [T, 3, H, W], "
                             f"got {tuple(source.shape)}")
        if src.shape[1] == 3:
            src = rgb_to_gray(_as_float_tensor(src, "frames"))
        frames_iter: Iterator[Tensor] = iter(src[:max_frames] if max_frames is not None else src)
    else:
        frames_iter = iter_frames(source, gray=True, max_frames=max_frames)

    state: Tensor | str = init
    pending: list[Tensor] = []
    prev: Tensor | None = None

    def run(steps: list[Tensor]) -> Tensor:
        nonlocal state
        seq = torch.stack(steps)[:, 0].unsqueeze(0)  # [1, t, H, W]
        spikes, st = integrate_and_fire(seq, v_th=v_th, gain=gain, init=state, noise=noise,
                                        generator=generator, return_state=True)
        state = st
        return spikes[0]

    for f in frames_iter:
        f = _as_float_tensor(f, "frame")
        if prev is None:
            pending.append(f)
        else:
            wts = torch.arange(1, interp + 1, dtype=f.dtype, device=f.device) / interp
            for wj in wts:
                pending.append(f if float(wj) == 1.0 else torch.lerp(prev, f, wj))
        prev = f
        while len(pending) >= block:
            chunk, pending = pending[:block], pending[block:]
            yield run(chunk)
    if prev is None:
        raise SpikeFileError(f"{source}: no frames")
    if pending:
        yield run(pending)


def simulate_video(
    source: str | Path | Tensor,
    *,
    v_th: float = 1.0,
    gain: float = 1.0,
    interp: int = 1,
    init: Literal["random", "zero"] | Tensor = "random",
    noise: SpikeNoise | None = None,
    generator: torch.Generator | None = None,
    max_frames: int | None = None,
) -> Tensor:
    r"""Spikes of a whole video: uint8 ``[T', H, W]`` with ``T' = (T - 1) * interp + 1``.

    Convenience over :func:`iter_simulate_video` (see there for the arguments).

    Example:
        >>> frames = torch.rand(3, 1, 8, 8)
        >>> simulate_video(frames, interp=4, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([9, 8, 8])
    """
    blocks = list(iter_simulate_video(source, v_th=v_th, gain=gain, interp=interp, init=init,
                                      noise=noise, generator=generator, max_frames=max_frames,
                                      block=256))
    return torch.cat(blocks, dim=0)
