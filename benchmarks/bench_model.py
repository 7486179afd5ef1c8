"""SpikeGen model speed: tiny training throughput and sampling latency on the CPU, and the
``base`` model's bf16 training throughput and peak memory on a GPU when one is present.

Run:  .venv/bin/python benchmarks/bench_model.py [--quick] [--threads 1,2] [--json out.json]
      .venv/bin/python benchmarks/bench_model.py --quality CKPT --images DIR [--size 256] [--count 8]

Figures printed (median of ``--repeats`` runs):

* CPU, ``tiny``: training tokens/s (forward + backward + AdamW step, batch 8 at 64x64 and
  batch 2 at 256x256; a token is one 8x8 latent position of the target);
* CPU, ``tiny``: ``model.sample()`` latency for one 256x256 image (RGB + 8 spike frames,
  g = 0.5, 1 generation step) with 10 / 25 / 50 / 100 DDIM steps, plus 25 ancestral steps;
* GPU (CUDA), ``base``: forward + backward tokens/s and peak memory under
  ``torch.autocast(dtype=torch.bfloat16)`` at 256x256, batch 16.

With ``--quality CKPT --images DIR`` it instead measures the quality-versus-steps curve of a
trained checkpoint: each image is centre-cropped to ``--size``, blurred with the pretraining
motion kernels (40x40, 8 kernels) and turned into 8 photon-sampled spike frames (coverage
0.1), then restored at g = 0.5 with 10 / 25 / 50 / 100 DDIM and ancestral steps (fixed seed);
PSNR against the clean crop and the time per image are printed.

The machine load (``os.getloadavg``) is printed before and after: on a shared machine the
numbers are only comparable at similar load (two threads suffer most from other processes:
OpenMP barriers wait for descheduled threads; ``OMP_WAIT_POLICY=PASSIVE`` softens this).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from spikegen.models import SpikeGen, SpikeGenConfig, count_parameters  # noqa: E402


def _median_time(fn, repeats: int, warmup: int = 1, sync=None) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if sync:
            sync()
        t = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _batch(b: int, size: int, t: int = 8, device="cpu", seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    rgb = torch.rand(b, 3, size, size, generator=g)
    spikes = (torch.rand(b, t, size, size, generator=g) < 0.15).to(torch.uint8)
    target = torch.rand(b, 3, size, size, generator=g)
    return rgb.to(device), spikes.to(device), target.to(device)


def bench_cpu_train(model: SpikeGen, b: int, size: int, repeats: int) -> dict:
    model.train()
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=1e-4, weight_decay=0.05)
    rgb, spikes, target = _batch(b, size)

    def step():
        opt.zero_grad(set_to_none=True)
        model(rgb=rgb, spikes=spikes, target=target)["loss"].backward()
        opt.step()

    sec = _median_time(step, repeats)
    tokens = b * (size // 8) ** 2
    return {"batch": b, "size": size, "sec_per_step": sec, "tokens_per_s": tokens / sec, "images_per_s": b / sec}


def bench_cpu_sample(model: SpikeGen, steps_list, repeats: int, sampler: str = "ddim", num_threads="auto") -> dict:
    """``num_threads="auto"``: the library default; ``None``: force the current thread count."""
    model.eval()
    rgb, spikes, _ = _batch(1, 256)
    out = {}
    for steps in steps_list:
        gen = torch.Generator().manual_seed(0)
        out[steps] = _median_time(
            lambda: model.sample(rgb=rgb, spikes=spikes, gamma=0.5, steps=steps, generator=gen, sampler=sampler,
                                 num_threads=num_threads),
            repeats,
        )
    return out


def bench_gpu_base(repeats: int, batch: int = 16, size: int = 256) -> dict:
    dev = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    model = SpikeGen.from_config(SpikeGenConfig.preset("base")).to(dev).train()
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=1e-4, weight_decay=0.05)
    rgb, spikes, target = _batch(batch, size, device=dev)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(rgb=rgb, spikes=spikes, target=target)["loss"]
        loss.backward()
        opt.step()

    step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    sec = _median_time(step, repeats, warmup=1, sync=torch.cuda.synchronize)
    peak = torch.cuda.max_memory_allocated() / 2**30
    model.eval()
    gen = torch.Generator(device=dev).manual_seed(0)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        lat = _median_time(lambda: model.sample(rgb=rgb[:1], spikes=spikes[:1], steps=100, generator=gen), 3, sync=torch.cuda.synchronize)
    return {
        "device": torch.cuda.get_device_name(0),
        "batch": batch,
        "size": size,
        "sec_per_step": sec,
        "tokens_per_s": batch * (size // 8) ** 2 / sec,
        "images_per_s": batch / sec,
        "peak_mem_gib": peak,
        "sample_100_steps_s": lat,
        "params": model.num_parameters(),
    }


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.double() - b.double()) ** 2).mean())
    return 10 * __import__("math").log10(1.0 / max(mse, 1e-12))


def bench_quality(ckpt: Path, images: Path, size: int, count: int, steps_list=(10, 25, 50, 100)) -> dict:
    """PSNR of ``model.sample`` against clean crops for several step counts (fixed seeds)."""
    from spikegen.degrade import motion_blur, rgb_to_gray
    from spikegen.image import list_images, load_image
    from spikegen.spikes.simulate import integrate_and_fire

    model = SpikeGen.from_pretrained(ckpt)
    files = list_images(images, recursive=True)[:count]
    if not files:
        raise SystemExit(f"{images}: no images")
    clean = []
    for f in files:
        img = load_image(f)
        h, w = img.shape[-2:]
        if min(h, w) < size:
            img = torch.nn.functional.interpolate(img[None], scale_factor=size / min(h, w), mode="bilinear", antialias=True)[0]
            h, w = img.shape[-2:]
        top, left = (h - size) // 2, (w - size) // 2
        clean.append(img[:, top : top + size, left : left + size].clamp(0, 1))
    clean = torch.stack(clean)
    gen = torch.Generator().manual_seed(0)
    blurry = motion_blur(clean, generator=gen)
    # the deblurring protocol's spikes: 8 integrate-and-fire frames at V_th = 1, gain 0.6
    spikes = integrate_and_fire(rgb_to_gray(clean), v_th=1.0, gain=0.6, steps=8, generator=gen)
    res: dict = {"images": len(files), "size": size, "blurry_psnr": sum(_psnr(b, c) for b, c in zip(blurry, clean)) / len(files)}
    print(f"quality on {len(files)} images of {images} at {size}x{size}: blurry input PSNR {res['blurry_psnr']:.2f} dB (RGB); model rows on gray")
    for sampler in ("ddim", "ddpm"):
        for steps in steps_list:
            t = time.perf_counter()
            ps = []
            for i in range(len(files)):
                out = model.sample(rgb=blurry[i : i + 1], spikes=spikes[i : i + 1], gamma=0.5, steps=steps,
                                   sampler=sampler, generator=torch.Generator().manual_seed(i))
                ps.append(_psnr(rgb_to_gray(out[0]), rgb_to_gray(clean[i])))  # gray: colour fading at g=0.5 is by design
            sec = (time.perf_counter() - t) / len(files)
            res[f"{sampler}_{steps}"] = {"psnr": sum(ps) / len(ps), "sec_per_image": sec}
            print(f"  {sampler} {steps:3d} steps: PSNR {sum(ps) / len(ps):6.2f} dB, {sec:6.3f} s/image")
    return res


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="2", help="comma-separated CPU thread counts to measure, e.g. 1,2")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="fewer repeats and no 256x256 training")
    ap.add_argument("--no-gpu", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--quality", type=Path, default=None, help="a trained checkpoint: measure PSNR versus steps")
    ap.add_argument("--images", type=Path, default=None, help="folder of clean images for --quality")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--count", type=int, default=8)
    args = ap.parse_args(argv)
    threads = [int(t) for t in str(args.threads).split(",")]
    repeats = 3 if args.quick else args.repeats
    res: dict = {"torch": torch.__version__, "threads": threads, "load_before": os.getloadavg()}
    if args.quality is not None:
        if args.images is None:
            raise SystemExit("--quality needs --images DIR")
        torch.set_num_threads(threads[0])
        res["quality"] = bench_quality(args.quality, args.images, args.size, args.count)
        if args.json:
            args.json.write_text(json.dumps(res, indent=2, default=str))
        return res

    cfg = SpikeGenConfig.preset("tiny")
    torch.manual_seed(0)
    model = SpikeGen.from_config(cfg)
    res["tiny_params"] = model.num_parameters()
    res["tiny_vae_params"] = model.num_parameters(include_vae=True) - model.num_parameters()
    res["base_params"] = count_parameters("base")
    res["large_params"] = count_parameters("large")
    print(f"params: tiny {res['tiny_params']/1e6:.2f}M (+VAE {res['tiny_vae_params']/1e6:.2f}M), "
          f"base {res['base_params']/1e6:.1f}M, large {res['large_params']/1e6:.1f}M (without VAE)")
    print(f"load average before: {res['load_before']}")

    res["cpu"] = {}
    for nt in threads:
        torch.set_num_threads(nt)
        r: dict = {"train": [bench_cpu_train(model, 8, 64, repeats)]}
        if not args.quick:
            r["train"].append(bench_cpu_train(model, 2, 256, repeats))
        for t in r["train"]:
            print(f"[{nt} thread(s)] cpu tiny train  batch {t['batch']} @ {t['size']}px: {t['sec_per_step']*1e3:7.1f} ms/step, "
                  f"{t['tokens_per_s']:8.0f} tokens/s, {t['images_per_s']:.1f} img/s")
        r["sample_ddim"] = bench_cpu_sample(model, (10, 25, 50, 100), repeats, num_threads=None)
        r["sample_ddpm"] = bench_cpu_sample(model, (25,), repeats, sampler="ddpm", num_threads=None)
        for k, v in r["sample_ddim"].items():
            print(f"[{nt} thread(s)] cpu tiny sample 256x256, {k:3d} DDIM steps: {v:6.3f} s")
        print(f"[{nt} thread(s)] cpu tiny sample 256x256,  25 DDPM steps: {r['sample_ddpm'][25]:6.3f} s")
        res["cpu"][nt] = r
    # the library default: num_threads="auto" (one thread for this small job)
    torch.set_num_threads(max(threads))
    res["cpu_sample_auto"] = bench_cpu_sample(model, (10, 25, 50, 100), repeats)
    for k, v in res["cpu_sample_auto"].items():
        print(f"[auto] cpu tiny sample 256x256, {k:3d} DDIM steps: {v:6.3f} s")

    if torch.cuda.is_available() and not args.no_gpu:
        r = bench_gpu_base(repeats)
        res["gpu_base_bf16"] = r
        print(f"gpu base bf16 on {r['device']}: batch {r['batch']} @ {r['size']}px: {r['sec_per_step']*1e3:.1f} ms/step, "
              f"{r['tokens_per_s']:.0f} tokens/s, {r['images_per_s']:.1f} img/s, peak {r['peak_mem_gib']:.2f} GiB; "
              f"sample 100 steps {r['sample_100_steps_s']:.3f} s")
    else:
        print("gpu: no CUDA device; skipped the base bf16 benchmark")
    res["load_after"] = os.getloadavg()
    print(f"load average after: {res['load_after']}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2, default=str))
    return res


if __name__ == "__main__":
    main()
