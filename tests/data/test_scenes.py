from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from spikegen.data import (
    load_rgba_composited,
    read_blender_scene,
    read_scene_splits,
    read_spikegs_scene,
    write_scene,
)
from spikegen.errors import OutputExistsError, SpikeFileError

H, W = 12, 16
FOV = 0.6911112070083618


def _pose(seed: int) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = q, rng.normal(size=3) * 4
    return m.tolist()


def _rgba(path: Path, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = (rng.random((H, W, 4)) * 255).astype(np.uint8)
    a[0, 0, 3], a[0, 1, 3] = 0, 255  # one transparent and one opaque pixel
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a, "RGBA").save(path)
    return a


def _toy_scene(root: Path, split: str = "train", n: int = 3, folder: str | None = None) -> dict:
    folder = folder or split
    frames = []
    for i in range(n):
        _rgba(root / folder / f"r_{i}.png", 100 * (split == "test") + i)
        frames.append({"file_path": f"./{folder}/r_{i}", "rotation": 0.0125, "transform_matrix": _pose(7 * i + len(split))})
    data = {"camera_angle_x": FOV, "frames": frames}
    (root / f"transforms_{split}.json").write_text(json.dumps(data, indent=2))
    return data


def test_read_blender_scene(tmp_path: Path):
    data = _toy_scene(tmp_path)
    sc = read_blender_scene(tmp_path, "train")
    assert len(sc) == 3 and (sc.width, sc.height) == (W, H)
    assert sc.focal == pytest.approx(0.5 * W / math.tan(0.5 * FOV))
    assert (sc.cx, sc.cy) == (W / 2, H / 2)
    assert np.array_equal(sc.poses, np.array([f["transform_matrix"] for f in data["frames"]]))
    assert sc.frames[1].file_path == "./train/r_1" and sc.frames[1].path == tmp_path / "train" / "r_1.png"
    assert sc.frames[0].entry["rotation"] == 0.0125 and sc.frames[2].name == "r_2"
    img = sc.image(0)
    assert img.shape == (3, H, W) and img.dtype == torch.float32
    assert torch.equal(img[:, 0, 0], torch.ones(3))  # transparent -> white background
    black = read_blender_scene(tmp_path, "train", background=(0, 0, 0)).image(0)
    assert torch.equal(black[:, 0, 0], torch.zeros(3))
    assert torch.equal(black[:, 0, 1], img[:, 0, 1])  # opaque pixels do not depend on the background
    # composite formula
    raw = np.asarray(Image.open(tmp_path / "train" / "r_0.png"), np.float32) / 255
    ref = raw[..., :3] * raw[..., 3:] + (1 - raw[..., 3:])
    assert np.allclose(img.permute(1, 2, 0).numpy(), ref, atol=1e-6)
    assert len(list(sc.images())) == 3


def test_write_and_reread_gives_identical_poses_and_images(tmp_path: Path):
    src = tmp_path / "src"
    _toy_scene(src, "train")
    _toy_scene(src, "test", n=2)
    train, test = read_blender_scene(src, "train"), read_blender_scene(src, "test")
    restored = [torch.rand(3, H, W, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    out = write_scene(train, tmp_path / "out", images=restored)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "train/r_0.png", "train/r_1.png", "train/r_2.png", "transforms.json", "transforms_train.json"]
    assert json.loads((out / "transforms_train.json").read_text()) == json.loads((src / "transforms_train.json").read_text())
    back = read_blender_scene(out, "train")
    assert np.array_equal(back.poses, train.poses)
    assert [f.file_path for f in back.frames] == [f.file_path for f in train.frames]
    assert back.focal == train.focal
    for i in range(3):
        assert torch.allclose(back.image(i), restored[i], atol=0.5 / 255 + 1e-6)
    # both splits, images from the source scene, nerfstudio's transforms.json
    out2 = write_scene([train, test], tmp_path / "out2")
    assert set(read_scene_splits(out2)) == {"train", "test"}
    assert torch.allclose(read_blender_scene(out2, "test").image(1), test.image(1), atol=0.5 / 255 + 1e-6)
    ns = json.loads((out2 / "transforms.json").read_text())
    assert ns["camera_model"] == "OPENCV" and (ns["w"], ns["h"]) == (W, H)
    assert ns["fl_x"] == pytest.approx(train.focal) and ns["fl_y"] == pytest.approx(train.focal)
    assert (ns["cx"], ns["cy"]) == (W / 2, H / 2)
    assert len(ns["frames"]) == 5
    for f in ns["frames"]:
        assert (out2 / f["file_path"]).is_file()
    assert np.array_equal(np.array([f["transform_matrix"] for f in ns["frames"][:3]]), train.poses)
    assert ns["train_filenames"] == ["train/r_0.png", "train/r_1.png", "train/r_2.png"]
    assert ns["test_filenames"] == ns["val_filenames"] == ["test/r_0.png", "test/r_1.png"]


def test_write_refuses_to_overwrite_and_unsafe_paths(tmp_path: Path):
    _toy_scene(tmp_path / "src")
    sc = read_blender_scene(tmp_path / "src")
    out = write_scene(sc, tmp_path / "out")
    before = (out / "train" / "r_0.png").read_bytes()
    with pytest.raises(OutputExistsError):
        write_scene(sc, out, images=[torch.zeros(3, H, W)] * 3)
    assert (out / "train" / "r_0.png").read_bytes() == before
    write_scene(sc, out, images=[torch.zeros(3, H, W)] * 3, overwrite=True)
    assert float(load_rgba_composited(out / "train" / "r_0.png").max()) == 0.0
    bad = sc.subset([0])
    bad.frames[0].file_path = "../escape"
    with pytest.raises(SpikeFileError, match="inside"):
        write_scene(bad, tmp_path / "out3")
    with pytest.raises(Exception, match="size"):
        write_scene(sc, tmp_path / "out4", images=[torch.zeros(3, H + 1, W)] * 3)


def test_clear_errors_for_missing_json_or_images(tmp_path: Path):
    _toy_scene(tmp_path)
    with pytest.raises(SpikeFileError, match=r"transforms_test\.json.*\['train'\]"):
        read_blender_scene(tmp_path, "test")
    (tmp_path / "train" / "r_1.png").unlink()
    with pytest.raises(SpikeFileError, match="r_1"):
        read_blender_scene(tmp_path, "train")
    lazy = read_blender_scene(tmp_path, "train", check_files=False)
    with pytest.raises(SpikeFileError, match="r_1"):
        lazy.image(1)
    (tmp_path / "transforms_val.json").write_text("{not json")
    with pytest.raises(SpikeFileError, match="JSON"):
        read_blender_scene(tmp_path, "val")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpikeFileError, match="no transforms"):
        read_scene_splits(tmp_path / "empty")


def test_spikegs_layout(tmp_path: Path):
    _toy_scene(tmp_path, "train")
    _toy_scene(tmp_path, "test", n=2)
    for i in range(3):
        _rgba(tmp_path / "TFP_noise" / f"r_{i}.png", 50 + i)
        _rgba(tmp_path / "TFI_noise" / f"r_{i}.png", 60 + i)
    gs = read_spikegs_scene(tmp_path)
    assert len(gs.train) == 3 and len(gs.test) == 2
    assert gs.tfp is not None and gs.tfi is not None
    assert np.array_equal(gs.tfp.poses, gs.train.poses) and np.array_equal(gs.tfi.poses, gs.train.poses)
    assert [f.path for f in gs.tfp.frames] == [tmp_path / "TFP_noise" / f"r_{i}.png" for i in range(3)]
    assert gs.tfp.image(2).shape == (3, H, W)
    # the variant writes back as its own split with its own folder
    out = write_scene([gs.train, gs.tfp], tmp_path / "out")
    assert (out / "TFP_noise" / "r_0.png").is_file() and (out / "transforms_TFP.json").is_file()
    assert np.array_equal(read_blender_scene(out, "TFP").poses, gs.train.poses)
    (tmp_path / "TFI_noise" / "r_2.png").unlink()
    with pytest.raises(SpikeFileError, match="r_2"):
        read_spikegs_scene(tmp_path)
    with pytest.raises(SpikeFileError, match="transforms_train"):
        read_spikegs_scene(tmp_path / "TFP_noise")


def test_shared_lego_scene(shared_data: Path):
    sc = read_blender_scene(shared_data / "nvs" / "lego", "train")
    assert len(sc) == 50 and (sc.width, sc.height) == (800, 800)
    assert sc.focal == pytest.approx(1111.111, abs=1e-2)
    img = sc.image(0)
    assert img.shape == (3, 800, 800)
    assert torch.equal(img[:, 0, 0], torch.ones(3))  # empty corner on white
