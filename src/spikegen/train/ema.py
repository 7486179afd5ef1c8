"""Exponential moving average of model parameters (kept in float32 on the model's device)."""

from __future__ import annotations

import torch


class EMA:
    """``ema = decay * ema + (1 - decay) * param`` after every optimiser step.

    Buffers (e.g. norm statistics) are copied, not averaged. ``state_dict`` has the same keys
    as the model's, so EMA weights load straight into a model.
    """

    def __init__(self, model: torch.nn.Module, decay: float = 0.999):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.shadow = {k: v.detach().float().clone() for k, v in model.state_dict().items()}
        # Frozen parameters (e.g. SpikeGen's VAE) are copied like buffers, never averaged.
        self._param_names = {k for k, p in model.named_parameters() if p.requires_grad}

    def decay_at(self, step: int | None) -> float:
        """The decay used after optimiser step ``step`` (1-based): warmed up as
        ``min(decay, (1 + step) / (10 + step))`` so early averages are not dominated by the
        random initial weights (with a fixed 0.999, 37% of the average after 1000 steps would
        still be the initialisation)."""
        if step is None:
            return self.decay
        return min(self.decay, (1.0 + step) / (10.0 + step))

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int | None = None) -> None:
        d = self.decay_at(step)
        for k, v in model.state_dict().items():
            s = self.shadow[k]
            if k in self._param_names and v.is_floating_point():
                s.mul_(d).add_(v.detach().float(), alpha=1.0 - d)
            else:
                s.copy_(v.detach())

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.clone() for k, v in self.shadow.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.shadow) - set(state)
        extra = set(state) - set(self.shadow)
        if missing or extra:
            raise KeyError(f"EMA state mismatch: missing {sorted(missing)[:5]}, unexpected {sorted(extra)[:5]}")
        for k, v in state.items():
            self.shadow[k].copy_(v)

    @torch.no_grad()
    def copy_to(self, model: torch.nn.Module) -> None:
        """Load the averaged weights into ``model`` (cast to each tensor's dtype)."""
        sd = model.state_dict()
        model.load_state_dict({k: self.shadow[k].to(sd[k].dtype) for k in sd})
