"""Speed of the spike primitives against plain-numpy references timed in the same run.

Prints a table (this is not a test). Each row times a spikegen function and a plain-numpy
implementation of the same computation written below, checks that they agree, and prints the
median of ``--repeats`` runs (>= 5) and the ratio spikegen / reference (lower is better):

* read a 3000 x 250 x 400 ``.dat`` file, and write the same array;
* integrate-and-fire of a 720 x 1280 image for 200 steps;
* TFP (window 41) and TFI (max half window 20) for 100 output frames at 250 x 400;
* peak memory of a full ``read_dat`` relative to its output array (tracemalloc, in a fresh
  subprocess).

Usage::

    .venv/bin/python benchmarks/bench_spikes.py [--quick] [--repeats 5] [--threads N]

``--quick`` shrinks every size (for a smoke run). Numbers depend on the machine and on what
else is running on it: compare ratios, which are measured under the same conditions.

torch runs on one intra-op thread by default (``--threads 1``), like the single-threaded numpy
references: the comparison is then core for core, and it stays meaningful on a shared machine,
where every multi-threaded torch op can wait a whole scheduler time slice for a descheduled
worker thread. ``--threads 0`` keeps torch's default. (``read_dat``/``write_dat`` use their own
decoding threads either way.)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from spikegen.spikes.io import read_dat, write_dat
from spikegen.spikes.reconstruct import tfi, tfp
from spikegen.spikes.simulate import integrate_and_fire


# ----------------------------------------------------------------------------- references
def ref_read_dat(path: Path, height: int, width: int) -> np.ndarray:
    """PKU .dat: LSB-first bits, frames stored upside down."""
    raw = np.fromfile(path, dtype=np.uint8).reshape(-1, height * width // 8)
    bits = np.unpackbits(raw, axis=1, bitorder="little")
    return bits.reshape(-1, height, width)[:, ::-1]


def ref_write_dat(path: Path, spikes: np.ndarray) -> None:
    flipped = np.ascontiguousarray(spikes[:, ::-1]).reshape(spikes.shape[0], -1)
    np.packbits(flipped, axis=1, bitorder="little").tofile(path)


def ref_integrate_and_fire(img: np.ndarray, a0: np.ndarray, steps: int, v_th: float) -> np.ndarray:
    """Sequential integrate-and-fire with in-place numpy ops (surplus kept)."""
    acc = a0.copy()
    fire = np.empty(img.shape, dtype=bool)
    out = np.empty((steps, *img.shape), dtype=np.uint8)
    for t in range(steps):
        acc += img
        np.greater_equal(acc, v_th, out=fire)
        np.subtract(acc, v_th, out=acc, where=fire)
        out[t] = fire
    return out


def ref_tfp(spikes: np.ndarray, window: int, centers: np.ndarray) -> np.ndarray:
    """Window means through an int16 prefix sum over the needed frames."""
    starts = centers - window // 2
    ends = starts + window  # exclusive
    r0, r1 = starts.min(), ends.max()
    cs = np.zeros((r1 - r0 + 1, *spikes.shape[1:]), dtype=np.int16)
    np.cumsum(spikes[r0:r1], axis=0, dtype=np.int16, out=cs[1:])
    return (cs[ends - r0] - cs[starts - r0]).astype(np.float32) / np.float32(window)


def ref_tfi(spikes: np.ndarray, centers: np.ndarray, h: int, v_th: float = 1.0) -> np.ndarray:
    """v_th / (next - prev), scans over frames; same boundary rules as spikegen's tfi."""
    t_total = spikes.shape[0]
    hw = spikes.shape[1:]
    lo = np.maximum(centers - h + 1, 0)
    hi = np.minimum(centers + h, t_total - 1)
    prev = np.empty((len(centers), *hw), dtype=np.int32)
    nxt = np.empty((len(centers), *hw), dtype=np.int32)
    last = np.full(hw, -1, dtype=np.int32)
    pos = {int(c): i for i, c in enumerate(centers)}
    for t in range(int(lo.min()), int(centers.max()) + 1):
        np.maximum(last, np.where(spikes[t] != 0, t, -1), out=last)
        if t in pos:
            prev[pos[t]] = last
    first = np.full(hw, np.iinfo(np.int32).max, dtype=np.int32)
    for t in range(int(hi.max()), int(centers.min()), -1):
        np.minimum(first, np.where(spikes[t] != 0, t, np.iinfo(np.int32).max), out=first)
        if t - 1 in pos:
            nxt[pos[t - 1]] = first
    lo_, hi_ = lo[:, None, None], hi[:, None, None]
    none = (prev < lo_) & (nxt > hi_)
    d = np.minimum(nxt, hi_ + 1) - np.maximum(prev, lo_ - 1)
    out = (v_th / d).astype(np.float32)
    out[none] = 0
    return out


# ----------------------------------------------------------------------------- timing
def median_time(fn, repeats: int) -> tuple[float, object]:
    result = fn()  # warm-up (and the value to compare)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


PEAK_SCRIPT = """
import sys, tracemalloc
import numpy as np
from spikegen.spikes.io import read_dat
path, h, w = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
tracemalloc.start()
out = read_dat(path, h, w)
cur, peak = tracemalloc.get_traced_memory()
print(peak, out.nbytes)
"""


def long_reconstruct_rss(frames: int, h: int = 250, w: int = 400) -> None:
    """Peak RSS of the CLI streaming a long recording to MP4 (a child process, getrusage)."""
    import time

    from spikegen.spikes.io import DatWriter

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.dat"
        t0 = time.perf_counter()
        with DatWriter(path, h, w) as dw:
            for start in range(0, frames, 1000):
                n = min(1000, frames - start)
                t = (start + np.arange(n, dtype=np.float32))[:, None, None]
                rate = 0.1 + 0.4 * (0.5 + 0.5 * np.sin((xx + 0.05 * t) / 25.0) * np.cos(yy / 30.0))
                dw.write((rng.random((n, h, w), dtype=np.float32) < rate).astype(np.uint8))
        print(f"wrote {frames} frames ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t0:.0f} s", flush=True)
        out = Path(tmp) / "out.mp4"
        t0 = time.perf_counter()
        # Peak RSS from the child's own VmHWM, polled: getrusage(RUSAGE_CHILDREN) would count the
        # pages the child shared with this (large) process between fork and exec.
        proc = subprocess.Popen([sys.executable, "-m", "spikegen", "reconstruct", str(path), "--method", "tfp",
                                 "--all", "-o", str(out)], stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        peak_kb = 0
        while proc.poll() is None:
            try:
                for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak_kb = max(peak_kb, int(line.split()[1]))
            except OSError:
                pass
            time.sleep(0.2)
        if proc.returncode != 0:
            raise SystemExit(f"spikegen reconstruct failed with exit code {proc.returncode}")
        print(f"spikegen reconstruct --all -o out.mp4: {frames} frames in {time.perf_counter() - t0:.0f} s, "
              f"peak RSS {peak_kb / 1024:.0f} MB (target < 500 MB), mp4 {out.stat().st_size / 2**20:.1f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per row (median; >= 5)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (default 1, like numpy; 0 = torch's default)")
    ap.add_argument("--long", type=int, default=0, metavar="FRAMES",
                    help="also run `spikegen reconstruct --all -o out.mp4` over a FRAMES-frame 250x400 "
                         "file and report its peak RSS (the target: 100000 frames under 500 MB)")
    args = ap.parse_args()
    if args.long:
        long_reconstruct_rss(args.long)
        return
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    repeats = max(args.repeats, 1 if args.quick else 5)

    h, w = 250, 400
    n_read = 300 if args.quick else 3000
    if_h, if_w, if_steps = (180, 320, 50) if args.quick else (720, 1280, 200)
    n_out, window, half = (20, 41, 20) if args.quick else (100, 41, 20)

    rng = np.random.default_rng(0)
    rows: list[tuple[str, float, float, str]] = []
    print(f"spikegen benchmark: torch {torch.__version__}, {torch.get_num_threads()} torch threads, "
          f"{os.cpu_count()} CPUs, median of {repeats} runs"
          f"{' (quick sizes)' if args.quick else ''}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        # --- read / write ------------------------------------------------------------------
        spikes = (rng.random((n_read, h, w), dtype=np.float32) < 0.2).astype(np.uint8)
        src = tmpd / "bench.dat"
        ref_write_dat(src, spikes)

        t_ours, ours = median_time(lambda: read_dat(src, h, w), repeats)
        t_ref, ref = median_time(lambda: ref_read_dat(src, h, w), repeats)
        assert np.array_equal(ours, ref) and np.array_equal(ours, spikes), "read mismatch"
        del ours, ref
        rows.append((f"read_dat {n_read}x{h}x{w}", t_ours, t_ref, "np.fromfile + unpackbits"))

        out_ours, out_ref = tmpd / "ours.dat", tmpd / "ref.dat"
        t_ours, _ = median_time(lambda: write_dat(out_ours, spikes, overwrite=True), repeats)
        t_ref, _ = median_time(lambda: ref_write_dat(out_ref, spikes), repeats)
        assert out_ours.read_bytes() == out_ref.read_bytes(), "write mismatch"
        rows.append((f"write_dat {n_read}x{h}x{w}", t_ours, t_ref, "packbits + tofile"))

        # --- peak memory of a full read (fresh interpreter, tracemalloc) ------------------
        res = subprocess.run(
            [sys.executable, "-c", PEAK_SCRIPT, str(src), str(h), str(w)],
            capture_output=True, text=True, check=True,
        )
        peak, nbytes = (int(v) for v in res.stdout.split())
        del spikes

        # --- reconstruction: 100 outputs from a 250x400 stream --------------------------------
        stream = read_dat(src, h, w, frames=slice(0, n_out + window - 1))
        centers = np.arange(window // 2, window // 2 + n_out)
        st = torch.from_numpy(stream)
        t_ours, ours = median_time(lambda: tfp(st, window, centers=centers), repeats)
        t_ref, ref = median_time(lambda: ref_tfp(stream, window, centers), repeats)
        assert np.allclose(ours.numpy(), ref, atol=1e-6), "tfp mismatch"
        rows.append((f"tfp w={window}, {n_out} frames {h}x{w}", t_ours, t_ref, "int16 cumsum"))

        t_ours, ours = median_time(
            lambda: tfi(st, centers=centers, max_half_window=half), repeats
        )
        t_ref, ref = median_time(lambda: ref_tfi(stream, centers, half), repeats)
        assert np.allclose(ours.numpy(), ref, atol=1e-6), "tfi mismatch"
        rows.append((f"tfi h={half}, {n_out} frames {h}x{w}", t_ours, t_ref, "frame scans"))

    # --- integrate-and-fire ---------------------------------------------------------------
    img = rng.random((if_h, if_w), dtype=np.float32)
    a0 = rng.random((if_h, if_w), dtype=np.float32)
    img_t = torch.from_numpy(img)[None, None]
    a0_t = torch.from_numpy(a0)
    t_ours, ours = median_time(
        lambda: integrate_and_fire(img_t, steps=if_steps, init=a0_t), repeats
    )
    t_ref, ref = median_time(lambda: ref_integrate_and_fire(img, a0, if_steps, 1.0), repeats)
    assert np.array_equal(ours[0].numpy(), ref), "integrate-and-fire mismatch"
    del ours, ref
    rows.append((f"integrate_and_fire {if_h}x{if_w}, {if_steps} steps", t_ours, t_ref,
                 "in-place numpy loop"))

    # --- table ------------------------------------------------------------------------------
    name_w = max(len(r[0]) for r in rows)
    print(f"\n{'operation':<{name_w}}  {'spikegen':>10}  {'numpy ref':>10}  {'ratio':>6}  reference")
    for name, a, b, note in rows:
        print(f"{name:<{name_w}}  {a * 1e3:>8.1f}ms  {b * 1e3:>8.1f}ms  {a / b:>6.2f}  {note}")
    print(f"\npeak memory of a full read_dat ({n_read}x{h}x{w}): {peak / 2**20:.1f} MiB traced for a "
          f"{nbytes / 2**20:.1f} MiB output = {peak / nbytes:.3f}x")


if __name__ == "__main__":
    main()
