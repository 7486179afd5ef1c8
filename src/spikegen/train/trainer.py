"""One trainer for every stage (VAE, pretraining, fine-tuning), on Hugging Face Accelerate.

The same code runs on one CPU, on N GPUs (``accelerate launch`` or ``torchrun``) and on several
nodes. What differs per stage (model, data, losses, previews, exported weights) lives in
:mod:`spikegen.train.stages`; this file owns the loop: AdamW with the paper's schedule,
gradient accumulation and clipping, EMA, bf16 autocast on GPU, atomic checkpoints with exact
resume, CSV (and TensorBoard) logs, a progress bar and preview grids.

Exact resume: the data order is a pure function of ``(seed, epoch)``, every sample is seeded
by ``(seed, epoch, index)``, the learning rate is a pure function of the step and the RNG
states of every rank are saved, so a run stopped at any checkpoint and resumed yields the same
losses as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from spikegen.errors import CheckpointError, OutputExistsError, SpikeGenError
from spikegen.image import make_grid, save_image
from spikegen.train import checkpoint as ckpt_io
from spikegen.train.ema import EMA
from spikegen.train.schedule import lr_at, param_groups
from spikegen.train.stages import build_stage


def epoch_batches(n: int, batch: int, world: int, rank: int, seed: int, epoch: int) -> list[list[int]]:
    """This rank's index batches for one epoch: a seeded permutation, ``drop_last``.

    Every rank sees a disjoint slice of each global batch (``batch * world`` samples). When the
    dataset is smaller than one global batch the permutation is repeated.
    """
    if n <= 0:
        raise ValueError("the dataset is empty")
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
    gb = batch * world
    perm = torch.randperm(n, generator=g)
    if n < gb:
        perm = perm.repeat(math.ceil(gb / n))[:gb]
    nb = perm.numel() // gb
    return [perm[b * gb + rank * batch: b * gb + (rank + 1) * batch].tolist() for b in range(nb)]


class _EpochIndexed(Dataset):
    """A dataset whose indices are ``(epoch, index)``: the epoch is selected where the sample is
    made (in the loader worker), so one long-lived loader can run through many epochs."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset
        self._epoch: int | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        if epoch != self._epoch and hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        self._epoch = epoch
        return self.dataset[index]


class _EpochBatches:
    """Endless ``(epoch, index)`` batches from epoch ``epoch``, batch ``position`` on."""

    def __init__(self, n: int, batch: int, world: int, rank: int, seed: int, epoch: int, position: int):
        self.args, self.epoch, self.position = (n, batch, world, rank, seed), epoch, position

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        n, batch, world, rank, seed = self.args
        epoch, position = self.epoch, self.position
        while True:
            for b in epoch_batches(n, batch, world, rank, seed, epoch)[position:]:
                yield [(epoch, i) for i in b]
            epoch, position = epoch + 1, 0


class DataStream:
    """Endless batches from a map-style dataset, resumable at ``(epoch, batch)``.

    One ``DataLoader`` serves every epoch (its workers start once, not once per epoch): each
    index carries its epoch, which the worker selects before making the sample.
    """

    def __init__(self, dataset: Dataset, *, batch: int, world: int, rank: int, seed: int,
                 num_workers: int, collate_fn, epoch: int = 0, position: int = 0):
        self.dataset, self.batch, self.world, self.rank = dataset, batch, world, rank
        self.seed, self.num_workers, self.collate_fn = seed, num_workers, collate_fn
        self.epoch, self.position = epoch, position
        self._it: Iterator | None = None
        self._n = len(epoch_batches(len(dataset), batch, world, rank, seed, 0))  # batches per epoch

    def _start(self) -> None:
        loader = DataLoader(
            _EpochIndexed(self.dataset),
            batch_sampler=_EpochBatches(len(self.dataset), self.batch, self.world, self.rank, self.seed,
                                        self.epoch, self.position),
            num_workers=self.num_workers, collate_fn=self.collate_fn,
            generator=torch.Generator().manual_seed(self.seed),
        )
        self._it = iter(loader)

    def __next__(self) -> Any:
        if self._it is None:
            self._start()
        item = next(self._it)
        self.position += 1
        if self.position == self._n:
            self.epoch, self.position = self.epoch + 1, 0
        return item

    def state(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


class Trainer:
    """Runs one training stage described by a config dict (see :mod:`spikegen.train.config`).

    Example:
        >>> from spikegen.train import Trainer, load_config
        >>> Trainer(load_config("configs/tiny_pretrain.yaml", ["train.steps=10"])).fit()  # doctest: +SKIP
    """

    def __init__(self, cfg: dict, *, resume: str | os.PathLike | bool | None = None, progress: bool = True,
                 export_only: bool = False, overwrite: bool = False):
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs

        self.cfg = cfg
        tc = cfg["train"]
        mp = tc.get("mixed_precision", "auto")
        if mp is False or mp is None:  # YAML reads a bare `no` as False
            mp = "no"
        if mp == "auto":
            mp = "bf16" if torch.cuda.is_available() else "no"
        # Without CUDA, several processes (torchrun / accelerate launch) train on CPUs over gloo.
        multi_cpu = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
        from accelerate.state import AcceleratorState

        if AcceleratorState._shared_state.get("_mixed_precision", mp) != mp:
            # Accelerate keeps one process-wide state and refuses a second Accelerator with another
            # precision (a notebook, the test suite): reset it (the process group is kept).
            AcceleratorState._reset_state()
        self.acc = Accelerator(mixed_precision=mp, cpu=multi_cpu, kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=False)])
        self.rank, self.world = self.acc.process_index, self.acc.num_processes
        self.is_main = self.acc.is_main_process
        self.out = Path(cfg["log"]["dir"])
        self.ckpt_root = self.out / "checkpoints"
        self.progress = progress
        # export_only: read a checkpoint to export it; never touch the run folder (which may
        # belong to a run still training), so its log is not truncated to the checkpoint.
        self.export_only = export_only
        if resume and overwrite:
            raise SpikeGenError("--resume and --overwrite exclude each other: continue the run, or start it afresh")
        if not resume and not export_only:
            self._claim_run_folder(overwrite)

        seed = int(cfg.get("seed", 0))
        torch.manual_seed(seed)  # identical initial weights on every rank
        self.stage = build_stage(cfg, resuming=bool(resume))
        model = self.stage.build_model()
        self.dataset = self.stage.build_dataset()
        opt = torch.optim.AdamW(param_groups(model, tc["weight_decay"]), lr=tc["lr"], betas=tuple(tc["betas"]))
        self.model, self.opt = self.acc.prepare(model, opt)
        self.ema = EMA(self.unwrapped, tc["ema"]) if tc.get("ema") else None
        torch.manual_seed(seed + 7919 * (self.rank + 1))  # per-rank noise streams
        gb = tc.get("global_batch_size")
        if gb:
            per = int(gb) // (self.world * int(tc.get("grad_accum", 1)))
            if per < 1 or per * self.world * int(tc.get("grad_accum", 1)) != int(gb):
                raise ValueError(f"global_batch_size {gb} is not divisible by processes ({self.world}) x grad_accum")
            tc["batch_size"] = per
        if tc.get("epochs"):
            per_epoch = len(epoch_batches(len(self.dataset), tc["batch_size"], self.world, 0, seed, 0))
            tc["steps"] = int(tc["epochs"]) * max(per_epoch // int(tc.get("grad_accum", 1)), 1)
        self.step = 0
        data_state = {"epoch": 0, "position": 0}
        if resume:
            data_state = self._resume(resume)
        self.stream = DataStream(
            self.dataset, batch=tc["batch_size"], world=self.world, rank=self.rank, seed=seed,
            num_workers=int(cfg["data"].get("num_workers", 0)), collate_fn=self.stage.collate, **data_state,
        )

    @property
    def unwrapped(self) -> torch.nn.Module:
        return self.acc.unwrap_model(self.model)

    #: What a run folder holds; an existing one belongs to a run and is never silently replaced.
    RUN_FILES = ("checkpoints", "final", "previews", "log.csv", "config.json", "tensorboard")

    def _claim_run_folder(self, overwrite: bool) -> None:
        """Refuse to start a fresh run in a folder that holds one, unless ``overwrite``: then
        its run files (and only those) are removed first, on the main process."""
        present = [n for n in self.RUN_FILES if (self.out / n).exists()]
        if present and not overwrite:
            raise OutputExistsError(
                f"{self.out} holds a training run ({', '.join(present)}); pass --resume to continue it, "
                "--overwrite to start afresh (its checkpoints and log are deleted), or choose another log.dir")
        if present and self.is_main:
            for n in present:
                p = self.out / n
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        self.acc.wait_for_everyone()

    # ------------------------------------------------------------------ checkpoints
    def _resume(self, resume: str | os.PathLike | bool) -> dict:
        where = self.out if resume is True else Path(resume)
        ck = ckpt_io.load_checkpoint(where, rank=self.rank)
        model_sd = self.unwrapped.state_dict()
        ckpt_io.check_state_dict("model weights", ck["model"], model_sd, ck["dir"])
        if self.ema is not None:
            if ck["ema"] is None:
                raise CheckpointError(f"{ck['dir']}: has no EMA weights but this run uses EMA")
            ckpt_io.check_state_dict("EMA weights", ck["ema"], self.ema.shadow, ck["dir"])
        opt_groups = self.opt.state_dict()["param_groups"]
        got_groups = ck["optimizer"]["param_groups"]
        if [len(g["params"]) for g in got_groups] != [len(g["params"]) for g in opt_groups]:
            raise CheckpointError(f"{ck['dir']}: optimiser state does not match this model's parameter groups")
        st = ck["state"]
        if st.get("world_size", 1) != self.world:
            raise CheckpointError(
                f"{ck['dir']}: written by {st.get('world_size')} processes, resuming with {self.world}; "
                "exact resume needs the same number of processes")
        if ck["rng"] is None:
            raise CheckpointError(f"{ck['dir']}: no RNG state for rank {self.rank}")
        # Everything checked: apply.
        self.unwrapped.load_state_dict(ck["model"])
        if self.ema is not None:
            self.ema.load_state_dict(ck["ema"])
        self.opt.load_state_dict(ck["optimizer"])
        ckpt_io.set_rng_state(*ck["rng"])
        self.step = int(st["step"])
        old_total = ((st.get("config") or {}).get("train") or {}).get("steps")
        new_total = self.cfg["train"]["steps"]
        if self.is_main and not self.export_only and old_total is not None and int(old_total) != int(new_total):
            print(f"warning: train.steps changed from {old_total} to {new_total}: the learning-rate schedule "
                  f"(warm-up and cosine) now spans {new_total} steps, so this continues the run but is not an "
                  "exact resume of either schedule")
        if self.is_main and not self.export_only:
            self._truncate_log(self.out / "log.csv")
            print(f"resumed from {ck['dir']} at step {self.step}")
        return st["data"]

    def _truncate_log(self, path: Path) -> None:
        """Drop log rows written after the checkpoint we resume from (they will be redone)."""
        if not path.is_file():
            return
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        if not rows:
            return
        kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= self.step]
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", newline="") as f:
            csv.writer(f).writerows(kept)
        os.replace(tmp, path)

    def save_checkpoint(self) -> None:
        w = ckpt_io.CheckpointWriter(self.ckpt_root, self.step)
        w.begin(self.is_main)
        self.acc.wait_for_everyone()
        w.write_rank(self.rank)
        if self.is_main:
            w.write_main(
                model=self.unwrapped.state_dict(), optimizer=self.opt,
                ema=self.ema.state_dict() if self.ema else None,
                state={"step": self.step, "data": self.stream.state(), "world_size": self.world, "config": self.cfg},
            )
        self.acc.wait_for_everyone()
        if self.is_main:
            w.finish(keep=self.cfg["log"].get("keep"))
        self.acc.wait_for_everyone()

    # ------------------------------------------------------------------ loop
    def fit(self) -> dict:
        tc, lc = self.cfg["train"], self.cfg["log"]
        total, accum = int(tc["steps"]), int(tc.get("grad_accum", 1))
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.json").write_text(json.dumps(self.cfg, indent=1))
        log_path = self.out / "log.csv"
        writer = self._tensorboard()
        bar = None
        if self.is_main and self.progress:
            bar = tqdm(total=total, initial=self.step, desc=f"train {self.cfg['stage']}", dynamic_ncols=True)
        last = {}
        t0, samples = time.perf_counter(), 0
        fit_t0, fit_cpu0 = time.perf_counter(), time.process_time()
        self.model.train()
        while self.step < total:
            lr = lr_at(self.step, total, lr=tc["lr"], warmup=tc["warmup"], start_lr=tc["start_lr"], min_lr=tc["min_lr"])
            for g in self.opt.param_groups:
                g["lr"] = lr
            parts: dict[str, float] = {}
            batch = None
            for micro in range(accum):
                batch = _to_device(next(self.stream), self.acc.device)
                sync = micro == accum - 1
                ctx = contextlib.nullcontext() if sync else self.acc.no_sync(self.model)
                with ctx:
                    with self.acc.autocast():
                        losses = self.model(batch)
                    self.acc.backward(losses["loss"] / accum)
                for k, v in losses.items():
                    if isinstance(v, torch.Tensor) and v.ndim == 0:
                        parts[k] = parts.get(k, 0.0) + float(v.detach()) / accum
                samples += self.stage.batch_size(batch) * self.world
            if tc.get("grad_clip"):
                gn = self.acc.clip_grad_norm_(self.model.parameters(), tc["grad_clip"])
                parts["grad_norm"] = float(gn)
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
            self.step += 1
            if self.ema is not None:
                self.ema.update(self.unwrapped, self.step)
            last = parts
            # step 1 too: a run without a progress bar shows it is alive at once
            if self.step % int(lc["every"]) == 0 or self.step == total or self.step == 1:
                rate = samples / max(time.perf_counter() - t0, 1e-9)
                t0, samples = time.perf_counter(), 0
                row = {"step": self.step, "lr": lr, **parts, "samples_per_s": rate,
                       # wall and CPU seconds of this process's fit() (a resumed run restarts them)
                       "wall_s": round(time.perf_counter() - fit_t0, 1),
                       "cpu_s": round(time.process_time() - fit_cpu0, 1)}
                if self.is_main:
                    self._log_csv(log_path, row)
                    if writer is not None:
                        for k, v in row.items():
                            if k != "step":
                                writer.add_scalar(f"train/{k}", v, self.step)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{parts.get('loss', float('nan')):.4f}", lr=f"{lr:.2e}")
            pe = int(lc.get("preview_every") or 0)
            if pe and (self.step % pe == 0 or self.step == total) and self.is_main and batch is not None:
                self._preview(batch)
            ce = int(lc.get("checkpoint_every") or 0)
            if ce and (self.step % ce == 0 or self.step == total):
                self.save_checkpoint()
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close()
        self.export()
        return last

    def export(self, out: str | os.PathLike | None = None) -> Path:
        """Write the weights (the EMA average when the run keeps one) as a weights folder:
        a diffusers VAE folder or a SpikeGen ``save_pretrained`` folder. Default ``out``:
        ``<log.dir>/final``. After ``Trainer(cfg, resume=...)`` this exports a checkpoint
        mid-run without training."""
        out = self.out / "final" if out is None else Path(out)
        self.acc.wait_for_everyone()
        if self.is_main:
            final = self.unwrapped
            if self.ema is not None:
                final = copy.deepcopy(self.unwrapped)
                self.ema.copy_to(final)
            self.stage.export(final, out)
        self.acc.wait_for_everyone()
        return out

    def _log_csv(self, path: Path, row: dict) -> None:
        """Append a row; when its columns differ from the file's header (e.g. a loss term was
        added on resume), rewrite the file with the union of columns so none shift."""
        fields: list[str] = []
        if path.exists():
            with open(path, newline="") as f:
                fields = next(csv.reader(f), [])
        if path.exists() and fields and set(row) <= set(fields):
            with open(path, "a", newline="") as f:
                csv.DictWriter(f, fieldnames=fields, restval="").writerow(row)
            return
        rows: list[dict] = []
        if path.exists() and fields:
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
        union = fields + [k for k in row if k not in fields]
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=union, restval="")
            w.writeheader()
            w.writerows(rows + [row])
        os.replace(tmp, path)

    def _tensorboard(self):
        if not self.is_main:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception:  # tensorboard is optional
            return None
        return SummaryWriter(str(self.out / "tensorboard"))

    @torch.no_grad()
    def _preview(self, batch: Any) -> None:
        was_training = self.unwrapped.training
        self.unwrapped.eval()
        # Previews draw from their own generator so they never shift the training RNG stream.
        rows = self.stage.preview(self.unwrapped, batch, torch.Generator(device="cpu").manual_seed(0))
        self.unwrapped.train(was_training)
        if rows:
            ncol = len(rows[0])
            grid = make_grid([im for row in rows for im in row], ncol=ncol)
            save_image(self.out / "previews" / f"step-{self.step:08d}.png", grid)
