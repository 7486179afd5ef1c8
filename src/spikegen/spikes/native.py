"""The optional compiled loops of the spike kernels (the C extension ``spikegen._native``).

``pip install`` builds the extension where a C compiler is at hand; without one it is skipped
and every kernel runs its numpy code, which gives the same bits (the extension uses the same
float operations in the same order). ``SPIKEGEN_NATIVE=0`` in the environment switches it off
(read once, at import). A build older than this module (another ``ABI_VERSION``) is ignored,
and so is one whose source differs from ``spikegen/_native.c`` where that file is at hand (a
source checkout: an edited file whose rebuild failed leaves the old build behind).

``lib`` is the loaded module or ``None``; ``status`` says which and why, e.g. for ``spikegen
info``. Kernels look ``lib`` up at each call, so tests can set it to ``None`` to compare both
paths.

Example:
    >>> from spikegen.spikes import native
    >>> native.status.split(" ")[0] in ("compiled", "not", "switched", "stale")
    True
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from types import ModuleType

__all__ = ["ABI_VERSION", "lib", "status"]

ABI_VERSION = 1  # must match ABI_VERSION in src/spikegen/_native.c
_SOURCE = Path(__file__).resolve().parents[1] / "_native.c"


def _load(source: Path = _SOURCE) -> tuple[ModuleType | None, str]:
    """The extension and a status line, or ``None`` and why not (``source``: the C file the
    build must match when it exists)."""
    if os.environ.get("SPIKEGEN_NATIVE", "").strip().lower() in ("0", "off", "false", "no"):
        return None, "switched off (SPIKEGEN_NATIVE=0): numpy kernels"
    try:
        from spikegen import _native
    except ImportError:
        return None, "not built (no C compiler at install time?): numpy kernels"
    if getattr(_native, "ABI_VERSION", None) != ABI_VERSION or (
        source.is_file()
        and int(hashlib.sha256(source.read_bytes()).hexdigest()[:15], 16) != _native.SOURCE_HASH
    ):
        return None, "stale build (reinstall spikegen): numpy kernels"
    return _native, f"compiled loops ({_native.SIMD})"


lib, status = _load()
