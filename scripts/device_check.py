"""The GPU check behind ``scripts/device_check.sh`` (run that; see docs/training.md, "GPU check").

Stages, in this order (the measurements first, so a slow gsplat build cannot starve them), each
in its own process with a time limit inside one overall budget (default 450 s):

1. ``train_base``: ``Trainer`` on the ``base`` preset (width 768, 12 + 12 layers) with a random
   ``kl-f8-d16`` VAE, ``train.mixed_precision=bf16`` (Accelerate's bf16 autocast), 256x256
   synthetic pairs; images/s (median over the steps after the first two, data loading included)
   and ``torch.cuda.max_memory_allocated``; every loss must be finite.
2. ``bench_gpu``: ``benchmarks/bench_model.py``'s GPU section (``bench_gpu_base``: model-only
   forward + backward + AdamW under bf16 autocast, batch 16 at 256x256, and 100-step sampling).
3. ``nvs``: ``spikegen nvs prepare`` lego at low resolution -> ``nvs restore --method tfp`` ->
   ``nvs train`` (gsplat) for a few hundred iterations; test PSNR / SSIM / LPIPS; then the same
   training on the sharp views (the upper bound) when time is left.
4. ``cuda_tests``: ``pytest -m cuda``.

Results: ``OUT/device_check.json`` (everything), ``OUT/device_check.txt`` (a short table) and
``OUT/device_check.log`` (the stages' output), rewritten after every stage. Work files go to a
temporary folder (``--work``), not to ``OUT``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXIT_FAILED, EXIT_USAGE, EXIT_NO_CUDA, EXIT_MISSING = 1, 2, 3, 4
# import name -> distribution name; "required": every stage needs it
REQUIRED = {"numpy": "numpy", "scipy": "scipy", "PIL": "pillow", "diffusers": "diffusers", "accelerate": "accelerate",
            "safetensors": "safetensors", "yaml": "pyyaml", "typer": "typer", "tqdm": "tqdm",
            "huggingface_hub": "huggingface_hub"}
OPTIONAL = {"gsplat": "gsplat", "av": "av", "imageio": "imageio", "skimage": "scikit-image", "rich": "rich",
            "einops": "einops", "torchmetrics": "torchmetrics", "kornia": "kornia", "pytest": "pytest"}
STAGES = [("train_base", 120, 60), ("bench_gpu", 90, 40), ("nvs", 200, 60), ("cuda_tests", 240, 30)]  # name, cap, minimum


def _say(msg: str) -> None:
    print(f"device_check: {msg}", flush=True)


def _write_results(out: Path, res: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "device_check.json.tmp"
    tmp.write_text(json.dumps(res, indent=2, default=str) + "\n")
    os.replace(tmp, out / "device_check.json")
    (out / "device_check.txt").write_text(_table(res))


def _fmt(v, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec) if isinstance(v, (int, float)) else str(v)


def _table(res: dict) -> str:
    lines = [f"spikegen device check: {res.get('status')}  ({res.get('env', {}).get('gpu', 'no GPU')}, "
             f"torch {res.get('env', {}).get('torch')}, {res.get('seconds', 0):.0f} s)"]
    if res.get("reason"):
        lines.append(f"  {res['reason']}")
    lines.append(f"{'stage':<12} {'status':<9} {'seconds':>8}  result")
    for name, st in res.get("stages", {}).items():
        r = st.get("result") or {}
        if name == "train_base" and r:
            what = (f"{r.get('preset', 'base')} bf16 Trainer, batch {r.get('batch')} @ {r.get('size')}px: {_fmt(r.get('images_per_s'), '.1f')} img/s, "
                    f"peak {_fmt(r.get('peak_mem_gib'))} GiB, last loss {_fmt(r.get('last_loss'), '.4f')}")
        elif name == "bench_gpu" and r:
            what = (f"base bf16 model only, batch {r.get('batch')} @ {r.get('size')}px: {_fmt(r.get('images_per_s'), '.1f')} img/s, "
                    f"{_fmt(r.get('tokens_per_s'), '.0f')} tokens/s, peak {_fmt(r.get('peak_mem_gib'))} GiB, "
                    f"sample 100 steps {_fmt(r.get('sample_100_steps_s'), '.3f')} s")
        elif name == "nvs" and r:
            parts = ([f"tfp restore PSNR {_fmt(r.get('restore_tfp_psnr_vs_sharp'))} dB vs sharp"]
                     if r.get("restore_tfp_psnr_vs_sharp") is not None else []) + [f"3DGS on {k}: PSNR {_fmt(m.get('psnr'))} dB SSIM {_fmt(m.get('ssim'), '.3f')}"
                     for k, m in (r.get("metrics") or {}).items() if m]
            what = (f"lego {r.get('resolution')}px, {r.get('iterations')} it: " + "; ".join(parts)) if parts else ""
        elif name == "cuda_tests" and r:
            what = f"{r.get('summary', '')}" + (f"; failed: {', '.join(r['failed'][:4])}" if r.get("failed") else "")
        else:
            what = ""
        if st.get("error"):
            what = (what + "; " if what else "") + st["error"].splitlines()[0][:160]
        lines.append(f"{name:<12} {st.get('status', '?'):<9} {_fmt(st.get('seconds'), '8.1f')}  {what}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- environment
def _missing(names: dict) -> list[str]:
    return [mod for mod in names if importlib.util.find_spec(mod) is None]


def _install_wheels(wheels: Path, wanted: list[str], log) -> dict:
    """pip install --no-index --find-links WHEELS for the wanted distributions found there."""
    files = [p.name.lower().replace("-", "_") for p in wheels.glob("*.whl")] + \
            [p.name.lower().replace("-", "_") for p in wheels.glob("*.tar.gz")]
    have = [d for d in wanted if any(f.startswith(d.lower().replace("-", "_") + "_") for f in files)]
    info = {"folder": str(wheels), "files": len(files), "requested": wanted, "installed": have, "ok": True}
    if not have:
        return info
    base = [sys.executable, "-m", "pip", "install", "--no-index", "--find-links", str(wheels), "--no-cache-dir", "-q"]
    r = subprocess.run(base + have, capture_output=True, text=True)
    log.write(f"$ pip install {' '.join(have)}\n{r.stdout}{r.stderr}\n")
    if r.returncode != 0:  # a dependency is not in the folder: take the packages alone
        r = subprocess.run(base + ["--no-deps"] + have, capture_output=True, text=True)
        log.write(f"$ pip install --no-deps {' '.join(have)}\n{r.stdout}{r.stderr}\n")
        info["no_deps"] = True
    info["ok"] = r.returncode == 0
    if r.returncode != 0:
        info["error"] = (r.stderr or r.stdout).strip()[-500:]
    importlib.invalidate_caches()
    return info


def _shared_dir(arg: Path | None) -> Path | None:
    cands = [arg, os.environ.get("SPIKEGEN_SHARED"), ROOT / "shared", ROOT.parent / "shared"]
    for c in cands:
        if c and (Path(c) / "data").is_dir():
            return Path(c).resolve()
    return None


# ----------------------------------------------------------------------------- stages (child processes)
def stage_train_base(args) -> dict:
    import numpy as np
    import torch
    from PIL import Image

    from spikegen.train import Trainer, load_config

    work = Path(args.work)
    imgs = work / "images256"
    imgs.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(48):  # smooth random scenes with some texture, 288x288 (cropped to 256)
        yy, xx = np.mgrid[0:288, 0:288] / 288.0
        base = rng.random(3) * xx[..., None] + rng.random(3) * yy[..., None]
        arr = np.clip(0.5 * base + 0.15 * rng.random((288, 288, 3)), 0, 1)
        Image.fromarray((arr * 255).astype(np.uint8)).save(imgs / f"im{i:02d}.png")
    run = work / "train_base"
    shutil.rmtree(run, ignore_errors=True)  # a rerun with the same --work starts afresh
    steps, batch = int(args.train_steps), int(args.train_batch)
    cfg = load_config(None, [
        "stage=pretrain", f"model.preset={args.preset}", f"model.vae={args.vae}", f"data.root={imgs}", f"data.size={args.size}",
        "data.frames=8", f"data.num_workers={min(8, os.cpu_count() or 1)}", f"train.batch_size={batch}",
        f"train.steps={steps}", "train.mixed_precision=bf16", "train.ema=0.9999", f"log.dir={run}", "log.every=1",
        "log.checkpoint_every=0", "log.keep=1",
    ])
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    tr = Trainer(cfg, progress=False)
    cuda = torch.cuda.is_available()
    assert tr.acc.mixed_precision == "bf16" and tr.acc.device.type == ("cuda" if cuda else "cpu"), (tr.acc.mixed_precision, tr.acc.device)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    last = tr.fit()
    seconds = time.perf_counter() - t
    import csv

    with open(run / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    rates = [float(r["samples_per_s"]) for r in rows[2:]] or [float(r["samples_per_s"]) for r in rows]
    losses = [float(r["loss"]) for r in rows]
    finite = all(v == v and abs(v) != float("inf") for v in losses)
    res = {"steps": steps, "batch": batch, "size": args.size, "preset": args.preset, "images_per_s": statistics.median(rates),
           "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None, "fit_seconds": seconds,
           "losses": losses, "last_loss": last.get("loss"), "params": tr.unwrapped.model.num_parameters(),
           "param_dtypes": sorted({str(p.dtype) for p in tr.unwrapped.parameters()})}
    if not finite:
        raise RuntimeError(f"non-finite bf16 losses: {losses}")
    return res


def stage_bench_gpu(args) -> dict:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_model

    return bench_model.bench_gpu_base(repeats=3)


def _cli(argv: list[str], log_path: Path, timeout: float) -> str:
    cmd = [sys.executable, "-m", "spikegen", *argv]
    with open(log_path, "a") as log:
        log.write(f"$ spikegen {' '.join(argv)}\n")
        log.flush()
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
        log.write(r.stdout + "\n")
    if r.returncode != 0:
        raise RuntimeError(f"spikegen {' '.join(argv[:2])} exited {r.returncode}: {r.stdout.strip()[-400:]}")
    return r.stdout


def stage_nvs(args) -> dict:
    scene = Path(args.scene) if args.scene else None
    if scene is None or not (scene / "transforms_train.json").is_file():
        raise FileNotFoundError(f"no lego scene at {scene} (give --scene, or --shared with data/nvs/lego)")
    work = Path(args.work) / "nvs"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    log = work / "cli.log"
    deadline = time.monotonic() + float(args.stage_timeout) - 5
    res: dict = {"scene": str(scene), "resolution": args.nvs_resolution, "iterations": args.nvs_iterations,
                 "metrics": {}, "seconds": {}}
    steps = [
        ("prepare", ["nvs", "prepare", str(scene), "-o", str(work / "lego"), "--resolution", str(args.nvs_resolution),
                     "--no-progress"]),
        ("restore_tfp", ["nvs", "restore", str(work / "lego"), "-o", str(work / "lego_tfp"), "--method", "tfp",
                         "--no-progress"]),
        ("train_tfp", ["nvs", "train", str(work / "lego_tfp"), "--iterations", str(args.nvs_iterations),
                       "--init-points", "20000", "--no-progress"]),
        ("train_sharp", ["nvs", "train", str(work / "lego" / "sharp"), "--iterations", str(args.nvs_iterations),
                         "--init-points", "20000", "--no-progress"]),
    ]
    try:
        for name, argv in steps:
            left = deadline - time.monotonic()
            if name == "train_sharp" and left < 30:
                res["skipped"] = "train_sharp (out of time)"
                break
            t = time.perf_counter()
            text = _cli(argv, log, timeout=max(left, 1))
            res["seconds"][name] = round(time.perf_counter() - t, 1)
            if name == "restore_tfp":
                m = re.search(r"PSNR ([\d.]+|inf) dB \(blurry ([\d.]+|inf)\)", text)
                if m:
                    res["restore_tfp_psnr_vs_sharp"], res["blurry_psnr_vs_sharp"] = float(m.group(1)), float(m.group(2))
            if name.startswith("train_"):
                folder = (work / "lego_tfp" if name == "train_tfp" else work / "lego" / "sharp") / "3dgs"
                res["metrics"][name.removeprefix("train_")] = json.loads((folder / "metrics.json").read_text())["mean"]
                run = json.loads((folder / "run.json").read_text())
                res.setdefault("gaussians", {})[name.removeprefix("train_")] = (run.get("train") or {}).get("gaussians")
    except Exception as exc:
        exc.partial = res  # what ran before the failure still reaches the results file
        raise
    finally:
        res["cli_log_tail"] = log.read_text()[-2000:] if log.is_file() else ""
    return res


def stage_cuda_tests(args) -> dict:
    cmd = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider", "-rfE", str(ROOT / "tests")]
    r = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=max(float(args.stage_timeout) - 5, 1))
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    summary = next((ln.strip("= ") for ln in reversed(lines) if re.search(r"\d+ (passed|failed|error|skipped|deselected)", ln)), "")
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|errors?|skipped|deselected)", summary)}
    failed = [ln.split()[1] for ln in lines if ln.startswith(("FAILED", "ERROR"))]
    res = {"summary": summary, "counts": counts, "failed": failed, "returncode": r.returncode,
           "output_tail": r.stdout[-3000:]}
    if r.returncode != 0 or not counts.get("passed"):
        raise RuntimeError(f"pytest -m cuda: {summary or 'no summary'} (exit {r.returncode})" +
                           (f"; failed: {', '.join(failed[:6])}" if failed else ""))
    return res


def run_stage(args) -> int:
    """Child-process entry: run one stage, write its result (or error) as JSON."""
    fn = globals()[f"stage_{args.stage}"]
    out = Path(args.work) / f"{args.stage}.json"
    try:
        res = {"ok": True, "result": fn(args)}
    except BaseException as exc:  # noqa: BLE001 - the parent reports whatever broke
        import traceback

        traceback.print_exc()
        res = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "result": getattr(exc, "partial", None)}
    out.write_text(json.dumps(res, indent=2, default=str))
    return 0 if res["ok"] else 1


# ----------------------------------------------------------------------------- driver
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/device_check.sh", description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="results folder (device_check.json, device_check.txt, device_check.log)")
    ap.add_argument("--wheels", type=Path, default=None, help="install gsplat (and missing dependencies) from this wheel folder")
    ap.add_argument("--shared", type=Path, default=None, help="shared data folder (holds data/nvs/lego)")
    ap.add_argument("--scene", type=Path, default=None, help="the lego scene (default: SHARED/data/nvs/lego)")
    ap.add_argument("--work", type=Path, default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--budget", type=float, default=450.0, help="seconds for all stages together (default 450)")
    ap.add_argument("--only", default=None, help="comma-separated stages to run (default: all)")
    ap.add_argument("--train-steps", type=int, default=8)
    ap.add_argument("--train-batch", type=int, default=16)
    ap.add_argument("--nvs-resolution", type=int, default=100)
    ap.add_argument("--nvs-iterations", type=int, default=300)
    ap.add_argument("--preset", default="base", help=argparse.SUPPRESS)  # smaller runs to test the script itself
    ap.add_argument("--vae", default="preset:kl-f8-d16", help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, default=256, help=argparse.SUPPRESS)
    ap.add_argument("--allow-cpu", action="store_true", help=argparse.SUPPRESS)  # plumbing test without CUDA
    ap.add_argument("--stage", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--stage-timeout", type=float, default=600.0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.stage:
        return run_stage(args)

    t0 = time.monotonic()
    res: dict = {"status": "running", "started": time.strftime("%Y-%m-%d %H:%M:%S"), "argv": sys.argv[1:],
                 "env": {"python": platform.python_version(), "host": platform.node()}, "stages": {}}
    # 1. CUDA, before anything else: a CPU machine is told so in seconds
    try:
        import torch
    except ImportError as exc:
        res.update(status="no-torch", reason=f"torch does not import: {exc}", seconds=time.monotonic() - t0)
        _write_results(args.out, res)
        print(f"device_check: torch does not import ({exc}); nothing was run", file=sys.stderr)
        return EXIT_NO_CUDA
    res["env"].update(torch=torch.__version__, torch_cuda=torch.version.cuda)
    if not torch.cuda.is_available() and not args.allow_cpu:
        why = ("this torch build has no CUDA support" if torch.version.cuda is None
               else f"torch was built for CUDA {torch.version.cuda} but finds no usable GPU or driver")
        reason = (f"no CUDA device: torch.cuda.is_available() is False ({why}; torch {torch.__version__}). "
                  "This check measures the GPU paths and must run on a machine with a CUDA GPU; nothing was run. "
                  "On a CPU machine the same paths are covered by `pytest tests/train/test_mixed_precision.py`.")
        res.update(status="no-cuda", reason=reason, seconds=time.monotonic() - t0)
        _write_results(args.out, res)
        print(f"device_check: {reason}", file=sys.stderr)
        return EXIT_NO_CUDA
    cap = torch.cuda.get_device_capability(0) if torch.cuda.is_available() else (0, 0)
    if torch.cuda.is_available():
        res["env"].update(gpu=torch.cuda.get_device_name(0), capability=f"{cap[0]}.{cap[1]}", gpus=torch.cuda.device_count(),
                          gpu_mem_gib=round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1))
    args.out.mkdir(parents=True, exist_ok=True)
    log = open(args.out / "device_check.log", "w")
    _say(f"{res['env'].get('gpu', 'no GPU (--allow-cpu)')} (sm {res['env'].get('capability')}), torch {torch.__version__}, "
         f"CUDA {torch.version.cuda}")

    # 2. packages: install what is missing from the wheel folder
    if args.wheels is not None:
        if not args.wheels.is_dir():
            print(f"device_check: --wheels {args.wheels}: no such folder", file=sys.stderr)
            return EXIT_USAGE
        wanted = ["gsplat"] + [REQUIRED[m] for m in _missing(REQUIRED)] + [OPTIONAL[m] for m in _missing(OPTIONAL) if m != "gsplat"]
        res["wheels"] = _install_wheels(args.wheels, list(dict.fromkeys(wanted)), log)
        _say(f"wheels: installed {res['wheels']['installed'] or 'nothing'} from {args.wheels}")
    missing_req, missing_opt = _missing(REQUIRED), _missing(OPTIONAL)
    res["env"].update(missing_required=[REQUIRED[m] for m in missing_req], missing_optional=[OPTIONAL[m] for m in missing_opt])
    if missing_req:
        reason = (f"required Python packages are missing: {', '.join(REQUIRED[m] for m in missing_req)}; "
                  "pass --wheels DIR with their wheels (docs/training.md, 'GPU check')")
        res.update(status="missing-packages", reason=reason, seconds=time.monotonic() - t0)
        _write_results(args.out, res)
        print(f"device_check: {reason}", file=sys.stderr)
        return EXIT_MISSING

    # 3. the stages, each in its own process
    shared = _shared_dir(args.shared)
    scene = args.scene or (shared / "data" / "nvs" / "lego" if shared else None)
    work = args.work or Path(tempfile.mkdtemp(prefix="spikegen-device-check-"))
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if cap[0]:
        env.setdefault("TORCH_CUDA_ARCH_LIST", f"{cap[0]}.{cap[1]}")  # gsplat's JIT build: this GPU only
    env.setdefault("MAX_JOBS", str(os.cpu_count() or 4))
    env.setdefault("TORCH_EXTENSIONS_DIR", str(work / "torch_extensions"))  # one gsplat build for all stages
    if shared:
        env["SPIKEGEN_SHARED"] = str(shared)
    res["env"].update(shared=str(shared) if shared else None, scene=str(scene) if scene else None, work=str(work))
    only = set(args.only.split(",")) if args.only else None
    deadline = t0 + float(args.budget)
    for name, cap_s, minimum in STAGES:
        if only and name not in only:
            continue
        left = deadline - time.monotonic()
        timeout = min(cap_s, left - 3) if name != "cuda_tests" else left - 3
        if timeout < minimum:
            res["stages"][name] = {"status": "skipped", "seconds": 0.0, "error": f"out of time ({left:.0f} s of the budget left)"}
            continue
        _say(f"{name}: up to {timeout:.0f} s")
        cmd = [sys.executable, str(Path(__file__).resolve()), str(args.out), "--stage", name, "--stage-timeout", str(timeout),
               "--work", str(work), "--train-steps", str(args.train_steps), "--train-batch", str(args.train_batch),
               "--nvs-resolution", str(args.nvs_resolution), "--nvs-iterations", str(args.nvs_iterations),
               "--preset", args.preset, "--vae", args.vae, "--size", str(args.size)]
        if scene:
            cmd += ["--scene", str(scene)]
        log.write(f"\n===== {name} =====\n")
        log.flush()
        ts = time.monotonic()
        (work / f"{name}.json").unlink(missing_ok=True)
        try:
            p = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT, timeout=timeout)
            st = json.loads((work / f"{name}.json").read_text()) if (work / f"{name}.json").is_file() else \
                {"ok": False, "error": f"the stage exited {p.returncode} without a result"}
            status = "passed" if st.get("ok") else "failed"
        except subprocess.TimeoutExpired:
            st, status = {"ok": False, "error": f"timed out after {timeout:.0f} s"}, "timeout"
        res["stages"][name] = {"status": status, "seconds": round(time.monotonic() - ts, 1), "result": st.get("result"),
                               **({"error": st["error"]} if st.get("error") else {})}
        _say(f"{name}: {status} in {res['stages'][name]['seconds']} s" + (f" ({st['error'][:200]})" if st.get("error") else ""))
        res["seconds"] = time.monotonic() - t0
        _write_results(args.out, res)
    log.close()
    ok = all(s["status"] == "passed" for s in res["stages"].values())
    res.update(status="passed" if ok else "failed", seconds=time.monotonic() - t0)
    _write_results(args.out, res)
    print(_table(res), end="")
    return 0 if ok else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
