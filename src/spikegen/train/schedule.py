"""Learning-rate schedule and optimiser parameter groups (paper appendix B).

Linear warm-up from ``start_lr`` (1e-8) to ``lr`` over the first ``warmup`` fraction of the
optimiser steps, then cosine decay to ``min_lr`` (1e-6). The rate is a pure function of the
step, so resuming needs no scheduler state beyond the step counter.
"""

from __future__ import annotations

import math

import torch


def lr_at(step: int, total: int, *, lr: float, warmup: float = 0.1, start_lr: float = 1e-8,
          min_lr: float = 1e-6) -> float:
    """Learning rate for optimiser step ``step`` (0-based) of ``total``.

    Example:
        >>> lr_at(0, 100, lr=1e-4)
        1e-08
        >>> round(lr_at(10, 100, lr=1e-4), 12)
        0.0001
    """
    total = max(int(total), 1)
    n_warm = int(round(warmup * total))
    if step < n_warm:
        return start_lr + (lr - start_lr) * step / n_warm
    if total <= n_warm:
        return lr
    progress = min(max((step - n_warm) / max(total - n_warm - 1, 1), 0.0), 1.0)
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: weight decay on weight matrices/kernels only.

    Biases, norm parameters (1-D tensors), embeddings and learned tokens (names containing
    ``token``, ``pos_embed`` or ``embedding``) get no weight decay, as in MAE/MAR.
    """
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        lname = name.lower()
        if p.ndim <= 1 or "token" in lname or "pos_embed" in lname or "embedding" in lname or lname.endswith(".bias"):
            no_decay.append(p)
        else:
            decay.append(p)
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": weight_decay})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups
