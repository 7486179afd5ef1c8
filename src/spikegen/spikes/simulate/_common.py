"""What the simulators share (package-private): their input check of light values.

Example:
    >>> import torch
    >>> from spikegen.spikes.simulate._common import light_tensor
    >>> light_tensor(torch.zeros(2, 2), "intensity").dtype
    torch.float32
"""

from __future__ import annotations

from torch import Tensor

from spikegen.checks import as_float_tensor

#: What a simulator's input values mean, for the error of a non-float input.
LIGHT = "light per step, e.g. an image in [0, 1]"


def light_tensor(x: object, name: str) -> Tensor:
    """``x`` (light: an image, frames, a fill level) as a float tensor; numpy arrays are wrapped.

    Raises a :class:`~spikegen.errors.ShapeError` for anything else, or a non-float dtype.
    """
    return as_float_tensor(x, name, hint=LIGHT)
