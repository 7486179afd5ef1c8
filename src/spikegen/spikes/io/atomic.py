"""The spike writers' output file: a temporary file next to the output, renamed into place only
when complete, that never replaces an existing output unless ``overwrite=True``."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from spikegen.errors import OutputExistsError, ShapeError, SpikeFileError
from spikegen.spikes.io.arrays import FrameSource
from spikegen.spikes.io.helpers import PathLike


class AtomicOutput:
    """A temporary file next to ``path`` that replaces ``path`` only on :meth:`commit`."""

    def __init__(self, path: PathLike, overwrite: bool, what: str) -> None:
        self.path = Path(os.fspath(path))
        self.overwrite = bool(overwrite)
        self.what = what
        check_output(self.path, self.overwrite, what)
        name = f".{self.path.name}.{secrets.token_hex(6)}.tmp"
        self.tmp = self.path.parent / name
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        try:
            fd = os.open(self.tmp, flags, 0o666)
        except OSError as exc:
            raise SpikeFileError(
                f"cannot write {what} '{self.path}': {exc.strerror or exc}"
            ) from None
        self.file = os.fdopen(fd, "wb")
        self.done = False

    def commit(self) -> Path:
        self.file.close()
        try:
            if self.overwrite:
                os.replace(self.tmp, self.path)
            else:
                try:
                    # link() refuses to replace an existing file: no race with another writer.
                    os.link(self.tmp, self.path)
                except FileExistsError:
                    raise OutputExistsError(
                        f"{self.what} '{self.path}' already exists (created while writing); "
                        f"pass overwrite=True to replace it"
                    ) from None
                except OSError:
                    # Filesystems without hard links: check, then rename.
                    check_output(self.path, False, self.what)
                    os.replace(self.tmp, self.path)
                else:
                    os.unlink(self.tmp)
        except BaseException:
            self.abort()
            raise
        self.done = True
        return self.path

    def abort(self) -> None:
        if self.done:
            return
        self.done = True
        try:
            self.file.close()
        finally:
            try:
                os.unlink(self.tmp)
            except FileNotFoundError:
                pass


def check_output(path: Path, overwrite: bool, what: str) -> None:
    if path.is_dir():
        raise SpikeFileError(f"cannot write {what} '{path}': it is an existing folder")
    if not overwrite and (path.exists() or path.is_symlink()):
        raise OutputExistsError(
            f"{what} '{path}' already exists; pass overwrite=True to replace it"
        )
    if not path.parent.is_dir():
        raise SpikeFileError(f"cannot write {what} '{path}': folder '{path.parent}' does not exist")


class WriterContext:
    """What the block writers share (:class:`~spikegen.spikes.io.DatWriter`,
    :class:`~spikegen.spikes.io.PackedWriter`, each with ``_out``, ``close()`` and
    ``abort()``): a ``with`` block closes the writer when it ends cleanly and aborts it on an
    error, and a writer dropped without ``close()`` leaves no temporary file behind."""

    _out: AtomicOutput
    where: str

    def _frames(self, spikes: Any, height: int, width: int) -> FrameSource:
        """The frames handed to ``write``, checked: the writer is open, ``[t, H, W]`` (or one
        ``[H, W]`` frame) of the writer's size."""
        if self._out.done:
            raise SpikeFileError(f"{self.where}: the writer is closed")
        if getattr(spikes, "ndim", None) == 2:
            spikes = spikes[None]
        src = FrameSource(spikes, self.where)
        if src.shape[1:] != (height, width):
            raise ShapeError(f"{self.where}: frames are {src.shape[1]}x{src.shape[2]} but the writer was "
                             f"opened for {height}x{width}")
        return src

    def close(self) -> Path:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:
        out = getattr(self, "_out", None)
        if out is not None and not out.done:
            try:
                self.abort()
            except Exception:
                pass
