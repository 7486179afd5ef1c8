"""`spikegen eval deblur | reconstruct | real`: the protocols' numbers checked against independent
recomputation, the files written, and clear errors for bad input."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from spikegen.cli import main
from spikegen.errors import OutputExistsError, SpikeGenError
from spikegen.image import load_image, save_image
from spikegen.spikes.io import save_spikes, write_dat
from spikegen.tasks.evaluate import evaluate_deblur, evaluate_real, evaluate_reconstruct, parse_methods


def _textured(seed: int, h: int = 64, w: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = torch.stack([x, y, 0.5 + 0.5 * torch.sin(12 * x * y)])
    return (0.7 * base + 0.3 * torch.rand(3, h, w, generator=g)).clamp(0, 1)


@pytest.fixture
def image_dir(tmp_path) -> Path:
    d = tmp_path / "imgs"
    for i in range(2):
        save_image(d / f"img{i}.png", _textured(i))
    return d


def _run(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def _psnr_np(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


# ----------------------------------------------------------------------------------- deblur
def test_eval_deblur_every_method_and_vth_with_an_independent_blurry_psnr(image_dir, tiny_dir, tmp_path, capsys):
    from spikegen.data.common import sample_generator
    from spikegen.degrade import motion_blur

    out = tmp_path / "eval"
    code, stdout, err = _run(["eval", "deblur", "--data", image_dir, "--methods", "blurry,tfp,tfi,spikegen-0.5",
                              "--vth", "1,2", "--size", 64, "--weights", tiny_dir, "--steps", 2, "-o", out,
                              "--no-progress"], capsys)
    assert code == 0, err
    assert "PSNR gray" in stdout
    res = json.loads((out / "results.json").read_text())
    got = {(r["method"], r["v_th"]) for r in res["summary"]}
    assert got == {(m, v) for m in ("blurry", "tfp", "tfi", "spikegen-0.5") for v in (1.0, 2.0)}
    for r in res["summary"]:
        assert r["n"] == 2
        for k in ("psnr_gray", "ssim_gray", "lpips_gray"):
            assert math.isfinite(r[k]), (r, k)
        if r["method"] in ("blurry", "spikegen-0.5"):
            assert all(math.isfinite(r[k]) for k in ("psnr_rgb", "ssim_rgb", "lpips_rgb"))
        else:  # gray methods are not scored on RGB
            assert "psnr_rgb" not in r or r["psnr_rgb"] is None or math.isnan(r["psnr_rgb"])
    assert len(res["per_image"]) == 2 * 4 * 2

    # The protocol, recomputed here from its definition: per-image generator seeded with
    # sample_seed(0, 0, i); a 64x64 image needs no crop; 8 kernels of 40x40; blur first.
    psnr_rgb, psnr_gray = [], []
    for i, p in enumerate(sorted(image_dir.glob("*.png"))):
        sharp = load_image(p)
        blurry = motion_blur(sharp[None], kernels=8, size=40, generator=sample_generator(0, 0, i))[0].clamp(0, 1)
        a, b = blurry.numpy(), sharp.numpy()
        psnr_rgb.append(_psnr_np(a, b))
        w = np.array([0.2989, 0.5870, 0.1140])[:, None, None]
        psnr_gray.append(_psnr_np((a * w).sum(0), (b * w).sum(0)))
        row = next(r for r in res["per_image"] if r["method"] == "blurry" and r["v_th"] == 1.0 and r["image"] == p.name)
        assert row["psnr_rgb"] == pytest.approx(psnr_rgb[-1], abs=1e-3)
    for v in (1.0, 2.0):  # the blurry input is the same at every V_th
        row = next(r for r in res["summary"] if r["method"] == "blurry" and r["v_th"] == v)
        assert row["psnr_rgb"] == pytest.approx(float(np.mean(psnr_rgb)), abs=1e-3)
        assert row["psnr_gray"] == pytest.approx(float(np.mean(psnr_gray)), abs=1e-3)
    # spikes get sparser with V_th: TFP is worse at V_th = 2
    tfp = {r["v_th"]: r["psnr_gray"] for r in res["summary"] if r["method"] == "tfp"}
    assert tfp[1.0] > tfp[2.0]

    for name in ("results.csv", "per_image.csv", "results.md", "report.html", "psnr_vs_vth.png"):
        assert (out / name).is_file(), name
    from PIL import Image

    with Image.open(out / "psnr_vs_vth.png") as im:
        assert im.size[0] > 100 and im.size[1] > 100
    with open(out / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == 8
    md = (out / "results.md").read_text()
    assert "PSNR gray (dB)" in md and "PSNR RGB (dB)" in md and "spikegen eval deblur" in md
    html = (out / "report.html").read_text()
    assert "psnr_vs_vth.png" in html and "images/000_img0_sharp.png" in html
    assert (out / "images" / "000_img0_tfp_vth2.png").is_file()

    # never replaced without --overwrite
    code, _, err = _run(["eval", "deblur", "--data", image_dir, "--methods", "tfp", "--size", 64, "-o", out], capsys)
    assert code == 2 and "--overwrite" in err


def test_eval_deblur_samples_rgb_only_once_for_every_vth(image_dir, tiny_dir, tmp_path, monkeypatch):
    # g = 0 ignores the spikes, so one sample serves every V_th; it must equal a fresh sample
    # at that V_th alone (same per-image generator)
    import spikegen.tasks.evaluate.deblur as ev

    calls = []
    real = ev.deblur_image
    monkeypatch.setattr(ev, "deblur_image", lambda *a, **k: calls.append(k["gamma"]) or real(*a, **k))
    kw = dict(methods="spikegen-0,spikegen-0.5", size=48, weights=tiny_dir, steps=2, progress=False, report_images=0)
    both = evaluate_deblur(image_dir, tmp_path / "a", v_ths="1,4", **kw)
    assert sorted(calls) == [0.0] * 2 + [0.5] * 4  # 2 images: g = 0 once each, g = 0.5 per V_th
    alone = evaluate_deblur(image_dir, tmp_path / "b", v_ths="4", **kw)
    pick = lambda res, v: {r["image"]: r["psnr_rgb"] for r in res["per_image"] if r["method"] == "spikegen-0" and r["v_th"] == v}
    assert pick(both, 1.0) == pick(both, 4.0) == pick(alone, 4.0)


def test_eval_deblur_limit_and_skips_spikegen_without_weights(image_dir, tmp_path, monkeypatch):
    import spikegen.weights

    monkeypatch.setattr(spikegen.weights, "has_default_weights", lambda name="tiny": False)
    warnings: list[str] = []
    res = evaluate_deblur(image_dir, tmp_path / "e", methods="tfp,spikegen-1", v_ths="1", size=48, limit=1,
                          progress=False, warn=warnings.append)
    assert res["skipped"] == ["spikegen-1"] and res["methods"] == ["tfp"]
    assert len(warnings) == 1 and "spikegen-1" in warnings[0] and "--weights" in warnings[0]
    assert [r["image"] for r in res["per_image"]] == ["img0.png"]


def test_eval_deblur_from_a_video_folder(tmp_path):
    clip = tmp_path / "videos" / "clip.mp4"
    from spikegen.image import save_video

    save_video(clip, [_textured(k, 48, 48) for k in range(10)], fps=10)
    res = evaluate_deblur(clip.parent, tmp_path / "e", methods="blurry,tfp", v_ths=[1.0], size=48, n_blur=3,
                          progress=False)
    assert res["protocol"]["source"] == "video"
    assert len(res["per_image"]) == 2 * 3  # 10 frames, windows of 3 without overlap: centres 1, 4, 7
    assert all(math.isfinite(r["psnr_gray"]) for r in res["per_image"])


# ----------------------------------------------------------------------------------- reconstruct
def _periodic(rate: float, t: int, h: int, w: int) -> np.ndarray:
    """A constant-rate stream: a spike at t when floor((t + 1) rate) > floor(t rate)."""
    k = np.arange(t)
    fire = (np.floor((k + 1) * rate) > np.floor(k * rate)).astype(np.uint8)
    return np.broadcast_to(fire[:, None, None], (t, h, w)).copy()


def test_eval_reconstruct_tfp_of_a_constant_rate_stream(tmp_path, tiny_dir):
    root = tmp_path / "spk2imgnet"
    h, w = 40, 48
    (root / "spike").mkdir(parents=True)
    write_dat(root / "spike" / "scene_key_id31.dat", _periodic(0.3, 61, h, w))
    save_image(root / "gt" / "scene_key_id31.png", torch.full((1, h, w), 0.5))
    res = evaluate_reconstruct(root, tmp_path / "e", weights=tiny_dir, steps=2, progress=False)
    assert res["methods"] == ["tfp", "tfi", "blend", "spikegen"]
    # the TFP/TFI blend of a rate-0.3 stream: about 0.3 / 0.6 (TFP-21 6 or 7 spikes, TFI 1/3 or 1/4)
    blend_img = load_image(tmp_path / "e" / "images" / "000_scene_key_id31_blend.png", gray=True)
    assert abs(float(blend_img.mean()) - 0.5) < 0.06 and "inverse" not in res["protocol"]["tfp"]
    assert "(n r^2)^2" in res["protocol"]["blend"]
    # 61 frames at rate 0.3 hold floor(61 * 0.3) = 18 spikes: TFP = 18 / 61 / 0.6 = 0.4918 -> 125 in 8 bits
    tfp_img = load_image(tmp_path / "e" / "images" / "000_scene_key_id31_tfp.png", gray=True)
    assert torch.all((tfp_img * 255).round() == 125)
    row = next(r for r in res["per_image"] if r["method"] == "tfp")
    assert row["psnr"] == pytest.approx(20 * math.log10(255 / 3), abs=1e-6)  # GT 128 vs 125
    assert row["ssim"] > 0.99 and row["lpips"] >= 0
    assert all(math.isfinite(r[k]) for r in res["summary"] for k in ("psnr", "ssim", "lpips"))
    assert (tmp_path / "e" / "report.html").is_file()


def test_eval_reconstruct_rate_scale_and_window(tmp_path):
    root = tmp_path / "spk"
    (root / "spike").mkdir(parents=True)
    write_dat(root / "spike" / "a.dat", _periodic(0.5, 41, 32, 32))  # no key in the name: the middle frame
    save_image(root / "gt" / "a.png", torch.full((1, 32, 32), 0.5))
    res = evaluate_reconstruct(root, tmp_path / "e", methods="tfp", window=21, rate_scale=1.0, progress=False)
    assert res["protocol"]["window"] == 21
    img = load_image(tmp_path / "e" / "images" / "000_a_tfp.png", gray=True)
    assert abs(float(img.mean()) - 0.5) < 0.03  # rate 0.5 x 1.0 (10 or 11 of 21 frames)


@pytest.mark.parametrize("tfp_window", [0, 21])
def test_eval_reconstruct_spikegen_gets_the_tfp_row_and_the_centred_frames(tmp_path, monkeypatch, tfp_window):
    import spikegen.tasks.reconstruct
    from types import SimpleNamespace

    calls = []

    class Fake:
        config = SimpleNamespace(sample_steps=1, tfp_window=tfp_window)
        device = torch.device("cpu")

        def sample(self, rgb=None, spikes=None, gamma=0.5, steps=None, generator=None, tfp_rgb=None, **kw):
            calls.append({"rgb": (tuple(rgb.shape), round(rgb.min().item(), 4), round(rgb.max().item(), 4)),
                          "shape": tuple(spikes.shape), "gamma": gamma, "tfp_rgb": tfp_rgb,
                          "first": spikes[0, 0, 0, 0].item(), "last": spikes[0, -1, 0, 0].item()})
            return spikes.float().mean(1, keepdim=True).expand(-1, 3, -1, -1)

    monkeypatch.setattr(spikegen.tasks.reconstruct, "load_default_model", lambda weights=None, device=None, task="deblur": Fake())
    root = tmp_path / "spk"
    (root / "spike").mkdir(parents=True)
    s = np.zeros((61, 32, 32), np.uint8)
    s[22:38] = 1  # exactly the centred 16 frames of the 61 fire
    write_dat(root / "spike" / "x_key_id31.dat", s)
    save_image(root / "gt" / "x_key_id31.png", torch.ones(1, 32, 32))
    res = evaluate_reconstruct(root, tmp_path / "e", methods="spikegen", spikegen_frames=16, weights=tmp_path,
                               rate_scale=0.5, progress=False)
    # the RGB branch gets the TFP row's image (the 61-frame mean x rate_scale), or the TFP of the
    # centred 21 frames (all 16 spikes inside) for weights that name tfp_window 21
    tfp_row = round(16 / (tfp_window or 61) * 0.5, 4)
    assert calls == [{"rgb": ((1, 3, 32, 32), tfp_row, tfp_row), "shape": (1, 16, 32, 32), "gamma": 0.5,
                      "tfp_rgb": None, "first": 1, "last": 1}]
    assert math.isinf(res["per_image"][0]["psnr"])  # the fake's output is all ones, like the GT


# ----------------------------------------------------------------------------------- real
def test_eval_real_on_an_npz(tmp_path, tiny_dir):
    g = np.random.default_rng(0)
    y, x = np.mgrid[0:100, 0:100] / 100.0
    (tmp_path / "real").mkdir()
    rate = 0.05 + 0.4 * (0.5 + 0.5 * np.sin(8 * x) * np.cos(6 * y))
    save_spikes(tmp_path / "real" / "cap.npz", (g.random((40, 100, 100)) < rate).astype(np.uint8))
    res = evaluate_real(tmp_path / "real", tmp_path / "e", window=21, centers=2, weights=tiny_dir, steps=2,
                        progress=False)
    assert [r["image"] for r in res["per_image"]][::4] == ["cap.npz@13", "cap.npz@27"]
    assert {r["method"] for r in res["summary"]} == {"tfp", "tfi", "blend", "spikegen"}
    for r in res["summary"]:
        assert r["n"] == 2 and math.isfinite(r["niqe"]) and math.isfinite(r["brisque"])
    assert (tmp_path / "e" / "images" / "000_cap_000013_spikes.png").is_file()


# ----------------------------------------------------------------------------------- bad input
def test_bad_inputs_raise_clear_errors(tmp_path, image_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SpikeGenError, match="no image files"):
        evaluate_deblur(empty, tmp_path / "e1", methods="tfp", progress=False)
    with pytest.raises(SpikeGenError, match="no spike files"):
        evaluate_real(empty, tmp_path / "e2", progress=False)
    with pytest.raises(SpikeGenError, match="spike"):
        evaluate_reconstruct(empty, tmp_path / "e3", progress=False)
    with pytest.raises(SpikeGenError, match="unknown method 'sharpen'"):
        evaluate_deblur(image_dir, tmp_path / "e4", methods="tfp,sharpen", progress=False)
    with pytest.raises(SpikeGenError, match="'blurry' needs an RGB input"):
        parse_methods("blurry", "reconstruct")
    with pytest.raises(SpikeGenError, match="'blend' is a reconstruction"):
        parse_methods("blend", "deblur")
    assert [m.label for m in parse_methods("blend,tfi", "real")] == ["TFP/TFI blend", "TFI"]
    with pytest.raises(SpikeGenError, match=r"\[0, 1\]"):
        parse_methods("spikegen-2", "deblur")
    with pytest.raises(SpikeGenError, match="--vth"):
        evaluate_deblur(image_dir, tmp_path / "e5", methods="tfp", v_ths="1,x", progress=False)
    with pytest.raises(SpikeGenError, match="no such file"):
        evaluate_deblur(tmp_path / "nope", tmp_path / "e6", methods="tfp", progress=False)
    (tmp_path / "e7").mkdir()
    (tmp_path / "e7" / "results.json").write_text("{}")
    with pytest.raises(OutputExistsError):
        evaluate_deblur(image_dir, tmp_path / "e7", methods="tfp", size=32, progress=False)
    assert (tmp_path / "e7" / "results.json").read_text() == "{}"


def test_cli_eval_bad_task_and_options(image_dir, tmp_path, capsys):
    code, _, err = _run(["eval", "denoise", "--data", image_dir, "-o", tmp_path / "e"], capsys)
    assert code == 2 and "denoise" in err  # typer: no such command
    code, _, err = _run(["eval", "reconstruct", "--data", image_dir, "--vth", "1", "-o", tmp_path / "e"], capsys)
    assert code == 2 and "No such option" in err and "--vth" in err  # each task has only its own options
    code, _, err = _run(["eval", "real", "--data", image_dir, "--colour", "model", "-o", tmp_path / "e"], capsys)
    assert code == 2 and "No such option" in err and "--colour" in err
    code, _, err = _run(["eval", "deblur", "--data", image_dir, "--methods", "foo", "-o", tmp_path / "e"], capsys)
    assert code == 2 and "unknown method 'foo'" in err
    code, out, _ = _run(["eval", "--help"], capsys)
    assert code == 0 and "deblur" in out


@pytest.mark.parametrize("lo,hi", [(8.4, 21.45), (0.1, 0.9), (20.0, 20.0), (14.7, 24.8), (-3.0, 0.2)])
def test_plot_axis_covers_every_point(lo, hi):
    from spikegen.tasks.plots import _nice_ticks, line_plot

    ticks = _nice_ticks(lo, hi)
    assert ticks[0] <= lo and ticks[-1] >= hi and len(ticks) <= 8
    assert line_plot({"a": ([1, 2], [lo, hi])}).size == (640, 400)
