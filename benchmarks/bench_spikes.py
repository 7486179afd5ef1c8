"""Speed of the spike primitives against the project's fixed plain-numpy references.

Prints a table (this is not a test). Every row times a spikegen function and the matching
reference of ``../shared/bench/reference_kernels.py`` (loaded from there at run time, never
copied: ``$SPIKEGEN_SHARED/bench`` or the ``shared`` folder next to the repository), checks
that the outputs agree, and prints the medians of ``--repeats`` runs (>= 5, more for calls of a
few milliseconds until the row has run 1 s; the two are timed
alternately, so both see the same machine load) and the ratio spikegen / reference (lower is
better; the goal is <= 1.0 on every row). The ratio of process CPU times is printed too: on a
busy machine it is the steadier figure (it leaves out the time the process waits for a core).

Rows (the workloads the references were measured on):

* read / write a ``.dat`` file of 3000 x 250 x 400 and of 200 x 720 x 1280 frames;
* integrate-and-fire of a static 720 x 1280 image for 200 steps, and of a 32-frame and a
  20-frame 250 x 400 video (per-step intensities);
* TFP (window 41) and TFI (half window 20) for 100 and for 20 output frames at 250 x 400 (the
  20-frame rows measure the per-call overhead of a kernel called per window).

Checks: read and write are byte-identical; integrate-and-fire spikes are identical; TFP agrees
within 1e-6 (spikegen multiplies the count by ``float32(1 / w)``, the reference divides by
``w``); TFI is identical wherever a spike lies on both sides of the centre. Where one side
has no spike the conventions differ: the reference (Spike-Zoo) uses the interval ``2 h`` (or
``2 h`` with no spike at all); spikegen places the missing spike just outside the searched
range (``d = next - (c - h)`` or ``(c + h + 1) - prev``, so ``d <= 2 h`` and the value is >=
the reference's) and outputs 0 when neither side has a spike. The counts of such pixels are
printed.

Usage::

    .venv/bin/python benchmarks/bench_spikes.py [--quick] [--repeats 5] [--threads 1]
    .venv/bin/python benchmarks/bench_spikes.py --threads 2        # the same with 2 torch threads
    .venv/bin/python benchmarks/bench_spikes.py --pipeline         # training-data pipeline

``--quick`` shrinks every size (a smoke run). Files go to ``--tmpdir`` (default ``/dev/shm``
when present): on a disk, write-back throttling of the kernel dominates the write rows.

torch runs on ``--threads`` intra-op threads (default 1, like the single-threaded numpy
references; 0 keeps torch's default). spikegen's CPU kernels are numpy (single-threaded) and
do not depend on it; ``read_dat``/``write_dat`` use extra threads only for 16 MiB or more and
only on cores that other processes leave idle (by the load average).

``--pipeline`` measures :class:`spikegen.data.SyntheticPairs` (blur + integrate-and-fire
spikes) at the tiny fine-tuning configuration (``configs/tiny_finetune.yaml``: 128 px crops,
batch 8, 8 spike frames): samples/s, the time of each part, and its share of one training step
(forward + backward + AdamW) of that stage on one thread.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from spikegen.spikes import native
from spikegen.spikes.io import read_dat, write_dat
from spikegen.spikes.reconstruct import tfi, tfp
from spikegen.spikes.simulate import integrate_and_fire

REPO = Path(__file__).resolve().parents[1]


def load_references():
    """The fixed reference kernels, imported from the shared folder (not part of the repo)."""
    shared = Path(os.environ["SPIKEGEN_SHARED"]) if os.environ.get("SPIKEGEN_SHARED") else REPO.parent / "shared"
    path = shared / "bench" / "reference_kernels.py"
    if not path.is_file():
        raise SystemExit(f"reference kernels not found at {path}: set SPIKEGEN_SHARED to the shared folder")
    spec = importlib.util.spec_from_file_location("reference_kernels", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod, path


# ----------------------------------------------------------------------------- timing
MIN_SECONDS = 1.0  # short rows repeat until both sides together ran this long (medians of
MAX_REPEATS = 301  # a handful of millisecond calls move by 10-30 % on a shared machine)


def paired_time(ours, ref, repeats: int):
    """Median wall and CPU times of ``ours`` and ``ref``, run alternately (after one warm-up
    run each, whose results are returned for the checks): ``repeats`` pairs, or more for short
    calls, until the pairs took ``MIN_SECONDS`` (at most ``MAX_REPEATS``)."""
    out_ours, out_ref = ours(), ref()
    wall = {0: [], 1: []}
    cpu = {0: [], 1: []}
    i = -1
    while True:
        i += 1
        if i >= repeats and (sum(wall[0]) + sum(wall[1]) >= MIN_SECONDS or i >= MAX_REPEATS):
            break
        order = (0, 1) if i % 2 == 0 else (1, 0)
        for k in order:
            fn = ours if k == 0 else ref
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    med = statistics.median
    return (med(wall[0]), med(wall[1]), med(cpu[0]), med(cpu[1])), out_ours, out_ref


def median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


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


def tfi_check(ours: np.ndarray, ref: np.ndarray, spikes: np.ndarray, half: int) -> str:
    """Identical where both sides have a spike; the documented conventions elsewhere."""
    t = spikes.shape[0]
    cs = np.zeros((t + 1, *spikes.shape[1:]), np.int16)
    np.cumsum(spikes, axis=0, dtype=np.int16, out=cs[1:])
    c = np.arange(half, t - half)
    before = (cs[c + 1] - cs[c - half + 1]) > 0  # a spike in c-h+1 .. c
    after = (cs[c + half + 1] - cs[c + 1]) > 0  # a spike in c+1 .. c+h
    both, neither = before & after, ~before & ~after
    one = ~both & ~neither
    assert np.array_equal(ours[both], ref[both]), "tfi mismatch where both sides have a spike"
    assert (ours[neither] == 0).all() and np.allclose(ref[neither], 1 / (2 * half)), "tfi: no-spike pixels"
    assert (ours[one] >= ref[one]).all(), "tfi: one-sided pixels"
    return f"{one.mean() * 100:.2f}% one-sided, {neither.mean() * 100:.3f}% no spike (conventions differ)"


def run_kernels(args, refs, rows, notes) -> None:
    rng = np.random.default_rng(0)
    repeats = args.repeats
    quick = args.quick
    io_sizes = [(300, 250, 400), (20, 720, 1280)] if quick else [(3000, 250, 400), (200, 720, 1280)]
    tmp_root = args.tmpdir or ("/dev/shm" if Path("/dev/shm").is_dir() else None)
    with tempfile.TemporaryDirectory(dir=tmp_root) as tmp:
        tmpd = Path(tmp)
        for t_n, h, w in io_sizes:
            spikes = (rng.random((t_n, h, w), dtype=np.float32) < 0.2).astype(np.uint8)
            src = tmpd / "bench.dat"
            refs.ref_write(src, spikes)
            times, ours, ref = paired_time(lambda: read_dat(src, h, w), lambda: refs.ref_read_u8(src, h, w), repeats)
            assert np.array_equal(ours, ref) and np.array_equal(ours, spikes), "read mismatch"
            del ours, ref
            rows.append((f"read_dat {t_n}x{h}x{w}", *times, "ref_read_u8"))
            out_ours, out_ref = tmpd / "ours.dat", tmpd / "ref.dat"
            times, _, _ = paired_time(lambda: write_dat(out_ours, spikes, overwrite=True),
                                      lambda: refs.ref_write(out_ref, spikes), repeats)
            assert out_ours.read_bytes() == out_ref.read_bytes(), "write mismatch"
            rows.append((f"write_dat {t_n}x{h}x{w}", *times, "ref_write"))
            if (t_n, h, w) == io_sizes[0]:
                res = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(src), str(h), str(w)],
                                     capture_output=True, text=True, check=True)
                peak, nbytes = (int(v) for v in res.stdout.split())
                notes.append(f"peak memory of a full read_dat ({t_n}x{h}x{w}, one thread): "
                             f"{peak / 2**20:.1f} MiB traced for a {nbytes / 2**20:.1f} MiB output = "
                             f"{peak / nbytes:.3f}x")
            del spikes

    # --- integrate-and-fire ---------------------------------------------------------------
    if_h, if_w, if_steps = (180, 320, 50) if quick else (720, 1280, 200)
    img = rng.random((if_h, if_w), dtype=np.float32)
    a0 = rng.random((if_h, if_w), dtype=np.float32)
    img_t, a0_t = torch.from_numpy(img)[None, None], torch.from_numpy(a0)
    times, ours, ref = paired_time(lambda: integrate_and_fire(img_t, steps=if_steps, init=a0_t),
                                   lambda: refs.ref_if_np(img, if_steps, 1.0, init=a0), repeats)
    assert np.array_equal(ours[0].numpy(), ref), "integrate-and-fire mismatch"
    del ours, ref
    rows.append((f"integrate_and_fire {if_h}x{if_w}, {if_steps} steps", *times, "ref_if_np"))
    h, w = 250, 400
    a1 = rng.random((h, w), dtype=np.float32)
    a1_t = torch.from_numpy(a1)
    for frames in (32, 20):
        video = rng.random((frames, h, w), dtype=np.float32) * np.float32(0.9)
        video_t = torch.from_numpy(video)
        times, ours, ref = paired_time(lambda: integrate_and_fire(video_t, init=a1_t),
                                       lambda: refs.ref_if_np(video, frames, 1.0, init=a1), repeats)
        assert np.array_equal(ours.numpy(), ref), "video integrate-and-fire mismatch"
        rows.append((f"integrate_and_fire video {frames}x{h}x{w}", *times, "ref_if_np"))

    # --- reconstruction ----------------------------------------------------------------------
    window, half = 41, 20
    for n_out in ((20,) if quick else (100, 20)):
        stream = (rng.random((n_out + 2 * half, h, w), dtype=np.float32) < 0.2).astype(np.uint8)
        st = torch.from_numpy(stream)
        centers = np.arange(half, half + n_out)
        times, ours, ref = paired_time(lambda: tfp(st, window, centers=centers),
                                       lambda: refs.ref_tfp_np(stream, half), repeats)
        diff = float(np.abs(ours.numpy() - ref).max())
        assert diff <= 1e-6, f"tfp mismatch ({diff})"
        rows.append((f"tfp w={window}, {n_out} frames {h}x{w}", *times, "ref_tfp_np"))
        times, ours, ref = paired_time(lambda: tfi(st, centers=centers, max_half_window=half),
                                       lambda: refs.ref_tfi_np(stream, half), repeats)
        note = tfi_check(ours.numpy(), ref, stream, half)
        rows.append((f"tfi h={half}, {n_out} frames {h}x{w}", *times, "ref_tfi_np (spikezoo)"))
        notes.append(f"tfi {n_out} frames: identical where both sides spike; {note}")


def run_pipeline(args) -> None:
    """SyntheticPairs at the tiny fine-tuning configuration, and one training step of it."""
    from spikegen.data import SyntheticPairs, collate_samples
    from spikegen.degrade import motion_blur, rgb_to_gray
    from spikegen.train.config import load_config
    from spikegen.train.schedule import param_groups
    from spikegen.train.stages import build_stage

    cfg = load_config(REPO / "configs" / "tiny_finetune.yaml")
    d, tc = cfg["data"], cfg["train"]
    size, frames, batch = int(d["size"]), int(d.get("frames", 8)), int(tc["batch_size"])
    ds = SyntheticPairs(d["root"], size, frames=frames, v_th=tuple(d["v_th"]), exclude=d.get("exclude", ()), seed=0)
    ds.set_epoch(0)
    n = max(batch, 2 * batch if args.quick else 8 * batch)
    for i in range(batch):  # warm-up (file cache, lazy imports)
        ds[i]
    t0 = time.perf_counter()
    samples = [ds[i % len(ds)] for i in range(n)]
    t_sample = (time.perf_counter() - t0) / n
    t_collate = median_time(lambda: collate_samples(samples[:batch]), args.repeats)
    clean = samples[0]["clean"]
    g = torch.Generator().manual_seed(0)
    t_blur = median_time(lambda: motion_blur(clean[None], kernels=8, size=40, generator=g), args.repeats)
    gray = rgb_to_gray(clean)[None]
    t_if = median_time(lambda: integrate_and_fire(gray, v_th=2.0, gain=0.6, steps=frames, generator=g), args.repeats)
    per_batch = t_sample * batch + t_collate

    stage = build_stage(cfg)
    module = stage.build_model()
    opt = torch.optim.AdamW(param_groups(module, tc["weight_decay"]), lr=tc["lr"])
    b = collate_samples(samples[:batch])

    def step():
        out = module(b)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()

    t_step = median_time(step, max(3, min(args.repeats, 5)))
    print(f"\ntraining-data pipeline ({REPO / 'configs' / 'tiny_finetune.yaml'}: {size} px crops, "
          f"batch {batch}, {frames} spike frames; {torch.get_num_threads()} torch thread(s))")
    print(f"  SyntheticPairs: {1 / t_sample:.1f} samples/s ({t_sample * 1e3:.1f} ms per sample: motion blur "
          f"{t_blur * 1e3:.1f} ms, integrate-and-fire {t_if * 1e3:.2f} ms, load/crop/rest "
          f"{(t_sample - t_blur - t_if) * 1e3:.1f} ms); collate {t_collate * 1e3:.2f} ms per batch")
    print(f"  one batch of data: {per_batch * 1e3:.0f} ms; one training step (forward + backward + AdamW): "
          f"{t_step * 1e3:.0f} ms; data / step = {per_batch / t_step * 100:.1f}% "
          f"(blur {t_blur * batch / t_step * 100:.1f}%, spikes {t_if * batch / t_step * 100:.2f}%)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per row (median; >= 5)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (default 1, like numpy; 0 = torch's default)")
    ap.add_argument("--tmpdir", default=None, help="folder for the .dat files (default /dev/shm when present)")
    ap.add_argument("--pipeline", action="store_true",
                    help="measure the SyntheticPairs training-data pipeline instead of the kernels")
    ap.add_argument("--long", type=int, default=0, metavar="FRAMES",
                    help="also run `spikegen reconstruct --all -o out.mp4` over a FRAMES-frame 250x400 "
                         "file and report its peak RSS (the target: 100000 frames under 500 MB)")
    args = ap.parse_args()
    if args.long:
        long_reconstruct_rss(args.long)
        return
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    args.repeats = max(args.repeats, 1 if args.quick else 5)
    if args.pipeline:
        run_pipeline(args)
        return
    refs, ref_path = load_references()
    try:
        load = "load average %.1f" % os.getloadavg()[0]
    except OSError:
        load = "load average unknown"
    print(f"spikegen benchmark: torch {torch.__version__}, numpy {np.__version__}, {torch.get_num_threads()} "
          f"torch thread(s), {os.cpu_count()} CPUs, {load}, median of >= {args.repeats} runs (short rows: >= 1 s of runs)"
          f"{' (quick sizes)' if args.quick else ''}\nreferences: {ref_path}\n"
          f"spikegen kernels: {native.status}", flush=True)
    rows: list[tuple] = []
    notes: list[str] = []
    run_kernels(args, refs, rows, notes)
    name_w = max(len(r[0]) for r in rows)
    print(f"\n{'operation':<{name_w}}  {'spikegen':>10}  {'reference':>10}  {'ratio':>6}  {'cpu ratio':>9}  reference")
    for name, a, b, ca, cb, ref_name in rows:
        print(f"{name:<{name_w}}  {a * 1e3:>8.1f}ms  {b * 1e3:>8.1f}ms  {a / b:>6.2f}  {ca / cb:>9.2f}  {ref_name}")
    worst = max(r[1] / r[2] for r in rows)
    print(f"\nworst ratio {worst:.2f}" + ("" if worst <= 1.0 else "  (> 1.0: rerun on a quieter machine to confirm)"))
    try:
        print(f"load average after: {os.getloadavg()[0]:.1f}")
    except OSError:
        pass
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
