from __future__ import annotations

from pathlib import Path

import pytest
import torch

from spikegen.data import DEFAULT_GAIN, SyntheticPairs, collate_samples, sample_seed
from spikegen.errors import SpikeFileError


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in ("clean", "blurry", "spikes")) and a["meta"] == b["meta"]


def test_sample_shapes_dtypes_and_ranges(image_tree: Path):
    ds = SyntheticPairs(image_tree, 64, exclude=("mcmaster18",), blur_size=15)
    assert len(ds) == 4
    for i in range(len(ds)):
        s = ds[i]
        assert s["clean"].shape == (3, 64, 64) and s["clean"].dtype == torch.float32
        assert s["blurry"].shape == (3, 64, 64) and s["blurry"].dtype == torch.float32
        assert s["spikes"].shape == (8, 64, 64) and s["spikes"].dtype == torch.uint8
        for k in ("clean", "blurry"):
            assert 0.0 <= float(s[k].min()) and float(s[k].max()) <= 1.0
        assert set(s["spikes"].unique().tolist()) <= {0, 1}
        assert 0.05 < float(s["spikes"].float().mean()) < 0.95
        m = s["meta"]
        assert m["index"] == i and Path(m["source"]).is_file() and m["gain"] == DEFAULT_GAIN and m["v_th"] == 1.0
        # the blur changes the image but keeps its mean (the kernel sums to 1)
        assert not torch.equal(s["blurry"], s["clean"])
        assert abs(float(s["blurry"].mean() - s["clean"].mean())) < 0.05


def test_spikes_follow_the_sharp_intensity(image_tree: Path):
    ds = SyntheticPairs(image_tree, 64, frames=64, init="zero", gain=0.5, blur_size=9, exclude=("mcmaster18",))
    s = ds[0]
    gray = (0.2989 * s["clean"][0] + 0.5870 * s["clean"][1] + 0.1140 * s["clean"][2])
    rate = s["spikes"].float().mean(0)
    # long-run rate of integrate-and-fire is gain * I / V_th: within 1/T of it everywhere
    assert float((rate - 0.5 * gray).abs().max()) <= 1.0 / 64 + 1e-6


def test_same_seed_epoch_index_same_sample_and_epoch_changes_it(image_tree: Path):
    a = SyntheticPairs(image_tree, 48, blur_size=9, seed=3)
    b = SyntheticPairs(image_tree, 48, blur_size=9, seed=3)
    assert _same(a[1], b[1])
    assert _same(a[1], a[1])  # no hidden state consumed between calls
    a.set_epoch(1)
    s1 = a[1]
    assert not torch.equal(s1["spikes"], b[1]["spikes"]) and s1["meta"]["epoch"] == 1
    b.set_epoch(1)
    assert _same(s1, b[1])
    c = SyntheticPairs(image_tree, 48, blur_size=9, seed=4)
    assert not torch.equal(c[1]["spikes"], b[1]["spikes"]) or c[1]["meta"]["crop"] != b[1]["meta"]["crop"]
    assert sample_seed(3, 1, 1) == s1["meta"]["sample_seed"]


def test_worker_count_does_not_change_the_batches(image_tree: Path):
    ds = SyntheticPairs(image_tree, 32, blur_size=7, frames=4, length=6)
    ds.set_epoch(2)

    def run(workers: int) -> list[dict]:
        dl = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=workers, collate_fn=collate_samples)
        return list(dl)

    b0, b2 = run(0), run(2)
    for x, y in zip(b0, b2):
        for k in ("clean", "blurry", "spikes"):
            assert torch.equal(x[k], y[k])
        assert x["meta"] == y["meta"]
    assert all(m["epoch"] == 2 for b in b2 for m in b["meta"])


def test_validation_split_is_excluded(image_tree: Path, shared_data: Path):
    ds = SyntheticPairs(image_tree, 32, exclude=("mcmaster18",))
    assert not any("mcmaster18" in f.parts for f in ds.files)
    assert len(SyntheticPairs(image_tree, 32).files) == len(ds.files) + 1
    images = shared_data / "images"
    full = SyntheticPairs(images, 64)
    train = SyntheticPairs(images, 64, exclude=("mcmaster18",))
    held = [f for f in full.files if "mcmaster18" in f.parts]
    assert len(held) == 18
    assert not any("mcmaster18" in f.parts for f in train.files)
    assert len(train.files) == len(full.files) - 18
    # globs work too
    assert len(SyntheticPairs(images, 64, exclude=("*.tif",)).files) == len(full.files) - 18


def test_small_images_are_upscaled_not_refused(image_tree: Path):
    ds = SyntheticPairs(image_tree / "small.png", 64, blur_size=9)  # a 40x50 image
    s = ds[0]
    assert s["clean"].shape == (3, 64, 64)
    assert s["meta"]["resize"] == pytest.approx(64 / 40, rel=1e-3)
    rect = SyntheticPairs(image_tree, (48, 72), blur_size=9, exclude=("mcmaster18",))
    assert rect[0]["clean"].shape == (3, 48, 72) and rect[0]["spikes"].shape[-2:] == (48, 72)


def test_vth_range_is_drawn_per_sample(image_tree: Path):
    ds = SyntheticPairs(image_tree, 32, blur_size=7, v_th=(1.0, 4.0), length=12)
    vs = [ds[i]["meta"]["v_th"] for i in range(len(ds))]
    assert all(1.0 <= v <= 4.0 for v in vs) and len(set(vs)) == len(vs)
    # higher thresholds give sparser spikes
    lo = SyntheticPairs(image_tree, 32, blur_size=7, v_th=1.0)[0]["spikes"].float().mean()
    hi = SyntheticPairs(image_tree, 32, blur_size=7, v_th=4.0)[0]["spikes"].float().mean()
    assert hi < lo / 2


def test_photon_sampling_and_no_augment(image_tree: Path):
    ds = SyntheticPairs(image_tree, 40, spikes="photon", frames=6, blur_size=7, augment=False)
    s = ds[0]
    assert s["spikes"].shape == (6, 40, 40) and s["spikes"].dtype == torch.uint8
    per_frame = s["spikes"].float().mean((1, 2))
    assert bool((per_frame > 0).all()) and bool((per_frame <= 0.1 + 1e-6).all())
    assert s["meta"]["coverage"] == 0.1 and not s["meta"]["flip"]
    # no augment: centred crop, the same for every epoch
    ds.set_epoch(5)
    assert ds[0]["meta"]["crop"] == s["meta"]["crop"] and torch.equal(ds[0]["clean"], s["clean"])


def test_length_cycles_over_images(image_tree: Path):
    ds = SyntheticPairs(image_tree, 32, blur_size=7, length=10, exclude=("mcmaster18",))
    assert len(ds) == 10
    assert ds[5]["meta"]["source"] == ds[1]["meta"]["source"]
    with pytest.raises(IndexError):
        ds[10]


def test_clear_errors(tmp_path: Path, image_tree: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpikeFileError, match="no image files"):
        SyntheticPairs(tmp_path / "empty", 64)
    with pytest.raises(SpikeFileError, match="no such"):
        SyntheticPairs(tmp_path / "nope", 64)
    with pytest.raises(SpikeFileError, match="mcmaster18"):
        SyntheticPairs(image_tree / "mcmaster18", 64, exclude=("*.png",))
    with pytest.raises(ValueError, match="v_th"):
        SyntheticPairs(image_tree, 64, v_th=(2.0, 1.0))
    with pytest.raises(ValueError, match="spikes"):
        SyntheticPairs(image_tree, 64, spikes="poisson")
