"""`spikegen nvs`: prepare -> restore on a toy scene made here, the written layout re-read with the
scene reader (poses identical), the 3DGS stage's CPU behaviour, and `nvs eval` metrics."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cli_helpers import run
from spikegen.cli import main
from spikegen.data.scenes import load_rgba_composited, read_blender_scene, read_scene_splits
from spikegen.spikes.io import load_spikes
from spikegen.tasks.nvs import parse_background, resized_size, restore_views, view_names

S = 32  # toy image side
FOV = 0.6911112070083618


def _pose(seed: int) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = q, rng.normal(size=3) * 4
    return m.tolist()


def make_scene(root: Path, n: int = 3, *, extra: dict | None = None, test: int = 0) -> dict:
    """A sharp Blender scene: n RGBA views (an object with edges on a transparent background)."""
    y, x = np.mgrid[0:S, 0:S]
    splits = {"train": n, "test": test} if test else {"train": n}
    data = {}
    for split, count in splits.items():
        frames = []
        for i in range(count):
            rgba = np.zeros((S, S, 4), np.uint8)
            inside = (abs(x - S / 2 - i) < 9) & (abs(y - S / 2) < 7 + i)
            rgba[..., 0] = (x * 8 + 40 * i) % 256
            rgba[..., 1] = (y * 8) % 256
            rgba[..., 2] = ((x // 4 + y // 4) % 2) * 255  # a checkerboard: plenty of edges to blur
            rgba[..., 3] = np.where(inside, 255, 0)
            (root / split).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rgba, "RGBA").save(root / split / f"r_{i}.png")
            frames.append({"file_path": f"./{split}/r_{i}", "rotation": 0.0125,
                           "transform_matrix": _pose(11 * i + 3 * (split == "test"))})
        data[split] = {"camera_angle_x": FOV, **(extra or {}), "frames": frames}
        (root / f"transforms_{split}.json").write_text(json.dumps(data[split], indent=2))
    return data


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("toy") / "scene"
    return root, make_scene(root)


@pytest.fixture(scope="module")
def prepared(toy, tmp_path_factory) -> Path:
    """The toy scene prepared with view 0 held out as the test view (--test-every 3)."""
    out = tmp_path_factory.mktemp("prep") / "prep"
    with pytest.raises(SystemExit) as e:
        main([*map(str, ["nvs", "prepare", toy[0], "-o", out, "--test-every", 3, "--size", 9, "--no-progress"])])
    assert e.value.code in (0, None)
    return out


def test_prepare_layout_poses_blur_and_spikes(toy, prepared, capsys):
    src, data = toy
    out = prepared
    frames = data["train"]["frames"]
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == sorted([
        "kernels.npz", "prepare.json", "transforms.json", "transforms_train.json", "transforms_test.json",
        "train/r_1.png", "train/r_2.png", "test/r_0.png", "spikes/r_1.npz", "spikes/r_2.npz",
        "sharp/transforms.json", "sharp/transforms_train.json", "sharp/transforms_test.json",
        "sharp/train/r_1.png", "sharp/train/r_2.png", "sharp/test/r_0.png"])
    # an independent reader sees a Blender scene of blurry views with the input's poses, exactly
    splits = read_scene_splits(out)
    train, test = splits["train"], splits["test"]
    assert [f.file_path for f in train.frames] == ["./train/r_1", "./train/r_2"]
    assert np.array_equal(train.poses, np.array([frames[1]["transform_matrix"], frames[2]["transform_matrix"]]))
    assert [f.file_path for f in test.frames] == ["./test/r_0"]
    assert np.array_equal(test.poses, np.array([frames[0]["transform_matrix"]]))
    assert train.camera_angle_x == FOV and train.focal == pytest.approx(0.5 * S / math.tan(0.5 * FOV))
    raw = json.loads((out / "transforms_train.json").read_text())
    assert raw["frames"][0]["transform_matrix"] == frames[1]["transform_matrix"]
    assert raw["frames"][0]["rotation"] == 0.0125  # entries kept verbatim
    # sharp/ is the source composited on white; the blurry views differ from it; test views are sharp
    for i, f in zip((1, 2), train.frames):
        ref = load_rgba_composited(src / "train" / f"r_{i}.png")
        sharp = load_rgba_composited(out / "sharp" / "train" / f"r_{i}.png")
        blurry = train.image(i - 1)
        assert torch.allclose(sharp, ref, atol=0.5 / 255 + 1e-6)
        assert (blurry - sharp).abs().mean() > 0.02
        assert abs(float(blurry.mean() - sharp.mean())) < 0.03  # the kernel sums to 1
    assert torch.allclose(test.image(0), load_rgba_composited(src / "train" / "r_0.png"), atol=0.5 / 255 + 1e-6)
    # spikes: [T, H, W] of {0, 1}, rate = gain * gray / v_th on average
    for i in (1, 2):
        s, meta = load_spikes(out / "spikes" / f"r_{i}.npz", with_meta=True)
        assert s.shape == (8, S, S) and s.dtype == np.uint8 and set(np.unique(s)) <= {0, 1}
        assert meta["v_th"] == 1.0 and meta["gain"] == 0.6 and meta["source"] == f"./train/r_{i}"
        sharp = load_rgba_composited(out / "sharp" / "train" / f"r_{i}.png")
        gray = (0.2989 * sharp[0] + 0.5870 * sharp[1] + 0.1140 * sharp[2]).mean()
        assert abs(s.mean() - 0.6 * float(gray)) < 0.08
    # prepare.json records every option; nerfstudio's transforms.json names every frame
    m = json.loads((out / "prepare.json").read_text())
    assert m["options"] == {"v_th": 1.0, "gain": 0.6, "frames": 8, "kernels": 8, "size": 9, "seed": 0,
                            "resolution": None, "test_every": 3, "background": [1.0, 1.0, 1.0]}
    assert [v["spikes"] for v in m["views"]] == ["spikes/r_1.npz", "spikes/r_2.npz"]
    assert np.load(out / "kernels.npz")["kernels"].shape == (2, 9, 9)
    ns = json.loads((out / "transforms.json").read_text())
    assert ns["train_filenames"] == ["train/r_1.png", "train/r_2.png"] and ns["test_filenames"] == ["test/r_0.png"]
    assert np.array_equal(np.array([f["transform_matrix"] for f in ns["frames"][:2]]), train.poses)
    # existing outputs are never replaced without --overwrite
    before = (out / "train" / "r_1.png").read_bytes()
    code, _, err = run(["nvs", "prepare", src, "-o", out, "--test-every", 3, "--seed", 5, "--no-progress"], capsys)
    assert code == 2 and "exists" in err and "--overwrite" in err
    assert (out / "train" / "r_1.png").read_bytes() == before


def test_prepare_is_reproducible_and_seeded(toy, prepared, tmp_path, capsys):
    out = tmp_path / "again"
    assert run(["nvs", "prepare", toy[0], "-o", out, "--test-every", 3, "--size", 9, "--no-progress"], capsys)[0] == 0
    assert (out / "train" / "r_2.png").read_bytes() == (prepared / "train" / "r_2.png").read_bytes()
    assert np.array_equal(load_spikes(out / "spikes" / "r_2.npz"), load_spikes(prepared / "spikes" / "r_2.npz"))
    out2 = tmp_path / "seed1"
    assert run(["nvs", "prepare", toy[0], "-o", out2, "--test-every", 3, "--size", 9, "--seed", 1, "--no-progress"], capsys)[0] == 0
    assert not np.array_equal(load_spikes(out2 / "spikes" / "r_2.npz"), load_spikes(prepared / "spikes" / "r_2.npz"))


def test_prepare_test_json_resolution_and_intrinsics(tmp_path, capsys):
    src = tmp_path / "src"
    data = make_scene(src, n=2, test=2, extra={"fl_x": 40.0, "fl_y": 41.0, "cx": 16.0, "cy": 15.0, "w": S, "h": S})
    out = tmp_path / "out"
    code, stdout, _ = run(["nvs", "prepare", src, "-o", out, "--resolution", 16, "--vth", 2, "--frames", 4,
                           "--background", "black", "--no-progress"], capsys)
    assert code == 0 and "2 blurry training views" in stdout and "2 sharp test views" in stdout
    train, test = read_blender_scene(out, "train"), read_blender_scene(out, "test")
    assert (train.width, train.height) == (16, 16) and train.image(0).shape == (3, 16, 16)
    assert [f.file_path for f in test.frames] == ["./test/r_0", "./test/r_1"]  # transforms_test.json used as is
    assert np.array_equal(test.poses, np.array([f["transform_matrix"] for f in data["test"]["frames"]]))
    tr = json.loads((out / "transforms_train.json").read_text())
    assert tr["camera_angle_x"] == FOV  # resolution-independent
    assert (tr["fl_x"], tr["fl_y"], tr["cx"], tr["cy"], tr["w"], tr["h"]) == (20.0, 20.5, 8.0, 7.5, 16, 16)
    assert train.focal == 20.0 and train.focal_y == 20.5
    m = json.loads((out / "prepare.json").read_text())
    assert m["blur"]["size_px"] == 20 and m["camera"]["size"] == [16, 16] and m["test_source"] == "transforms_test.json"
    s, meta = load_spikes(out / "spikes" / "r_0.npz", with_meta=True)
    assert s.shape == (4, 16, 16) and meta["v_th"] == 2.0
    # black background: the transparent corner of the sharp test view is black
    assert torch.equal(test.image(0)[:, 0, 0], torch.zeros(3))


@pytest.mark.parametrize("method", ["tfp", "tfi", "spikegen"])
def test_restore_writes_the_restored_scene(prepared, tiny_dir, tmp_path, method, capsys):
    out = tmp_path / method
    extra = ["--weights", tiny_dir, "--steps", 2, "--batch", 2] if method == "spikegen" else []
    code, stdout, err = run(["nvs", "restore", prepared, "-o", out, "--method", method, "--no-progress", *extra], capsys)
    assert code == 0, err
    assert "2 views restored" in stdout and "vs sharp" in stdout
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == ["restore.json", "test/r_0.png", "train/r_1.png", "train/r_2.png", "transforms.json",
                     "transforms_test.json", "transforms_train.json"]
    for split in ("train", "test"):
        assert json.loads((out / f"transforms_{split}.json").read_text()) == json.loads((prepared / f"transforms_{split}.json").read_text())
    back, src = read_blender_scene(out, "train"), read_blender_scene(prepared, "train")
    assert np.array_equal(back.poses, src.poses) and back.image(0).shape == (3, S, S)
    assert torch.equal(read_blender_scene(out, "test").image(0), read_blender_scene(prepared, "test").image(0))
    ns = json.loads((out / "transforms.json").read_text())
    assert [f["file_path"] for f in ns["frames"]] == ["train/r_1.png", "train/r_2.png", "test/r_0.png"]
    assert np.array_equal(np.array([f["transform_matrix"] for f in ns["frames"][:2]]), src.poses)
    info = json.loads((out / "restore.json").read_text())
    assert info["method"] == method and info["sensor"] == {"v_th": 1.0, "gain": 0.6}
    assert len(info["vs_sharp"]["views"]) == 2 and np.isfinite(info["vs_sharp"]["mean"]["psnr"])
    spikes = load_spikes(prepared / "spikes" / "r_1.npz").astype(np.float64)
    if method == "tfp":  # independent: mean firing rate x v_th / gain, gray in every channel
        ref = np.clip(spikes.mean(0) / 0.6, 0, 1)
        got = back.image(0).numpy()
        assert np.abs(got - ref[None]).max() <= 0.5 / 255 + 1e-6
    elif method == "tfi":
        got = back.image(0).numpy()
        assert np.array_equal(got[0], got[1]) and np.array_equal(got[1], got[2])
        assert not np.array_equal(got, load_rgba_composited(prepared / "train" / "r_1.png").numpy())
    else:
        assert info["options"]["weights"] == str(tiny_dir) and info["options"]["gamma"] == 0.5


def test_restore_views_formulas():
    s = torch.zeros(1, 8, 2, 2, dtype=torch.uint8)
    s[:, 1::2] = 1  # fires every 2nd frame
    tfp = restore_views("tfp", torch.zeros(1, 3, 2, 2), s, v_th=1.0, gain=0.6)
    assert torch.allclose(tfp, torch.full_like(tfp, 0.5 / 0.6))
    tfi = restore_views("tfi", torch.zeros(1, 3, 2, 2), s, v_th=0.5, gain=0.6)
    assert torch.allclose(tfi, torch.full_like(tfi, 0.5 / (0.6 * 2)))
    with pytest.raises(Exception, match="method"):
        restore_views("nope", torch.zeros(1, 3, 2, 2), s)


def test_restore_errors(toy, prepared, tmp_path, capsys):
    code, _, err = run(["nvs", "restore", toy[0], "-o", tmp_path / "x", "--method", "tfp"], capsys)
    assert code == 2 and "spikes" in err and "nvs prepare" in err  # a sharp scene has no spike streams
    code, _, err = run(["nvs", "restore", prepared, "-o", tmp_path / "y", "--method", "unet"], capsys)
    assert code == 2 and "--method" in err
    code, _, err = run(["nvs", "restore", prepared, "-o", tmp_path / "z", "--gamma", 2], capsys)
    assert code == 2 and "--gamma" in err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists() and not (tmp_path / "z").exists()


def test_train_without_cuda_says_so_and_prints_nerfstudio(prepared, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, _, err = run(["nvs", "train", prepared, "--iterations", 100], capsys)
    assert code == 2
    assert "CUDA" in err and "ns-train splatfacto" in err and "nerfstudio-data --data" in err
    assert str(prepared) in err and "--max-num-iterations 100" in err
    assert not (prepared / "3dgs").exists()


def test_train_without_gsplat_says_pip_install(prepared, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(sys.modules, "gsplat", None)  # import gsplat -> ImportError
    code, _, err = run(["nvs", "train", prepared], capsys)
    assert code == 2 and "pip install gsplat" in err


def test_eval_on_fake_renders_matches_independent_psnr(prepared, tmp_path, capsys):
    run_dir = tmp_path / "run"
    (run_dir / "renders").mkdir(parents=True)
    gt = np.asarray(Image.open(prepared / "test" / "r_0.png").convert("RGB"), np.float64) / 255
    noisy = np.clip(gt + np.random.default_rng(0).normal(0, 0.05, gt.shape), 0, 1)
    Image.fromarray((noisy * 255).round().astype(np.uint8)).save(run_dir / "renders" / "r_0.png")
    code, stdout, err = run(["nvs", "eval", run_dir, "--scene", prepared], capsys)
    assert code == 0, err
    m = json.loads((run_dir / "metrics.json").read_text())
    pred = np.asarray(Image.open(run_dir / "renders" / "r_0.png"), np.float64) / 255
    ref = 10 * np.log10(1.0 / np.mean((pred - gt) ** 2))
    assert m["mean"]["psnr"] == pytest.approx(ref, abs=1e-3) and m["views"][0]["view"] == "r_0"
    assert 0 < m["mean"]["ssim"] < 1 and m["mean"]["lpips"] > 0
    assert "PSNR" in stdout
    # refuses to replace metrics.json; a missing render is named
    assert run(["nvs", "eval", run_dir, "--scene", prepared], capsys)[0] == 2
    (run_dir / "renders" / "r_0.png").unlink()
    code, _, err = run(["nvs", "eval", run_dir, "--scene", prepared, "--overwrite"], capsys)
    assert code == 2 and "r_0.png" in err
    code, _, err = run(["nvs", "eval", run_dir], capsys)
    assert code == 2 and "--scene" in err


def test_helpers():
    assert parse_background("black") == (0.0, 0.0, 0.0) and parse_background("0.5") == (0.5, 0.5, 0.5)
    with pytest.raises(Exception, match="background"):
        parse_background("purple")
    assert resized_size(800, 800, 200) == (200, 200) and resized_size(300, 200, 150) == (150, 100)
    from types import SimpleNamespace as N

    assert view_names([N(file_path="./a/r_0"), N(file_path="./b/r_0")]) == ["a__r_0", "b__r_0"]


@pytest.mark.cuda
def test_gsplat_tiny_training(prepared, tmp_path):
    """A short 3DGS run on the prepared toy scene (needs CUDA and gsplat)."""
    pytest.importorskip("gsplat")
    from spikegen.tasks.nvs import train_3dgs

    r = train_3dgs(prepared / "sharp", tmp_path / "run", iterations=60, init_points=2000, progress=False,
                   refine_start=10, refine_every=10, reset_every=40)
    assert r["train"]["gaussians"] > 0 and (tmp_path / "run" / "renders" / "r_0.png").is_file()
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert np.isfinite(m["mean"]["psnr"]) and (tmp_path / "run" / "point_cloud.ply").stat().st_size > 0


def test_cameras_follow_the_opencv_convention(shared_data):
    """Blender c2w (OpenGL) -> gsplat world-to-camera (OpenCV): lego's cameras look at the origin,
    so it projects to the image centre in front of the camera, and world up (+z) projects upwards."""
    from spikegen.tasks.nvs.gaussians import camera_matrices, scene_extent

    sc = read_blender_scene(shared_data / "nvs" / "lego", "train")
    viewmats, ks = camera_matrices(sc, (200, 200), "cpu")
    assert viewmats.shape == (50, 4, 4) and ks.shape == (50, 3, 3)
    assert ks[0, 0, 0] == pytest.approx(sc.focal / 4) and ks[0, 0, 2] == pytest.approx(100.0)
    for i in range(0, 50, 7):
        o = viewmats[i] @ torch.tensor([0.0, 0.0, 0.0, 1.0])
        up = viewmats[i] @ torch.tensor([0.0, 0.0, 0.5, 1.0])
        assert o[2] > 3.0  # in front (OpenCV: +z forward), about 4 units away
        uv = ks[i] @ (o[:3] / o[2])
        assert abs(uv[0] - 100) < 10 and abs(uv[1] - 100) < 10
        v_up = (ks[i] @ (up[:3] / up[2]))[1]
        assert v_up < uv[1]  # OpenCV: image rows grow downwards
    assert 4.0 < scene_extent(sc) < 5.0  # 1.1 x camera radius (~4.03)


def _fake_gsplat(monkeypatch):
    """A pure-torch stand-in for gsplat (isotropic splats, no sorting) to run the trainer's plumbing on CPU."""
    import types

    from spikegen.tasks.nvs.gaussians import SH_C0

    def rasterization(means, quats, scales, opacities, colors, viewmats, Ks, width, height, sh_degree=None,
                      packed=False, backgrounds=None, render_mode="RGB", **kw):
        assert colors.ndim == 3 and colors.shape[-1] == 3 and (sh_degree + 1) ** 2 <= colors.shape[1]
        homog = torch.cat([means, torch.ones_like(means[:, :1])], 1)
        cam = torch.einsum("cij,nj->cni", viewmats, homog)[..., :3]
        z = cam[..., 2:3].clamp_min(1e-3)
        uv = torch.einsum("cij,cnj->cni", Ks, cam / z)[..., :2]
        sigma = scales.mean(-1)[None] * Ks[:, None, 0, 0] / z[..., 0] + 0.5
        ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
        d2 = (xs - uv[..., 0, None, None]) ** 2 + (ys - uv[..., 1, None, None]) ** 2
        g = torch.exp(-0.5 * d2 / sigma[..., None, None] ** 2) * opacities[None, :, None, None]
        g = g * (cam[..., 2] > 0)[..., None, None]
        rgb = (0.5 + SH_C0 * colors[:, 0]).clamp_min(0)
        alpha = 1 - torch.prod(1 - g.clamp(max=0.99), dim=1)
        col = torch.einsum("cnhw,nk->chwk", g, rgb) / (g.sum(1)[..., None] + 1e-6)
        img = alpha[..., None] * col + (1 - alpha[..., None]) * backgrounds[:, None, None, :]
        return img, alpha[..., None], {"means2d": uv, "radii": (3 * sigma).int(), "width": width, "height": height}

    class DefaultStrategy:
        def __init__(self, **kw):
            self.kw = kw

        def check_sanity(self, params, optimizers):
            assert set(params) == set(optimizers) == {"means", "scales", "quats", "opacities", "sh0", "shN"}

        def initialize_state(self, scene_scale=1.0):
            return {"scene_scale": scene_scale, "post": 0}

        def step_pre_backward(self, params, optimizers, state, step, info):
            info["means2d"].retain_grad()

        def step_post_backward(self, params, optimizers, state, step, info, packed=False):
            assert info["means2d"].grad is not None and not packed
            state["post"] += 1

    mod = types.ModuleType("gsplat")
    mod.rasterization, mod.__version__ = rasterization, "fake"
    strat = types.ModuleType("gsplat.strategy")
    strat.DefaultStrategy = DefaultStrategy
    mod.strategy = strat
    monkeypatch.setitem(sys.modules, "gsplat", mod)
    monkeypatch.setitem(sys.modules, "gsplat.strategy", strat)


def test_3dgs_trainer_plumbing_on_cpu_with_a_stand_in_rasterizer(prepared, tmp_path, monkeypatch):
    """The trainer loop, outputs and metrics, with gsplat replaced by a pure-torch splatter (CPU)."""
    _fake_gsplat(monkeypatch)
    from spikegen.tasks.nvs import train_3dgs

    cfg = dict(iterations=40, init_points=200, init_extent=3.0, resolution=16, sh_degree=1, sh_degree_interval=20)
    out = tmp_path / "run"
    meta = train_3dgs(prepared / "sharp", out, device="cpu", progress=False, **cfg)
    assert meta["train"]["size"] == [16, 16] and meta["train"]["gaussians"] == 200
    assert [r["step"] for r in meta["log"]] == [0, 39]
    assert (out / "renders" / "r_0.png").is_file() and Image.open(out / "renders" / "r_0.png").size == (16, 16)
    m = json.loads((out / "metrics.json").read_text())
    assert np.isfinite(m["mean"]["psnr"]) and meta["metrics"] == m["mean"]
    from safetensors.torch import load_file

    splats = load_file(str(out / "splats.safetensors"))
    assert splats["means"].shape == (200, 3) and splats["shN"].shape == (200, 3, 3)
    ply = (out / "point_cloud.ply").read_bytes()
    head = ply[: ply.index(b"end_header\n") + len(b"end_header\n")].decode()
    assert "element vertex 200" in head and head.count("property float") == 3 + 3 + 3 + 9 + 1 + 3 + 4
    assert len(ply) - len(head) == 200 * 26 * 4
    with pytest.raises(Exception, match="exists"):
        train_3dgs(prepared / "sharp", out, device="cpu", progress=False, **cfg)


def test_prepare_errors_and_no_holdout(toy, tmp_path, capsys):
    code, _, err = run(["nvs", "prepare", tmp_path / "nowhere", "-o", tmp_path / "a"], capsys)
    assert code == 2 and "nowhere" in err
    code, _, err = run(["nvs", "prepare", toy[0], "-o", tmp_path / "b", "--test-every", 1], capsys)
    assert code == 2 and "--test-every" in err and not (tmp_path / "b").exists()
    code, _, err = run(["nvs", "prepare", toy[0], "-o", tmp_path / "c", "--vth", 0], capsys)
    assert code == 2 and "--vth" in err
    out = tmp_path / "d"
    assert run(["nvs", "prepare", toy[0], "-o", out, "--test-every", 0, "--no-progress"], capsys)[0] == 0
    assert not (out / "transforms_test.json").exists()
    assert np.array_equal(read_blender_scene(out).poses, np.array([f["transform_matrix"] for f in toy[1]["train"]["frames"]]))
    assert sorted(p.name for p in (out / "spikes").iterdir()) == ["r_0.npz", "r_1.npz", "r_2.npz"]
