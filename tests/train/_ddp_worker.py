"""Run by tests through torchrun: trains a few steps, writes each rank's weight digest."""

import hashlib
import json
import sys

import torch

from spikegen.train import Trainer, load_config

out = sys.argv[1]
cfg = load_config(None, sys.argv[2:])
trainer = Trainer(cfg, progress=False)
trainer.fit()
h = hashlib.sha256()
for k, v in sorted(trainer.unwrapped.state_dict().items()):
    h.update(k.encode())
    h.update(v.detach().float().cpu().numpy().tobytes())
with open(f"{out}/digest-rank{trainer.rank}.json", "w") as f:
    json.dump({"rank": trainer.rank, "world": trainer.world, "digest": h.hexdigest(), "step": trainer.step}, f)
