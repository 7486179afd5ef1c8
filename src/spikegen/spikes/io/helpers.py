"""What the spike readers and writers share: argument and geometry checks, frame selections,
block sizes and the decoding / packing threads.

Package-internal: the names here are public so that the files of :mod:`spikegen.spikes.io`
can share them; callers outside the package use the names :mod:`spikegen.spikes.io` re-exports
(``PathLike``, ``FrameSelection``, ``Partial``, ``DEFAULT_HEIGHT``, ``DEFAULT_WIDTH``,
:func:`dat_frame_bytes`).
"""

from __future__ import annotations

import itertools
import operator
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, Union

from spikegen.errors import SpikeFileError

PathLike = Union[str, "os.PathLike[str]"]
FrameSelection = Union[slice, range, int, tuple, None]
Partial = Literal["error", "drop"]

#: Default sensor size of the PKU Vidar cameras (and the shared REDS-based streams).
DEFAULT_HEIGHT = 250
DEFAULT_WIDTH = 400

# Unpacked bytes per decode block: small enough to stay in a core's L2/L3 cache.
BLOCK_BYTES = 2 << 20
# Unpacked bytes per packing block of the writers.
WRITE_BLOCK_BYTES = 1 << 20
# Reads producing fewer bytes than this are decoded on the calling thread only.
PARALLEL_MIN_BYTES = 16 << 20
MAX_AUTO_WORKERS = 4


def positive_int(value: Any, name: str, where: str) -> int:
    if isinstance(value, bool):
        raise SpikeFileError(f"{where}: {name} must be a positive integer, got {value!r}")
    try:
        ivalue = operator.index(value)
    except TypeError:
        raise SpikeFileError(f"{where}: {name} must be a positive integer, got {value!r}") from None
    if ivalue <= 0:
        raise SpikeFileError(f"{where}: {name} must be a positive integer, got {ivalue}")
    return ivalue


def check_geometry(height: Any, width: Any, raw_width: Any, where: str) -> tuple[int, int, int]:
    h = positive_int(height, "height", where)
    w = positive_int(width, "width", where)
    rw = w if raw_width is None else positive_int(raw_width, "raw_width", where)
    if rw < w:
        raise SpikeFileError(
            f"{where}: raw_width ({rw}) must be >= width ({w}); raw_width is the stored row "
            f"width, of which the first `width` columns are kept"
        )
    return h, w, rw


def dat_frame_bytes(height: int, width: int, raw_width: int | None = None) -> int:
    """Bytes per frame in a ``.dat`` file: ``ceil(height * raw_width / 8)``.

    Args:
        height: frame height ``H``.
        width: frame width ``W``.
        raw_width: stored row width (``>= width``); defaults to ``width``.

    Example:
        >>> dat_frame_bytes(250, 400)
        12500
        >>> dat_frame_bytes(7, 9)  # 63 bits, padded to 8 bytes
        8
    """
    h, _, rw = check_geometry(height, width, raw_width, "dat_frame_bytes")
    return (h * rw + 7) // 8


_LOADAVG = "/proc/loadavg"


def idle_cpus() -> int:
    """CPUs this process may use that other processes leave idle: the CPUs less the busier of
    the 1-minute load average and the tasks runnable right now (Linux, ``/proc/loadavg``,
    less this thread).

    Extra decoding threads only pay on idle cores: on a busy machine every thread waits for a
    time slice, and one thread is faster. The load average lags by about a minute (a job that
    started or resumed a few seconds ago is not in it yet), hence the second measure."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return 1
    try:
        with open(_LOADAVG, encoding="ascii") as f:
            running = int(f.read().split()[3].split("/")[0])  # "1.02 0.98 0.91 3/412 1234"
        load = max(load, running - 1)
    except (OSError, ValueError, IndexError):
        pass
    return max(1, int(cpus - load))


def num_workers(workers: int | None, nblocks: int, nbytes: int) -> int:
    if workers is None:
        if nbytes < PARALLEL_MIN_BYTES:
            return 1
        workers = min(idle_cpus(), MAX_AUTO_WORKERS)
    else:
        try:
            valid = not isinstance(workers, bool) and operator.index(workers) >= 1
        except TypeError:
            valid = False
        if not valid:
            raise SpikeFileError(f"workers must be a positive integer or None, got {workers!r}")
        workers = operator.index(workers)
    return max(1, min(workers, nblocks))


def run_workers(job: Callable[[Callable[[], bool]], None], workers: int) -> None:
    """Run ``job(stopped)`` on ``workers`` threads; re-raise the first error."""
    if workers == 1:
        job(lambda: False)
        return
    stop = threading.Event()

    def guarded() -> None:
        try:
            job(stop.is_set)
        except BaseException:
            stop.set()
            raise

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="spikegen-io") as pool:
        futures = [pool.submit(guarded) for _ in range(workers)]
    for fut in futures:
        fut.result()


def map_ordered(fn: Callable[[Any], Any], items: Any, workers: int) -> Iterator[Any]:
    """``map(fn, items)`` on ``workers`` threads, in order, with at most ``2 * workers`` in flight."""
    if workers == 1:
        for item in items:
            yield fn(item)
        return
    it = iter(items)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="spikegen-io") as pool:
        pending = deque(pool.submit(fn, item) for item in itertools.islice(it, 2 * workers))
        try:
            while pending:
                result = pending.popleft().result()
                for item in itertools.islice(it, 1):
                    pending.append(pool.submit(fn, item))
                yield result
        finally:
            for fut in pending:
                fut.cancel()


def select_frames(frames: FrameSelection, n: int, where: str) -> range:
    """Turn a frame selection into a ``range`` of valid frame indices."""
    if frames is None:
        return range(n)
    if isinstance(frames, slice):
        try:
            return range(*frames.indices(n))
        except (TypeError, ValueError) as exc:
            raise SpikeFileError(f"{where}: invalid frame slice {frames!r}: {exc}") from None
    if isinstance(frames, tuple):
        if len(frames) != 2:
            raise SpikeFileError(f"{where}: frames as a tuple must be (start, stop), got {frames!r}")
        return select_frames(slice(*frames), n, where)
    if isinstance(frames, range):
        if len(frames) and (min(frames) < 0 or max(frames) >= n):
            raise SpikeFileError(
                f"{where}: frames {frames!r} is out of range for a stream of {n} frames"
            )
        return frames
    if isinstance(frames, bool):
        raise SpikeFileError(f"{where}: frames must be a slice, range, (start, stop) or int")
    try:
        k = operator.index(frames)
    except TypeError:
        raise SpikeFileError(
            f"{where}: frames must be a slice, range, (start, stop) or int, got {frames!r}"
        ) from None
    kk = k + n if k < 0 else k
    if not 0 <= kk < n:
        raise SpikeFileError(f"{where}: frame {k} is out of range for a stream of {n} frames")
    return range(kk, kk + 1)


def range_to_slice(r: range) -> slice:
    """The slice selecting the indices of ``r`` (a range of valid, non-negative indices)."""
    if not len(r):
        return slice(0, 0)
    stop = r.stop if r.stop >= 0 else None
    return slice(r.start, stop, r.step)


def check_block_range(start: Any, stop: Any, n: int, block: Any, overlap: Any, where: str) -> tuple[int, int, int, int]:
    b = positive_int(block, "block", where)
    if isinstance(overlap, bool):
        raise SpikeFileError(f"{where}: overlap must be an integer in [0, block)")
    try:
        ov = operator.index(overlap)
    except TypeError:
        raise SpikeFileError(f"{where}: overlap must be an integer, got {overlap!r}") from None
    if not 0 <= ov < b:
        raise SpikeFileError(f"{where}: overlap must be in [0, block={b}), got {ov}")
    try:
        s = 0 if start is None else operator.index(start)
        e = n if stop is None else operator.index(stop)
    except TypeError:
        raise SpikeFileError(f"{where}: start and stop must be integers, got {start!r}, {stop!r}") from None
    if not 0 <= s <= e <= n:
        raise SpikeFileError(
            f"{where}: need 0 <= start <= stop <= {n} (the number of frames), got start={s}, stop={e}"
        )
    return s, e, b, ov


def block_starts(start: int, stop: int, block: int, overlap: int) -> Iterator[tuple[int, int]]:
    step = block - overlap
    t = start
    while t < stop:
        e = min(t + block, stop)
        yield t, e
        if e >= stop:
            return
        t += step


def stat_input(path: PathLike, what: str) -> tuple[Path, int]:
    p = Path(os.fspath(path))
    try:
        st = p.stat()
    except FileNotFoundError:
        raise SpikeFileError(f"{what} '{p}' does not exist") from None
    except OSError as exc:
        raise SpikeFileError(f"cannot access {what} '{p}': {exc.strerror or exc}") from None
    if p.is_dir():
        raise SpikeFileError(f"'{p}' is a folder, not a {what}")
    return p, st.st_size


