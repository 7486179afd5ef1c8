"""The spike-camera sensor-noise model: :class:`SpikeNoise`, per-pixel gain (PRNU), dark charge
and temporal noise, from measured maps or drawn for a synthetic camera.

Example:
    >>> import torch
    >>> from spikegen.spikes.simulate.noise import SpikeNoise
    >>> noise = SpikeNoise(prnu=torch.ones(4, 4), dark=0.01)
    >>> [m.shape for m in noise.maps(8, 8)]
    [torch.Size([8, 8]), torch.Size([8, 8])]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from spikegen.errors import ShapeError, SpikeFileError

__all__ = ["SpikeNoise"]

# Statistics of the measured SpikeNeRF maps (250 x 400), used by SpikeNoise.parametric:
# relative std of the photo-response gain Nl, and the log-normal fit of the dark charge.
_PRNU_STD = 0.056
_DARK_MEDIAN = 4.5e-3
_DARK_LOG_STD = 0.46


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
