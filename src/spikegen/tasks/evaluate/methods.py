"""The methods and option lists of ``spikegen eval``: ``Method``, ``parse_methods``, ``parse_floats``, ``load_model``."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence

# `eval` looks both loaders up on their modules when it runs (so a test can swap them).
import spikegen.tasks.reconstruct as reconstruct_task
import spikegen.weights as shipped_weights
from spikegen.errors import SpikeGenError

__all__ = ["TASKS", "DEFAULT_METHODS", "Method", "parse_floats", "parse_methods", "load_model"]

TASKS = ("deblur", "reconstruct", "real")
DEFAULT_METHODS: dict[str, tuple[str, ...]] = {
    "deblur": ("blurry", "tfp", "tfi", "spikegen-0", "spikegen-0.5", "spikegen-1"),
    "reconstruct": ("tfp", "tfi", "blend", "spikegen"),
    "real": ("tfp", "tfi", "blend", "spikegen"),
}


@dataclass(frozen=True)
class Method:
    """One evaluated method: ``kind`` in blurry / tfp / tfi / blend / spikegen, ``gamma`` for SpikeGen."""

    name: str
    kind: str
    gamma: float | None = None

    @property
    def label(self) -> str:
        if self.kind == "spikegen":
            return f"SpikeGen g={self.gamma:g}"
        return {"blurry": "blurry input", "tfp": "TFP", "tfi": "TFI", "blend": "TFP/TFI blend"}[self.kind]


def parse_floats(value: str | float | Sequence[float], name: str, *, positive: bool = True) -> list[float]:
    """``"1,2,4"`` or ``[1, 2, 4]`` -> ``[1.0, 2.0, 4.0]`` (checked)."""
    if isinstance(value, (int, float)):
        items: list[Any] = [value]
    elif isinstance(value, str):
        items = [v for v in value.replace(" ", "").split(",") if v]
    else:
        items = list(value)
    out = []
    for v in items:
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise SpikeGenError(f"{name}: {v!r} is not a number (expected a comma-separated list such as 1,2,4)") from None
        if not math.isfinite(f) or (positive and f <= 0):
            raise SpikeGenError(f"{name}: values must be finite{' and > 0' if positive else ''}, got {v!r}")
        out.append(f)
    if not out:
        raise SpikeGenError(f"{name}: empty list")
    return out


def parse_methods(methods: str | Sequence[str] | None, task: str) -> list[Method]:
    """Parse ``"blurry,tfp,tfi,spikegen-0.5"`` for ``task``.

    Names: ``blurry`` (deblur only), ``tfp``, ``tfi``, ``blend`` (reconstruct and real: the
    classic inverse-variance blend of TFP and TFI, :func:`spikegen.data.motion.tfp_tfi_blend`),
    ``spikegen-G`` with G in [0, 1] (the modality ratio), and ``spikegen`` (= ``spikegen-0.5``;
    for reconstruct and real: "TFP & Spike", the pseudo-frame standing in for the RGB input).

    Raises:
        SpikeGenError: unknown or duplicated names, a method the task cannot run.

    Example:
        >>> [m.name for m in parse_methods("blurry,tfp,spikegen-0.5", "deblur")]
        ['blurry', 'tfp', 'spikegen-0.5']
    """
    if task not in TASKS:
        raise SpikeGenError(f"unknown eval task {task!r}; expected one of {', '.join(TASKS)}")
    if methods is None:
        names = list(DEFAULT_METHODS[task])
    elif isinstance(methods, str):
        names = [m.strip().lower() for m in methods.split(",") if m.strip()]
    else:
        names = [str(m).strip().lower() for m in methods]
    if not names:
        raise SpikeGenError("--methods: empty list")
    allowed = "blurry, tfp, tfi, spikegen-G (G in [0, 1], e.g. spikegen-0.5)" if task == "deblur" else \
        "tfp, tfi, blend, spikegen (TFP & Spike, g = 0.5) or spikegen-G (G in [0, 1])"
    out: list[Method] = []
    for n in names:
        if n in ("tfp", "tfi"):
            m = Method(n, n)
        elif n == "blend":
            if task == "deblur":
                raise SpikeGenError(f"--methods: 'blend' is a reconstruction from spikes alone; eval deblur has {allowed}")
            m = Method(n, n)
        elif n == "blurry":
            if task != "deblur":
                raise SpikeGenError(f"--methods: 'blurry' needs an RGB input; eval {task} has none (use {allowed})")
            m = Method(n, n)
        elif n == "spikegen" or n.startswith("spikegen-"):
            if n == "spikegen":
                # "TFP & Spike" needs both branches: at g = 1 the TFP pseudo-frame would be unused
                g = 0.5
            else:
                try:
                    g = float(n[len("spikegen-"):])
                except ValueError:
                    raise SpikeGenError(f"--methods: bad SpikeGen ratio in {n!r}; expected spikegen-G with G in [0, 1]") from None
            if not 0.0 <= g <= 1.0:
                raise SpikeGenError(f"--methods: {n!r}: the modality ratio G must lie in [0, 1]")
            m = Method(f"spikegen-{g:g}" if n != "spikegen" else "spikegen", "spikegen", g)
        else:
            raise SpikeGenError(f"--methods: unknown method {n!r} for eval {task}; expected {allowed}")
        if any(o.name == m.name or (o.kind == "spikegen" and o.gamma == m.gamma and m.kind == "spikegen") for o in out):
            raise SpikeGenError(f"--methods: {n!r} is given twice")
        out.append(m)
    return out



def load_model(methods: list[Method], weights: str | os.PathLike | None, warn: Callable[[str], None],
                task: str = "deblur"):
    """(model or None, methods to run, skipped names); by default the shipped weights of ``task``."""
    sg = [m for m in methods if m.kind == "spikegen"]
    if not sg:
        return None, methods, []
    if weights is None and not shipped_weights.has_default_weights(task):
        skipped = [m.name for m in sg]
        warn(f"no SpikeGen weights: the shipped weights are not in this install and --weights was not given; "
             f"skipping {', '.join(skipped)}")
        return None, [m for m in methods if m.kind != "spikegen"], skipped
    return reconstruct_task.load_default_model(weights, task=task), methods, []
