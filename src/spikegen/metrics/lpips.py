"""LPIPS v0.1 with the AlexNet backbone (Zhang et al., 2018), written in plain torch.

The network: the five convolutions of torchvision's AlexNet (``conv 64 k11 s4 p2``,
``maxpool 3/2``, ``conv 192 k5 p2``, ``maxpool 3/2``, ``conv 384 k3 p1``, ``conv 256 k3 p1``,
``conv 256 k3 p1``), tapped after each ReLU. Inputs in [-1, 1] are first shifted and scaled by
LPIPS's ``ScalingLayer`` (shift ``[-.030, -.088, -.188]``, scale ``[.458, .448, .450]``). Each
tapped feature map is unit-normalised over channels, the squared difference of the two images'
maps is weighted per channel by a learned 1x1 linear head (no bias), averaged over space, and
the five layer scores are summed.

The weights (converted from ``lpips_alex.safetensors`` by ``scripts/convert_lpips_weights.py``)
ship with the package; nothing is downloaded. The module has frozen parameters and passes
gradients to its inputs, so it can serve as a perceptual training loss.

Example:
    >>> import torch
    >>> x = torch.rand(1, 3, 64, 64)
    >>> float(lpips(x, x))
    0.0
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from spikegen.errors import CheckpointError, ShapeError
from spikegen.metrics._common import ASSETS, reduce_output, to_tensor_pair

__all__ = ["lpips", "LPIPS", "LPIPS_WEIGHTS"]

LPIPS_WEIGHTS = ASSETS / "lpips_alex.safetensors"

_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
# (in, out, kernel, stride, padding, maxpool before this conv)
_ALEX = ((3, 64, 11, 4, 2, False), (64, 192, 5, 1, 2, True), (192, 384, 3, 1, 1, True),
         (384, 256, 3, 1, 1, False), (256, 256, 3, 1, 1, False))  # fmt: skip
MIN_SIZE = 31  # smallest input side for which the second max-pool still has a 3x3 input


class LPIPS(nn.Module):
    """LPIPS v0.1 "alex" distance as a frozen ``nn.Module``.

    Args:
        net: backbone name; only ``"alex"`` is shipped.
        normalize: inputs are in [0, 1] and are mapped to [-1, 1] (``2x - 1``). With False,
            inputs must already be in [-1, 1].
        reduction: ``"mean"`` (scalar, the batch mean) or ``"none"`` (``[B]``).
        weights: a safetensors file in the converted torch layout (default: the shipped one).

    Shape:
        - pred, target: ``[B, C, H, W]`` or ``[C, H, W]``, C in {1, 3} (gray is repeated to
          RGB), H and W at least 31.
        - output: scalar, or ``[B]`` with ``reduction="none"``.

    Example:
        >>> import torch
        >>> loss_fn = LPIPS()
        >>> x = torch.rand(2, 3, 64, 64, requires_grad=True)
        >>> loss = loss_fn(x, torch.rand(2, 3, 64, 64))
        >>> loss.backward()
        >>> x.grad.shape
        torch.Size([2, 3, 64, 64])
    """

    def __init__(
        self,
        net: str = "alex",
        normalize: bool = True,
        reduction: str = "mean",
        weights: str | Path | None = None,
    ) -> None:
        super().__init__()
        if net != "alex":
            raise ShapeError(f"LPIPS: net must be 'alex' (the only shipped backbone), got {net!r}")
        if reduction not in ("mean", "none"):
            raise ShapeError(f"LPIPS: reduction must be 'mean' or 'none', got {reduction!r}")
        self.normalize = bool(normalize)
        self.reduction = reduction
        self.features = nn.ModuleList(nn.Conv2d(i, o, k, stride=s, padding=p) for i, o, k, s, p, _ in _ALEX)
        self.lins = nn.ModuleList(nn.Conv2d(o, 1, 1, bias=False) for _, o, _, _, _, _ in _ALEX)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self._load(Path(weights) if weights is not None else LPIPS_WEIGHTS)
        self.requires_grad_(False)
        self.eval()

    def _load(self, path: Path) -> None:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        if not path.is_file():
            raise CheckpointError(f"LPIPS: weights file not found: {path}")
        try:
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"LPIPS: cannot read weights {path}: {e}") from None
        try:
            self.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise CheckpointError(f"LPIPS: weights {path} do not match LPIPS-alex: {e}") from None

    def train(self, mode: bool = True) -> LPIPS:  # noqa: D102 - the metric has no train mode
        return super().train(False)

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - self.shift) / self.scale
        out = []
        for conv, (*_, pool) in zip(self.features, _ALEX):
            if pool:
                x = F.max_pool2d(x, kernel_size=3, stride=2)
            x = F.relu(conv(x))
            out.append(x)
        return out

    @staticmethod
    def _unit(f: torch.Tensor) -> torch.Tensor:
        # f / (||f||_2 over channels + 1e-10), as LPIPS's normalize_tensor. The clamp keeps the
        # gradient finite where all channels are 0 (sqrt'(0) = inf); the value is unchanged.
        norm = f.pow(2).sum(dim=1, keepdim=True).clamp_min(torch.finfo(f.dtype).tiny).sqrt()
        return f / (norm + 1e-10)

    def distance(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-image LPIPS ``[B]`` of ``[B, 3, H, W]`` tensors in [-1, 1] (no checks, no
        ``normalize``) on the module's device and dtype."""
        total = pred.new_zeros(pred.shape[0])
        for lin, f0, f1 in zip(self.lins, self._taps(pred), self._taps(target)):
            d = (self._unit(f0) - self._unit(f1)).pow(2)
            total = total + lin(d).mean(dim=(1, 2, 3))
        return total

    def forward(self, pred: Any, target: Any) -> Any:
        _check_uint8(pred, target, self.normalize)
        p, t, batched, from_numpy = to_tensor_pair(pred, target, "lpips")
        p, t = _prepare(p, t)
        ref = self.shift
        if p.device != ref.device or p.dtype != ref.dtype:
            p, t = p.to(ref.device, ref.dtype), t.to(ref.device, ref.dtype)
        if self.normalize:
            p, t = p * 2 - 1, t * 2 - 1
        return reduce_output(self.distance(p, t), self.reduction, batched, from_numpy, "lpips")


def _check_uint8(pred: Any, target: Any, normalize: bool) -> None:
    if not normalize and any(getattr(x, "dtype", None) in (torch.uint8, np.uint8) for x in (pred, target)):
        raise ShapeError("lpips: uint8 images are in [0, 255]; use normalize=True (float [-1, 1] needs normalize=False)")


def _prepare(p: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    h, w = p.shape[-2:]
    if min(h, w) < MIN_SIZE:
        raise ShapeError(f"lpips: images must be at least {MIN_SIZE}x{MIN_SIZE} pixels for AlexNet, got {h}x{w}")
    if p.shape[1] == 1:
        p, t = p.expand(-1, 3, -1, -1), t.expand(-1, 3, -1, -1)
    return p, t


_CACHE: dict[tuple[str, torch.device, torch.dtype], LPIPS] = {}


def _cached(net: str, device: torch.device, dtype: torch.dtype) -> LPIPS:
    key = (net, device, dtype)
    model = _CACHE.get(key)
    if model is None:
        model = LPIPS(net=net, reduction="none").to(device=device, dtype=dtype)
        _CACHE[key] = model
    return model


def lpips(pred: Any, target: Any, *, net: str = "alex", normalize: bool = True, reduction: str = "mean") -> Any:
    """LPIPS v0.1 distance between two images (lower is more similar; 0 for identical images).

    Args:
        pred: ``[B, C, H, W]`` or ``[C, H, W]`` tensor (or a numpy image/batch, see
            ``docs/metrics.md``), C in {1, 3}; gray is repeated to RGB. H, W >= 31.
        target: same shape as ``pred``.
        net: ``"alex"`` (the only shipped backbone).
        normalize: True for inputs in [0, 1] (mapped to [-1, 1]); False for inputs already in
            [-1, 1]. ``uint8`` inputs are divided by 255 first.
        reduction: ``"mean"`` over the batch or ``"none"`` for per-image values.

    Returns:
        A tensor on the input's device (differentiable w.r.t. the inputs): a scalar, or ``[B]``
        with ``reduction="none"`` on a batch. numpy inputs give a float / numpy array.
        Computed in the inputs' dtype (half precision is computed in float32).

    Raises:
        ShapeError: bad shapes, dtypes, ``net`` or ``reduction``.

    Example:
        >>> import torch
        >>> a, b = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
        >>> lpips(a, b, reduction="none").shape
        torch.Size([2])
    """
    if net != "alex":
        raise ShapeError(f"lpips: net must be 'alex' (the only shipped backbone), got {net!r}")
    if reduction not in ("mean", "none"):
        raise ShapeError(f"lpips: reduction must be 'mean' or 'none', got {reduction!r}")
    _check_uint8(pred, target, normalize)
    p, t, batched, from_numpy = to_tensor_pair(pred, target, "lpips")
    p, t = _prepare(p, t)
    if normalize:
        p, t = p * 2 - 1, t * 2 - 1
    model = _cached(net, p.device, p.dtype)
    return reduce_output(model.distance(p, t), reduction, batched, from_numpy, "lpips")
