"""Training speed on the CPU: seconds per optimiser step of the tiny configs, and what helps.

For the autoencoder (``tiny-f4-d16``, batch 8, 128x128 crops) and the tiny SpikeGen
pretraining step (batch 16, 96x96, 8 spike frames, on the f4 latent) it times one full step
(forward, backward, AdamW) on synthetic batches -- no data loading -- for each variant:

- ``eager``: as the trainer runs it;
- ``channels_last``: the model and the batch in channels-last memory format;
- ``compile``: ``torch.compile`` of the training module (inductor; compile time excluded);

then the data pipeline alone (``SyntheticPairs`` samples/s, one process) against the step.
Losses of every variant are compared with eager on the same batch (same seed).

    python benchmarks/bench_train.py                 # 1 thread
    python benchmarks/bench_train.py --threads 2
    python benchmarks/bench_train.py --skip-compile  # without the (slow to build) compile rows
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def vae_module():
    from spikegen.models.vae import build_vae
    from spikegen.train.stages import VaeTrainModule

    torch.manual_seed(0)
    return VaeTrainModule(build_vae("tiny-f4-d16").train()), {"clean": torch.rand(8, 3, 128, 128, generator=torch.Generator().manual_seed(1))}


def spikegen_module():
    from spikegen.models import SpikeGen, SpikeGenConfig
    from spikegen.models.vae import build_vae
    from spikegen.train.stages import SpikeGenTrainModule

    torch.manual_seed(0)
    model = SpikeGen(SpikeGenConfig.preset("tiny"), vae=build_vae("tiny-f4-d16")).train()
    g = torch.Generator().manual_seed(1)
    batch = {"clean": torch.rand(16, 3, 96, 96, generator=g), "blurry": torch.rand(16, 3, 96, 96, generator=g),
             "spikes": (torch.rand(16, 8, 96, 96, generator=g) < 0.3).to(torch.uint8)}
    return SpikeGenTrainModule(model), batch


def time_steps(module, batch, *, variant: str, steps: int) -> tuple[float, float]:
    """(median seconds per step, loss of the first step)."""
    if variant == "channels_last":
        module = module.to(memory_format=torch.channels_last)
        batch = {k: (v.contiguous(memory_format=torch.channels_last) if v.ndim == 4 and v.is_floating_point() else v)
                 for k, v in batch.items()}
    fwd = torch.compile(module) if variant == "compile" else module
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    times, first = [], None
    for i in range(steps + 1):
        torch.manual_seed(123)  # the same noise draws in every variant
        t0 = time.perf_counter()
        loss = fwd(batch)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        dt = time.perf_counter() - t0
        if first is None:
            first = float(loss)
        if i > 0:  # the first step warms up (and compiles)
            times.append(dt)
    return statistics.median(times), first


def data_rate(n: int = 16) -> float:
    from spikegen.data import SyntheticPairs

    shared = Path(os.environ.get("SPIKEGEN_SHARED", REPO.parent / "shared"))
    ds = SyntheticPairs(shared / "data" / "images", 96, exclude=("mcmaster18",), frames=8, v_th=(1.0, 4.0), gain=(0.3, 1.0))
    ds.set_epoch(0)
    ds[0]
    t0 = time.perf_counter()
    for i in range(1, n + 1):
        ds[i]
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--skip-compile", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    variants = ["eager", "channels_last"] + ([] if args.skip_compile else ["compile"])
    print(f"torch {torch.__version__}, {args.threads} thread(s), median of {args.steps} steps after one warm-up step")
    print("| config | variant | s/step | vs eager | first loss |")
    print("|---|---|---|---|---|")
    for name, make in (("vae tiny-f4-d16, b8, 128px", vae_module), ("pretrain tiny (f4), b16, 96px", spikegen_module)):
        base = None
        for v in variants:
            if v == "channels_last" and make is spikegen_module:
                print(f"| {name} | {v} | n/a: the S3 encoder's Conv3d weights are 5-D | | |", flush=True)
                continue
            module, batch = make()
            try:
                s, loss = time_steps(module, batch, variant=v, steps=args.steps)
            except Exception as exc:  # e.g. no compiler for inductor
                print(f"| {name} | {v} | failed: {type(exc).__name__}: {str(exc)[:80]} | | |", flush=True)
                continue
            base = s if v == "eager" else base
            print(f"| {name} | {v} | {s:.3f} | {s / base:.2f} | {loss:.6f} |", flush=True)
    rate = data_rate()
    print(f"\ndata: SyntheticPairs 96px, 8 IF frames, blur bank: {rate:.1f} samples/s on one process "
          f"= {16 / rate:.2f} s per batch of 16 (a loader worker makes them beside the step)")


if __name__ == "__main__":
    main()
