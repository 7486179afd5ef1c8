"""What a GPU run does differently, exercised on the CPU.

* bf16: ``train.mixed_precision=bf16`` makes Accelerate wrap every training forward in
  ``torch.autocast(<device>, dtype=torch.bfloat16)``; Accelerate accepts bf16 on the CPU, so the
  real Trainer path (fp32 master weights, bf16 matmuls and convolutions, fp32 outputs) runs here
  for every stage, and resumes exactly.
* sampling under autocast, and whole models in float64 / bfloat16;
* no device assumptions: a model built on the meta device and moved with ``.to()`` only, and
  ``sample()`` run with the *default* device set to ``meta``, so any tensor it made without
  naming the model's device would surface (a CPU tensor mixed into a CUDA run fails the same way);
* two processes (gloo) with gradient accumulation and bf16 end with identical weights;
* ``scripts/device_check.sh`` refuses to run without CUDA, fast and with a clear message.
"""

from __future__ import annotations

import csv
import json
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from spikegen.models import SampleOutput, SpikeGen, SpikeGenConfig
from spikegen.train import Trainer, load_config

PY = sys.executable
REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "src" / "spikegen" / "weights" / "tiny" / "spikegen"


@pytest.fixture(autouse=True)
def one_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory) -> Path:
    from PIL import Image

    d = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(1)
    for i in range(8):
        base = rng.random((1, 1, 3)) * np.linspace(0, 1, 40)[:, None, None]
        arr = (np.clip(base + 0.2 * rng.random((40, 40, 3)), 0, 1) * 255).astype(np.uint8)
        Image.fromarray(arr).save(d / f"im{i}.png")
    return d


def _overrides(stage: str, image_dir: Path, run: Path, steps: int, mp: str = "bf16") -> list[str]:
    common = [f"stage={stage}", f"data.root={image_dir}", "data.size=32", "train.batch_size=2", f"train.steps={steps}",
              "train.lr=1e-3", f"log.dir={run}", "log.every=1", "log.checkpoint_every=1", "log.keep=0",
              f"train.mixed_precision={mp}"]
    if stage == "vae":
        return common + ["model.vae=preset:tiny-f4-d16", "data.blur=false"]
    spikes = ["data.frames=8", "data.blur_size=9"]
    if stage == "pretrain":
        return common + spikes + ["model.vae=preset:tiny-f4-d16"]
    # fine-tuning from the shipped weights with every loss term and the TFP & Spike samples
    return common + spikes + [f"model.init={TINY}", "train.losses={align: 0.1, pixel: 1.0}", "train.tfp_fraction=0.5"]


def _log(run: Path) -> list[dict]:
    with open(run / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


def _record_autocast_dtypes(model: torch.nn.Module) -> set:
    """Output dtypes of the matmul / conv layers, while an autocast is active."""
    seen: set = set()

    def hook(module, args, output):
        if isinstance(output, torch.Tensor) and torch.is_autocast_enabled("cpu"):
            seen.add(output.dtype)

    for m in model.modules():
        if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.Conv3d)):
            m.register_forward_hook(hook)
    return seen


# ------------------------------------------------------------------------------ bf16 training
@pytest.mark.parametrize("stage", ["vae", "pretrain", "finetune"])
def test_bf16_training_step_of_every_stage_is_finite_and_resumes_exactly(stage, image_dir, tmp_path):
    ref = tmp_path / "ref"
    tr = Trainer(load_config(None, _overrides(stage, image_dir, ref, 2)), progress=False)
    assert tr.acc.mixed_precision == "bf16"
    seen = _record_autocast_dtypes(tr.unwrapped)
    tr.fit()
    assert torch.bfloat16 in seen, f"no layer ran in bf16 (saw {seen})"
    # mixed precision keeps float32 master weights (and float32 checkpoints / exports)
    assert {p.dtype for p in tr.unwrapped.parameters()} == {torch.float32}
    rows = _log(ref)
    assert [int(r["step"]) for r in rows] == [1, 2]
    terms = {"vae": ["loss", "l1", "kl"], "pretrain": ["loss", "diffusion"],
             "finetune": ["loss", "diffusion", "align", "pixel"]}[stage] + ["grad_norm"]
    for r in rows:
        for k in terms:
            assert math.isfinite(float(r[k])), f"step {r['step']}: {k} = {r[k]}"
    assert (ref / "final").is_dir()

    # resume the step-1 checkpoint in another folder: the same step 2, bit for bit
    again = tmp_path / "again"
    tr2 = Trainer(load_config(None, _overrides(stage, image_dir, again, 2)),
                  resume=ref / "checkpoints" / "step-00000001", progress=False)
    assert tr2.step == 1
    tr2.fit()
    got = _log(again)
    assert [int(r["step"]) for r in got] == [2]
    assert float(got[0]["loss"]) == pytest.approx(float(rows[1]["loss"]), rel=1e-6, abs=1e-7)
    a, b = tr.unwrapped.state_dict(), tr2.unwrapped.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_mixed_precision_setting_and_several_trainers_in_one_process(image_dir, tmp_path):
    # Accelerate keeps one process-wide state and refused a second Accelerator with another
    # precision ("AcceleratorState has already been initialized"): a notebook or a test
    # session that trains fp32 then bf16 then fp32 must work.
    got = []
    for mp in ("no", "bf16", "auto", "bf16"):
        tr = Trainer(load_config(None, _overrides("pretrain", image_dir, tmp_path / mp, 1, mp)), progress=False)
        got.append(tr.acc.mixed_precision)
    # "auto" means bf16 on CUDA, fp32 without
    assert got == ["no", "bf16", "bf16" if torch.cuda.is_available() else "no", "bf16"]
    # YAML reads a bare `no` as False: still "no"
    cfg = load_config(None, _overrides("pretrain", image_dir, tmp_path / "false", 1, "no"))
    assert cfg["train"]["mixed_precision"] is False
    assert Trainer(cfg, progress=False).acc.mixed_precision == "no"


# ------------------------------------------------------------------------------ sampling
def _inputs(b=2, h=40, w=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    rgb = torch.rand(b, 3, h, w, generator=g)
    spikes = (torch.rand(b, 8, h, w, generator=g) < 0.3).to(torch.uint8)
    return rgb, spikes


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.double() - b.double()) ** 2).mean())
    return 10 * math.log10(1.0 / max(mse, 1e-30))


@pytest.fixture(scope="module")
def shipped() -> SpikeGen:
    return SpikeGen.from_pretrained(TINY)


def test_sample_under_bf16_autocast_is_finite_float32(shipped):
    rgb, spikes = _inputs()
    ref = shipped.sample(rgb=rgb, spikes=spikes, steps=6, generator=torch.Generator().manual_seed(1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = shipped.sample(rgb=rgb, spikes=spikes, steps=6, generator=torch.Generator().manual_seed(1))
        many = shipped.sample(rgb=rgb, spikes=None, steps=4, num_samples=2, generator=torch.Generator().manual_seed(2))
    assert out.dtype == torch.float32 and out.shape == (2, 3, 40, 48)
    assert bool(torch.isfinite(out).all()) and 0 <= float(out.min()) and float(out.max()) <= 1
    assert _psnr(out, ref) > 35, "bf16 sampling drifted far from float32"
    # the head's loop runs in float32 under autocast: close even without clip_x0 (was 32 dB)
    ref_u = shipped.sample(rgb=rgb, spikes=spikes, steps=10, generator=torch.Generator().manual_seed(1), clip_x0=float("inf"))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out_u = shipped.sample(rgb=rgb, spikes=spikes, steps=10, generator=torch.Generator().manual_seed(1), clip_x0=float("inf"))
    assert _psnr(out_u, ref_u) > 45
    assert isinstance(many, SampleOutput)
    for t in many:
        assert t.dtype == torch.float32 and bool(torch.isfinite(t).all())
    assert many.samples.shape == (2, 2, 3, 40, 48)


def test_masked_k_step_sampling_under_bf16_autocast():
    torch.manual_seed(0)
    model = SpikeGen.from_config(SpikeGenConfig.preset("tiny", mask_ratio_min=0.7, sample_clip_x0=3.0)).eval()
    rgb, spikes = _inputs(b=1, h=32, w=32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model.sample(rgb=rgb, spikes=spikes, steps=3, ar_steps=3, sampler="ddpm",
                           generator=torch.Generator().manual_seed(0))
    assert out.dtype == torch.float32 and out.shape == (1, 3, 32, 32) and bool(torch.isfinite(out).all())


def _leaf_input_checker(model: SpikeGen, dtype: torch.dtype):
    """Forward pre-hooks on every layer with weights: each floating input must have the model's
    dtype and device (the S3 encoder takes spikes of any dtype and converts them itself)."""
    bad: list = []

    def pre(module, args, kwargs):
        for a in list(args) + list(kwargs.values()):
            if isinstance(a, torch.Tensor) and a.is_floating_point() and (a.dtype != dtype or a.device != model.device):
                bad.append((type(module).__name__, a.dtype, a.device))

    leaves = [m for m in model.modules() if not list(m.children()) and list(m.parameters(recurse=False))]
    return bad, [m.register_forward_pre_hook(pre, with_kwargs=True) for m in leaves]


def test_sample_in_float64_and_bfloat16_then_back(shipped):
    import copy

    model = copy.deepcopy(shipped)
    rgb, spikes = _inputs()
    kw = dict(rgb=rgb, spikes=spikes, steps=5)
    ref = model.sample(**kw, generator=torch.Generator().manual_seed(1))
    for dtype, min_psnr in ((torch.float64, 80.0), (torch.bfloat16, 35.0)):
        model = model.to(dtype)
        assert model.dtype == dtype and {p.dtype for p in model.parameters()} == {dtype}
        bad, hooks = _leaf_input_checker(model, dtype)
        lat, size = model.sample_latents(**kw, generator=torch.Generator().manual_seed(1))
        out = model.sample(**kw, generator=torch.Generator().manual_seed(1))
        for h in hooks:
            h.remove()
        assert not bad, f"{dtype}: layers got inputs of another dtype/device: {sorted(set(map(str, bad)))[:5]}"
        assert lat.dtype == dtype and size == (40, 48)
        assert out.dtype == torch.float32 and bool(torch.isfinite(out).all())
        assert _psnr(out, ref) > min_psnr, dtype
        model = model.to(torch.float32)
        if dtype == torch.float64:  # float32 -> float64 -> float32 is lossless: the same samples
            assert torch.equal(model.sample(**kw, generator=torch.Generator().manual_seed(1)), ref)


def test_model_built_on_meta_and_moved_with_to_only(shipped):
    # Build without memory (as from_pretrained does), materialise with .to_empty(), load weights,
    # move with .to(): nothing (schedules, caches) may stay behind on meta or be left unset.
    with torch.device("meta"):
        model = SpikeGen(shipped.config, vae=type(shipped.vae).from_config(shipped.vae.config))
    assert model.device.type == "meta"
    assert model.head._abar.device.type == "cpu"  # the schedule is a plain CPU attribute, not a buffer
    model = model.to_empty(device="cpu")
    model.load_state_dict(shipped.state_dict(), strict=True)
    model = model.to("cpu").eval()
    rgb, spikes = _inputs(b=1)
    a = shipped.sample(rgb=rgb, spikes=spikes, steps=4, generator=torch.Generator().manual_seed(3))
    b = model.sample(rgb=rgb, spikes=spikes, steps=4, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


@pytest.mark.parametrize("kw", [
    dict(),
    dict(sampler="ddpm", num_samples=2),
    dict(rgb=None, tfp_rgb=True, generator=None),
    dict(gamma=torch.tensor([0.0, 1.0])),
    dict(ar_steps=3),
], ids=["ddim", "ddpm-samples", "tfp-no-generator", "gamma-per-sample", "k-steps"])
def test_sample_creates_every_tensor_on_the_models_device(shipped, kw):
    # With the default device set to meta, a tensor that sample() creates without naming the
    # model's device becomes a meta tensor: it fails when mixed with the model's tensors, or
    # reaches the output. On a CUDA run the same tensor would be a CPU tensor mixed into CUDA work.
    model = shipped
    if kw.get("ar_steps", 1) > 1:  # MAR's K-step generation needs a model trained with masking
        torch.manual_seed(0)
        model = SpikeGen.from_config(SpikeGenConfig.preset("tiny", mask_ratio_min=0.7, sample_clip_x0=3.0)).eval()
    rgb, spikes = _inputs()

    def args() -> dict:
        a = dict(rgb=rgb, spikes=spikes, steps=4, generator=torch.Generator().manual_seed(5))
        a.update(kw)
        if a.get("generator") is None:
            a["temperature"] = 0.0  # deterministic, so the two runs can be compared
        return a

    ref = model.sample(**args())
    with torch.device("meta"):
        out = model.sample(**args())
    ref, out = (ref.samples, out.samples) if isinstance(ref, SampleOutput) else (ref, out)
    assert out.device.type == "cpu" and torch.equal(out, ref)


def test_training_losses_create_every_tensor_on_the_models_device(monkeypatch):
    # The same check for a fine-tuning forward (diffusion + alignment + pixel + TFP samples,
    # MAR masking) and its backward. sample_gamma builds one CPU scalar and moves it with
    # .to(device) explicitly (fine on CUDA); it runs with a CPU default device.
    import spikegen.models.spikegen as sg
    from spikegen.train.stages import SpikeGenTrainModule

    orig = sg.sample_gamma

    def cpu_scalar_gamma(*a, **k):
        with torch.device("cpu"):
            return orig(*a, **k)

    monkeypatch.setattr(sg, "sample_gamma", cpu_scalar_gamma)
    torch.manual_seed(0)
    model = SpikeGen.from_config(SpikeGenConfig.preset("tiny", mask_ratio_min=0.7))
    module = SpikeGenTrainModule(model, align_weight=0.1, pixel_weight=1.0, tfp_fraction=0.5).train()
    rgb, spikes = _inputs(h=32, w=32)
    batch = {"blurry": rgb, "clean": rgb.flip(-1), "spikes": spikes}
    with torch.device("meta"):
        losses = module(batch)
        losses["loss"].backward()
    assert {"loss", "diffusion", "align", "pixel"} <= set(losses)
    assert all(v.device.type == "cpu" and bool(torch.isfinite(v)) for v in losses.values())
    grads = [p.grad for p in model.trainable_parameters()]
    assert all(g is not None and g.device.type == "cpu" for g in grads)


# ------------------------------------------------------------------------------ two processes
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_bf16_grad_accum_identical_weights(image_dir, tmp_path):
    worker = Path(__file__).with_name("_ddp_accum_worker.py")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    steps, accum = 2, 2
    over = _overrides("pretrain", image_dir, tmp_path / "run", steps) + [f"train.grad_accum={accum}",
                                                                          f"log.checkpoint_every={steps}"]
    cmd = [PY, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(worker), str(tmp_path), *over]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    d0 = json.loads((tmp_path / "digest-rank0.json").read_text())
    d1 = json.loads((tmp_path / "digest-rank1.json").read_text())
    assert (d0["world"], d1["world"]) == (2, 2) and d0["step"] == d1["step"] == steps
    assert d0["mixed_precision"] == d1["mixed_precision"] == "bf16"
    assert "torch.bfloat16" in d0["autocast_dtypes"]
    assert d0["initial"] == d1["initial"] and d0["digest"] != d0["initial"]  # same start, and it trained
    assert d0["digest"] == d1["digest"]
    # 8 images, 2 per process and 2 processes: 2 batches per epoch; 2 steps x 2 micro-batches = 2 epochs
    assert d0["data"] == d1["data"] == {"epoch": 2, "position": 0}
    rows = _log(tmp_path / "run")
    assert [int(x["step"]) for x in rows] == [1, 2] and all(math.isfinite(float(x["loss"])) for x in rows)


# ------------------------------------------------------------------------------ device check
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_device_check_refuses_without_cuda_fast_and_clearly(tmp_path):
    out = tmp_path / "results"
    t = time.perf_counter()
    r = subprocess.run(["bash", str(REPO / "scripts" / "device_check.sh"), str(out)], capture_output=True, text=True,
                       timeout=120, env=dict(os.environ, OMP_NUM_THREADS="1"))
    took = time.perf_counter() - t
    assert r.returncode == 3, r.stdout + r.stderr
    assert "CUDA" in r.stderr and "torch.cuda.is_available() is False" in r.stderr
    assert "Traceback" not in r.stderr
    assert took < 60
    res = json.loads((out / "device_check.json").read_text())
    assert res["status"] == "no-cuda" and res["stages"] == {}
    # and without its argument: usage, exit 2
    r = subprocess.run(["bash", str(REPO / "scripts" / "device_check.sh")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "usage" in r.stderr.lower()
