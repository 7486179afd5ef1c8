"""Trainer: a run killed with SIGKILL resumes exactly; two processes (gloo) stay identical;
bad checkpoints give clear errors and are never half-loaded."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from spikegen.errors import CheckpointError
from spikegen.train import Trainer, load_config
from spikegen.train.schedule import lr_at

PY = sys.executable


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory) -> Path:
    from PIL import Image

    d = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for i in range(6):
        base = rng.random((1, 1, 3)) * np.linspace(0, 1, 48)[:, None, None]
        arr = (np.clip(base + 0.2 * rng.random((48, 48, 3)), 0, 1) * 255).astype(np.uint8)
        Image.fromarray(arr).save(d / f"im{i}.png")
    return d


def _overrides(image_dir: Path, run: Path, steps: int, every: int = 2) -> list[str]:
    return [
        "stage=pretrain", f"data.root={image_dir}", "data.size=32", "data.frames=8", "data.blur_size=9",
        "model.vae=preset:tiny-f8-d16", "train.batch_size=2", f"train.steps={steps}", "train.lr=1e-3",
        f"log.dir={run}", "log.every=1", f"log.checkpoint_every={every}", "log.keep=0", "train.mixed_precision=no",
    ]


def _losses(run: Path) -> dict[int, float]:
    with open(run / "log.csv", newline="") as f:
        return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(f)}


def _cli(args: list[str], **kw) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([PY, "-m", "spikegen", "train", "pretrain", "--no-progress", *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def test_lr_schedule_shape():
    total = 100
    lrs = [lr_at(s, total, lr=1e-4) for s in range(total)]
    assert lrs[0] == pytest.approx(1e-8)
    assert max(lrs) == pytest.approx(1e-4)
    assert int(np.argmax(lrs)) == 10  # warm-up over 10% of the steps
    assert lrs[-1] == pytest.approx(1e-6)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))  # cosine decays monotonically


def test_sigkill_then_resume_matches_uninterrupted(image_dir, tmp_path):
    steps = 14
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    p = _cli(_overrides(image_dir, ref, steps))
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 0, out
    expected = _losses(ref)
    assert sorted(expected) == list(range(1, steps + 1))

    p = _cli(_overrides(image_dir, killed, steps))
    latest = killed / "checkpoints" / "latest"
    deadline = time.time() + 240
    while time.time() < deadline:
        if latest.is_file() and int(latest.read_text().strip().split("-")[1]) >= 4:
            break
        if p.poll() is not None:
            break
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    assert p.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (killed / "final").exists()
    stopped_at = int(latest.read_text().strip().split("-")[1])
    assert stopped_at < steps

    p = _cli(_overrides(image_dir, killed, steps) + ["--resume"])
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 0, out
    assert f"at step {stopped_at}" in out
    got = _losses(killed)
    assert sorted(got) == sorted(expected)
    for s in expected:
        assert got[s] == pytest.approx(expected[s], rel=1e-6, abs=1e-7), f"loss differs at step {s}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_gloo_identical_weights(image_dir, tmp_path):
    worker = Path(__file__).with_name("_ddp_worker.py")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [PY, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(worker), str(tmp_path),
           *_overrides(image_dir, tmp_path / "run", 3, every=3)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    d0 = json.loads((tmp_path / "digest-rank0.json").read_text())
    d1 = json.loads((tmp_path / "digest-rank1.json").read_text())
    assert (d0["world"], d1["world"]) == (2, 2)
    assert d0["step"] == d1["step"] == 3
    assert d0["digest"] == d1["digest"]
    assert (tmp_path / "run" / "checkpoints" / "step-00000003" / "rng-rank1.safetensors").is_file()


@pytest.fixture
def one_checkpoint(image_dir, tmp_path) -> Path:
    run = tmp_path / "run"
    Trainer(load_config(None, _overrides(image_dir, run, 2)), progress=False).fit()
    return run


def _resume(image_dir, run: Path, extra: list[str] = ()) -> Trainer:
    return Trainer(load_config(None, _overrides(image_dir, run, 4) + list(extra)), resume=True, progress=False)


def test_truncated_checkpoint_is_refused(image_dir, one_checkpoint):
    ck = one_checkpoint / "checkpoints" / "step-00000002" / "model.safetensors"
    data = ck.read_bytes()
    ck.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        _resume(image_dir, one_checkpoint)


def test_corrupt_checkpoint_is_refused(image_dir, one_checkpoint):
    ck = one_checkpoint / "checkpoints" / "step-00000002" / "optimizer.safetensors"
    data = bytearray(ck.read_bytes())
    data[-10] ^= 0xFF
    ck.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        _resume(image_dir, one_checkpoint)


def test_incomplete_checkpoint_is_refused(image_dir, one_checkpoint):
    (one_checkpoint / "checkpoints" / "step-00000002" / "MANIFEST.json").unlink()
    with pytest.raises(CheckpointError, match="incomplete"):
        _resume(image_dir, one_checkpoint)


def test_mismatched_checkpoint_is_refused_and_nothing_loaded(image_dir, one_checkpoint):
    # A wider model cannot take these weights: the error names the mismatch and the fresh
    # model's weights stay exactly as initialised.
    with pytest.raises(CheckpointError, match="does not match|shape mismatch"):
        _resume(image_dir, one_checkpoint, ["model.overrides={head_width: 96}"])


def test_missing_checkpoint_is_clear(image_dir, tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        _resume(image_dir, tmp_path / "nothing-here")


def test_ema_warmup_forgets_the_initialisation():
    from spikegen.train.ema import EMA

    m = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.constant_(m.weight, 0.0)
    ema = EMA(m, decay=0.999)
    with torch.no_grad():
        m.weight.fill_(1.0)
    for step in range(1, 1001):
        ema.update(m, step)
    # with a fixed decay the average would still be 1 - 0.999**1000 = 0.63
    assert ema.shadow["weight"].item() > 0.99
    assert ema.decay_at(10**6) == 0.999


def test_log_csv_keeps_columns_aligned_when_terms_change(tmp_path):
    t = Trainer.__new__(Trainer)
    log = tmp_path / "log.csv"
    t._log_csv(log, {"step": 1, "loss": 0.5, "lpips": 0.1})
    t._log_csv(log, {"step": 2, "loss": 0.4})               # a term dropped
    t._log_csv(log, {"step": 3, "loss": 0.3, "align": 0.2})  # a term added
    with open(log, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["loss"] for r in rows] == ["0.5", "0.4", "0.3"]
    assert [r["lpips"] for r in rows] == ["0.1", "", ""]
    assert [r["align"] for r in rows] == ["", "", "0.2"]


def test_vae_decoder_only_keeps_the_latent_space(image_dir, tmp_path):
    # train.decoder_only: the decoder learns, the encoder, quant_conv and the stored latent
    # scale stay bit-identical, so a SpikeGen trained on the starting VAE stays valid.
    from safetensors.torch import load_file

    from spikegen.models.vae import build_vae, load_vae

    start = tmp_path / "start"
    vae = build_vae("tiny-f8-d16", scaling_factor=0.7)
    vae.save_pretrained(str(start), safe_serialization=True)
    run = tmp_path / "run"
    cfg = load_config(None, [
        "stage=vae", f"model.init={start}", f"data.root={image_dir}", "data.size=32", "data.blur=false",
        "train.decoder_only=true", "train.batch_size=2", "train.steps=3", "train.lr=1e-3", "train.ema=0",
        f"log.dir={run}", "log.every=1", "log.checkpoint_every=100", "train.mixed_precision=no",
    ])
    Trainer(cfg, progress=False).fit()
    a = load_file(start / "diffusion_pytorch_model.safetensors")
    b = load_file(run / "final" / "diffusion_pytorch_model.safetensors")
    fixed = [k for k in a if k.startswith(("encoder.", "quant_conv."))]
    moved = [k for k in a if k.startswith("decoder.") and not torch.equal(a[k], b[k])]
    assert fixed and all(torch.equal(a[k], b[k]) for k in fixed)
    assert len(moved) > 10
    assert load_vae(run / "final").config.scaling_factor == pytest.approx(0.7)


class _EpochEcho(torch.utils.data.Dataset):
    """Returns (epoch, index): shows which epoch the worker selected for each sample."""

    epoch = 0

    def __len__(self):
        return 5

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __getitem__(self, i):
        return torch.tensor([self.epoch, i])


@pytest.mark.parametrize("workers", [0, 1])
def test_data_stream_crosses_epochs_and_resumes_in_place(workers):
    # One long-lived loader serves every epoch: the worker must still see each batch's epoch,
    # and a stream restarted from a saved (epoch, position) continues with the same batches.
    from spikegen.train.trainer import DataStream, epoch_batches

    def stream(**kw):
        return DataStream(_EpochEcho(), batch=2, world=1, rank=0, seed=3, num_workers=workers,
                          collate_fn=torch.stack, **kw)

    want = [(e, b) for e in range(4) for b in epoch_batches(5, 2, 1, 0, 3, e)]  # 2 batches / epoch
    s = stream()
    got = [next(s) for _ in range(8)]
    assert [(int(x[0, 0]), x[:, 1].tolist()) for x in got] == want
    assert all((x[:, 0] == x[0, 0]).all() for x in got)
    s = stream()
    for _ in range(3):
        next(s)
    state = s.state()
    assert state == {"epoch": 1, "position": 1}
    r = stream(**state)
    assert torch.equal(next(r), got[3]) and torch.equal(next(r), got[4])


def test_export_writes_a_checkpoints_ema_weights_without_training(image_dir, one_checkpoint, tmp_path):
    from safetensors.torch import load_file

    from spikegen.models import SpikeGen

    out = tmp_path / "exported"
    log = one_checkpoint / "log.csv"
    log.write_text(log.read_text() + "3,0.1,0.5,0.5,1.0,1.0\n")  # a row the live run wrote since
    before = log.read_text()
    args = _overrides(image_dir, one_checkpoint, 4) + ["--resume-from", str(one_checkpoint)]
    p = _cli(args + ["--export", str(out)])
    text, _ = p.communicate(timeout=300)
    assert p.returncode == 0, text
    assert "exported step 2" in text
    assert log.read_text() == before  # nothing trained, and the (maybe live) run's log untouched
    model = SpikeGen.from_pretrained(out)
    ema = load_file(one_checkpoint / "checkpoints" / "step-00000002" / "ema.safetensors")
    sd = model.state_dict()
    ema = {k.removeprefix("model."): v for k, v in ema.items()}
    trained = [k for k in ema if not k.startswith("vae.")]
    assert len(trained) > 10 and set(trained) <= set(sd)
    assert all(torch.equal(sd[k], ema[k]) for k in trained)
    raw = load_file(one_checkpoint / "checkpoints" / "step-00000002" / "model.safetensors")
    raw = {k.removeprefix("model."): v for k, v in raw.items()}
    assert any(not torch.equal(raw[k], ema[k]) for k in trained)  # the EMA, not the raw weights
    p = _cli(args[:-2] + ["--export", str(tmp_path / "x")])  # no checkpoint given: refused
    text, _ = p.communicate(timeout=300)
    assert p.returncode == 2 and "--export needs --resume" in text
