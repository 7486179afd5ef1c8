"""Exceptions raised by spikegen.

Every error a user can cause by giving bad input is a :class:`SpikeGenError`; the CLI turns
these into a one-line reason and a non-zero exit instead of a traceback. They also subclass
the matching built-in exception, so ``except ValueError`` keeps working for library users.
"""

from __future__ import annotations


class SpikeGenError(Exception):
    """Base class for errors caused by bad input or bad state the user can fix."""


class SpikeFileError(SpikeGenError, ValueError):
    """A spike file (or array) does not have the expected size, shape or content."""


class OutputExistsError(SpikeGenError, FileExistsError):
    """Writing would overwrite an existing output and ``overwrite=True`` was not given."""


class ShapeError(SpikeGenError, ValueError):
    """A tensor argument has the wrong shape, dtype or value range."""


class CheckpointError(SpikeGenError, ValueError):
    """A checkpoint or weights folder is missing, corrupt, truncated or does not match."""
