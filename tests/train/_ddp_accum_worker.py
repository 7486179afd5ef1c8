"""Run by tests/train/test_mixed_precision.py through torchrun: trains a few steps (bf16 autocast,
gradient accumulation), then writes what each rank ended with: a digest of its weights, a digest
of the initial weights, its data position and the compute dtypes its layers ran in."""

import hashlib
import json
import sys

import torch

from spikegen.train import Trainer, load_config


def digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()


out = sys.argv[1]
cfg = load_config(None, sys.argv[2:])
trainer = Trainer(cfg, progress=False)
initial = digest(trainer.unwrapped)
seen: set[str] = set()


def record(module, args, output):
    if isinstance(output, torch.Tensor) and torch.is_autocast_enabled("cpu"):
        seen.add(str(output.dtype))


for m in trainer.unwrapped.modules():
    if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.Conv3d)):
        m.register_forward_hook(record)
trainer.fit()
with open(f"{out}/digest-rank{trainer.rank}.json", "w") as f:
    json.dump({"rank": trainer.rank, "world": trainer.world, "digest": digest(trainer.unwrapped), "initial": initial,
               "step": trainer.step, "data": trainer.stream.state(), "mixed_precision": trainer.acc.mixed_precision,
               "autocast_dtypes": sorted(seen)}, f)
