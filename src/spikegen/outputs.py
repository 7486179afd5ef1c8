"""The output policy every command and API that writes follows (bottom layer: imports nothing above it).

1. An existing output is never replaced or appended to unless ``overwrite`` is given: a file
   that exists, or a folder that holds anything, is "occupied".
2. Outputs are checked -- and their parent folders created -- **before** any work, so a long job
   never fails at the end on a path it could have refused at the start.
3. Files are written under a temporary name in the output's folder and renamed into place
   (:func:`atomic_path`, :func:`atomic_write_bytes`, :func:`atomic_write_text`; the spike
   writers of :mod:`spikegen.spikes.io` stream theirs), so a failure never leaves a truncated
   output, and they get the mode the umask allows (:func:`file_mode`), as other programs' outputs.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> claim_output(d / "new" / "out.png")          # creates d/new, returns the path
    PosixPath('...out.png')
    >>> (d / "new" / "out.png").write_text("x") and None
    >>> claim_output(d / "new" / "out.png")
    Traceback (most recent call last):
    ...
    spikegen.errors.OutputExistsError: ...out.png: exists; pass --overwrite to replace it
    >>> atomic_write_text(d / "new" / "notes.txt", "done\\n")
    PosixPath('...notes.txt')
    >>> sorted(p.name for p in (d / "new").iterdir())   # no temporary file is left behind
    ['notes.txt', 'out.png']
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from spikegen.errors import OutputExistsError

__all__ = ["is_occupied", "claim_output", "share_files", "file_mode", "atomic_path", "atomic_write_bytes",
           "atomic_write_text"]


def is_occupied(path: str | os.PathLike) -> bool:
    """True when ``path`` is a file (or link) that exists, or a folder that is not empty."""
    p = Path(path)
    if p.is_dir() and not p.is_symlink():
        return any(p.iterdir())
    return p.exists() or p.is_symlink()


def claim_output(path: str | os.PathLike, *, overwrite: bool = False, folder: bool = False,
                 flag: str = "--overwrite") -> Path:
    """Check an output path before any work and create what it needs.

    Args:
        path: the output file (or, with ``folder=True``, the output folder).
        overwrite: allow an occupied ``path`` (the caller then replaces it).
        folder: ``path`` is a folder: it is created (with its parents).
        flag: the option named in the error message.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        OutputExistsError: ``path`` is occupied and ``overwrite`` is False, or a file stands
            where a folder is needed (or a folder where a file is needed).
    """
    p = Path(path)
    if folder and p.exists() and not p.is_dir():
        raise OutputExistsError(f"{p}: exists and is a file, but a folder is needed here")
    if not folder and p.is_dir():
        raise OutputExistsError(f"{p}: is a folder, but a file is needed here")
    if is_occupied(p) and not overwrite:
        what = "holds files" if p.is_dir() else "exists"
        raise OutputExistsError(f"{p}: {what}; pass {flag} to replace it")
    parent = p if folder else p.parent
    if parent.exists() and not parent.is_dir():
        raise OutputExistsError(f"{parent}: is a file, so {p} cannot be written there")
    parent.mkdir(parents=True, exist_ok=True)
    return p


def share_files(path: str | os.PathLike) -> None:
    """Give ``path`` (a file, or every file below a folder) the mode the umask allows
    (``0666 & ~umask``): safetensors and ``mkstemp`` create files readable by their owner only,
    which breaks weights shared between users."""
    mode = file_mode()
    p = Path(path)
    for f in ([p] if p.is_file() else [q for q in p.rglob("*") if q.is_file()]):
        os.chmod(f, mode)


def file_mode() -> int:
    """The mode of a new output file: ``0666 & ~umask`` (``0644`` under the usual umask)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path in ``path``'s folder to write to; renamed over ``path`` when the block
    ends without an error, removed otherwise (``path`` is then left as it was).

    The temporary name is ``.<name>.<random><suffix>`` (give the output's suffix when the writer
    picks the format from it, as PIL does). The folder must exist (see :func:`claim_output`);
    the policy checks (``overwrite``) are the caller's. The file gets :func:`file_mode`.
    """
    p = Path(path)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, file_mode())  # mkstemp makes 0600 files; outputs are for sharing
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through :func:`atomic_path`. Returns ``path`` as a Path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` through :func:`atomic_path` (no newline translation).
    Returns ``path`` as a Path."""
    return atomic_write_bytes(path, text.encode(encoding))
