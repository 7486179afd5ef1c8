"""Time in spike streams: frame rates and time specifications (``"10ms"``, ``"0.5s"``, ``"200"``)
turned into frame indices and frame ranges, exactly (rational arithmetic)."""

from __future__ import annotations

import math
import operator
import re
from fractions import Fraction
from typing import Any, Union

from spikegen.errors import SpikeFileError

#: Frame rate assumed for files that do not state one (every ``.dat``): the PKU Vidar
#: cameras record 20 000 frames per second.
DEFAULT_FPS = 20000.0

_TIME_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)(?:[eE]([+-]?\d+))?\s*(ms|s)?\s*$")
TimeSpec = Union[int, str, None]


def check_fps(fps: Any, name: str = "fps") -> float:
    """``fps`` as a positive finite float, else :class:`SpikeFileError` naming ``name``."""
    if isinstance(fps, bool):
        raise SpikeFileError(f"{name} must be a positive number (frames per second), got {fps!r}")
    try:
        f = float(fps)
    except (TypeError, ValueError):
        raise SpikeFileError(f"{name} must be a positive number (frames per second), got {fps!r}") from None
    if not (math.isfinite(f) and f > 0):
        raise SpikeFileError(f"{name} must be a positive finite number (frames per second), got {fps!r}")
    return f


def _exact(x: float | int) -> Fraction:
    # The decimal a float prints as (29.97 -> 2997/100), not its binary value.
    return Fraction(x) if isinstance(x, int) else Fraction(repr(float(x)))


def time_to_frame(spec: int | str, fps: float = DEFAULT_FPS, *, rounding: str = "floor", name: str = "time") -> int:
    """A frame index from a frame count or a time.

    ``spec`` is an ``int`` or a string: a plain integer (``"200"``) is a frame index; a number
    with the suffix ``ms`` or ``s`` (``"10ms"``, ``"0.5s"``, ``"2.5e-3s"``) is a time from the
    start of the stream, converted exactly (rational arithmetic) to ``time * fps`` and rounded
    down (``rounding="floor"``, for a start) or up (``"ceil"``, for an end). With frame ``k``
    exposed over ``[k / fps, (k + 1) / fps)``, ``floor(start)`` .. ``ceil(end) - 1`` are exactly
    the frames that overlap the time interval ``[start, end)``.

    Example:
        >>> time_to_frame("5ms", 20000), time_to_frame("10ms", 20000, rounding="ceil"), time_to_frame(7)
        (100, 200, 7)
        >>> time_to_frame("0.01ms", 20000), time_to_frame("0.01ms", 20000, rounding="ceil")
        (0, 1)
    """
    if rounding not in ("floor", "ceil"):
        raise ValueError(f"rounding must be 'floor' or 'ceil', got {rounding!r}")
    if isinstance(spec, bool):
        raise SpikeFileError(f"{name} must be a frame index or a time such as 10ms or 0.5s, got {spec!r}")
    if not isinstance(spec, str):
        try:
            k = operator.index(spec)
        except TypeError:
            raise SpikeFileError(f"{name} must be a frame index or a time such as 10ms or 0.5s, got {spec!r}") from None
        if k < 0:
            raise SpikeFileError(f"{name} must be >= 0, got {k}")
        return k
    m = _TIME_RE.match(spec)
    if m is None:
        raise SpikeFileError(
            f"{name} must be a frame index (e.g. 200) or a time with a unit (e.g. 10ms, 0.5s), got {spec!r}"
        )
    number, exp, unit = m.groups()
    value = Fraction(number) * (Fraction(10) ** int(exp) if exp else 1)
    if unit is None:
        if value.denominator != 1:
            raise SpikeFileError(f"{name}: a frame index must be an integer, got {spec!r} (add ms or s for a time)")
        return int(value)
    seconds = value / 1000 if unit == "ms" else value
    frames = seconds * _exact(check_fps(fps))
    return math.floor(frames) if rounding == "floor" else math.ceil(frames)


def frame_range(
    start: TimeSpec,
    end: TimeSpec,
    num_frames: int,
    fps: float = DEFAULT_FPS,
    *,
    names: tuple[str, str] = ("start", "end"),
) -> tuple[int, int]:
    """``(first, stop)`` frames selected by a start and an end given as frames or times.

    ``start`` / ``end`` are as :func:`time_to_frame` (``None``: the start / the end of the
    stream): ``first = floor(start * fps)``, ``stop = ceil(end * fps)``, the end exclusive, so
    the range holds exactly the frames whose exposure overlaps ``[start, end)``. Frame counts
    and times mix freely. Raises :class:`SpikeFileError` (naming ``names``) unless
    ``0 <= first < stop <= num_frames``.

    Example:
        >>> frame_range("5ms", "10ms", 1000, 20000)      # 20 kHz: 20 frames per ms
        (100, 200)
        >>> frame_range(None, "0.5s", 20000), frame_range(100, None, 400)
        ((0, 10000), (100, 400))
    """
    n = int(num_frames)
    a = 0 if start is None else time_to_frame(start, fps, rounding="floor", name=names[0])
    b = n if end is None else time_to_frame(end, fps, rounding="ceil", name=names[1])
    dur = f"{n} frames, {n / float(fps) * 1000:g} ms at {float(fps):g} fps"
    if b > n:
        raise SpikeFileError(f"{names[1]} {end} is frame {b}, beyond the end of the stream ({dur})")
    if a >= b:
        which = f"{names[0]} {start} (frame {a})" if start is not None else f"{names[0]} 0"
        raise SpikeFileError(
            f"{which} must come before {names[1]} {end if end is not None else '(the end)'} (frame {b}); "
            f"the stream holds {dur}"
        )
    return a, b
