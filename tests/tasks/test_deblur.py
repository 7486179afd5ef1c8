"""`spikegen deblur` and its Python API: shapes, outputs, the uncertainty map, the spike-window
rules for images and videos, and clear errors for bad input."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from spikegen.cli import main
from spikegen.errors import OutputExistsError, ShapeError, SpikeFileError
from spikegen.image import load_image, save_image
from spikegen.spikes.io import save_spikes, write_dat
from spikegen.tasks.deblur import (
    deblur_file,
    deblur_image,
    exposure_windows,
    match_spike_size,
    select_frames,
    side_paths,
)

H, W = 40, 48


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    from spikegen.models import SpikeGen

    return SpikeGen.from_pretrained(tiny_dir).eval()


@pytest.fixture
def blurry(tmp_path) -> Path:
    y, x = torch.meshgrid(torch.linspace(0, 1, H), torch.linspace(0, 1, W), indexing="ij")
    return save_image(tmp_path / "blurry.png", torch.stack([x, y, (x + y) / 2]))


@pytest.fixture
def spikes_npz(tmp_path) -> Path:
    s = (np.random.default_rng(0).random((8, H, W)) < 0.3).astype(np.uint8)
    return save_spikes(tmp_path / "s.npz", s)


class FakeModel:
    """Stands in for SpikeGen: returns the mean of the spikes it gets, and records them."""

    def __init__(self, spike_frames: int | None = None):
        self.config = SimpleNamespace(spike_frames=spike_frames, sample_steps=1)
        self.device = torch.device("cpu")
        self.calls: list[torch.Tensor] = []

    def sample(self, rgb=None, spikes=None, gamma=0.5, steps=None, temperature=1.0, num_samples=1, generator=None, **kw):
        self.calls.append(spikes.clone())
        out = spikes.float().mean(1, keepdim=True).expand(-1, 3, -1, -1).clone()
        return out


# ------------------------------------------------------------------------------------- rules
def test_select_frames_centres_a_fixed_count_and_keeps_it_inside_the_stream():
    assert select_frames(100, None) == (0, 100)
    assert select_frames(100, 8) == (46, 54)
    assert select_frames(100, 8, lo=0, hi=3) == (0, 8)      # clipped at the start
    assert select_frames(100, 8, lo=97, hi=100) == (92, 100)  # clipped at the end
    assert select_frames(100, 2, lo=10, hi=20) == (14, 16)
    with pytest.raises(SpikeFileError, match="only 4"):
        select_frames(4, 8)


def test_exposure_windows_tile_the_stream_evenly():
    w = exposure_windows(10, 3)
    assert w == [(0, 3), (3, 6), (6, 10)]
    assert exposure_windows(9, 9) == [(i, i + 1) for i in range(9)]
    with pytest.raises(SpikeFileError, match="fewer than the 5 RGB frames"):
        exposure_windows(4, 5)


def test_match_spike_size_nearest_keeps_spikes_binary():
    s = torch.zeros(3, 4, 6, dtype=torch.uint8)
    s[:, 1, 2] = 1
    out = match_spike_size(s, (8, 12), resize=True)
    assert out.shape == (3, 8, 12) and out.dtype == torch.uint8
    assert set(out.unique().tolist()) == {0, 1} and int(out.sum()) == 3 * 4  # one pixel -> a 2x2 block
    with pytest.raises(ShapeError, match=r"4x6.*8x12"):
        match_spike_size(s, (8, 12))


def test_side_paths_names():
    assert [p.name for p in side_paths("a/out.png")] == ["out_mean.png", "out_std.png"]
    assert [p.name for p in side_paths("a/video.mp4")] == ["video_mean.mp4", "video_std.mp4"]
    assert [p.name for p in side_paths("a/frames")] == ["frames_mean", "frames_std"]


# ------------------------------------------------------------------------------------- API
def test_deblur_image_shapes_and_uncertainty(tiny):
    rgb = torch.rand(3, H, W, generator=torch.Generator().manual_seed(1))
    spikes = (torch.rand(8, H, W, generator=torch.Generator().manual_seed(2)) < 0.3).to(torch.uint8)
    one = deblur_image(tiny, rgb, spikes, steps=3, generator=torch.Generator().manual_seed(0))
    assert one.image.shape == (3, H, W) and one.mean is None and one.std is None
    assert one.frames == (0, 8)
    assert float(one.image.min()) >= 0 and float(one.image.max()) <= 1
    many = deblur_image(tiny, rgb, spikes, samples=3, steps=3, generator=torch.Generator().manual_seed(0))
    assert many.image.shape == many.mean.shape == many.std.shape == (3, H, W)
    assert float(many.std.max()) > 0  # independent samples differ
    batch = deblur_image(tiny, rgb[None].repeat(2, 1, 1, 1), spikes[None].repeat(2, 1, 1, 1), steps=2)
    assert batch.image.shape == (2, 3, H, W)


def test_deblur_image_rejects_bad_input(tiny):
    rgb = torch.rand(3, H, W)
    with pytest.raises(ShapeError, match=r"20x24.*40x48"):
        deblur_image(tiny, rgb, torch.zeros(8, 20, 24, dtype=torch.uint8), steps=1)
    with pytest.raises(ShapeError, match="gamma"):
        deblur_image(tiny, rgb, torch.zeros(8, H, W, dtype=torch.uint8), gamma=1.5, steps=1)
    with pytest.raises(ShapeError, match="rgb"):
        deblur_image(tiny, torch.rand(H, W), torch.zeros(8, H, W, dtype=torch.uint8), steps=1)


def test_deblur_image_uses_the_models_expected_frame_count():
    fake = FakeModel(spike_frames=4)
    spikes = torch.zeros(10, 8, 8, dtype=torch.uint8)
    spikes[3:7] = 1  # exactly the centred 4 frames fire
    res = deblur_image(fake, torch.rand(3, 8, 8), spikes, colour="model")
    assert fake.calls[0].shape == (1, 4, 8, 8) and res.frames == (3, 7)
    assert torch.allclose(res.image, torch.ones(3, 8, 8))
    res = deblur_image(FakeModel(), torch.rand(3, 8, 8), spikes)  # no expected count: all frames
    assert res.frames == (0, 10)


# ------------------------------------------------------------------------------------- files
def test_deblur_file_image_with_samples_writes_mean_std_and_tfp(tiny, blurry, tmp_path):
    spikes = np.zeros((8, H, W), np.uint8)
    spikes[::4] = 1  # rate 0.25 everywhere
    sp = save_spikes(tmp_path / "rate.npz", spikes)
    out = tmp_path / "res" / "out.png"
    written = deblur_file(blurry, sp, out, model=tiny, samples=3, steps=3, tfp=True, v_th=1.0, gain=0.5)
    names = [p.name for p in written]
    assert names == ["out.png", "out_mean.png", "out_std.png", "out_tfp.png"]
    for p in written:
        assert load_image(p).shape[-2:] == (H, W)
    std = load_image(out.with_name("out_std.png"), gray=True)
    assert float(std.max()) > 0
    tfp_img = load_image(out.with_name("out_tfp.png"), gray=True)
    assert torch.allclose(tfp_img, torch.full_like(tfp_img, 128 / 255), atol=1 / 255)  # 0.25 x 1 / 0.5


def test_deblur_file_dat_defaults_to_the_rgb_size(tiny, blurry, tmp_path):
    sp = write_dat(tmp_path / "s.dat", (np.random.default_rng(3).random((8, H, W)) < 0.3).astype(np.uint8))
    written = deblur_file(blurry, sp, tmp_path / "o.png", model=tiny, steps=2)
    assert load_image(written[0]).shape == (3, H, W)


def test_deblur_file_mismatched_size_error_and_resize(tiny, blurry, tmp_path):
    sp = save_spikes(tmp_path / "small.npz", np.ones((8, 20, 24), np.uint8))
    with pytest.raises(ShapeError) as e:
        deblur_file(blurry, sp, tmp_path / "o.png", model=tiny, steps=2)
    assert "20x24" in str(e.value) and "40x48" in str(e.value) and "--resize-spikes" in str(e.value)
    assert not (tmp_path / "o.png").exists()
    out = deblur_file(blurry, sp, tmp_path / "o.png", model=tiny, steps=2, resize_spikes=True)[0]
    assert load_image(out).shape == (3, H, W)


def test_deblur_file_never_replaces_outputs_without_overwrite(tiny, blurry, spikes_npz, tmp_path):
    out = tmp_path / "o.png"
    out.write_bytes(b"keep")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        deblur_file(blurry, spikes_npz, out, model=tiny, steps=2)
    assert out.read_bytes() == b"keep"
    # a side output that exists blocks the run too, before any work
    out2 = tmp_path / "p.png"
    side_paths(out2)[1].write_bytes(b"keep")
    with pytest.raises(OutputExistsError):
        deblur_file(blurry, spikes_npz, out2, model=tiny, samples=2, steps=2)
    assert not out2.exists()


def test_deblur_video_folder_gets_each_frames_exposure(tmp_path):
    frames = tmp_path / "clip"
    for i in range(3):
        save_image(frames / f"f{i}.png", torch.full((3, 8, 16), 0.5))
    s = np.zeros((10, 8, 16), np.uint8)
    s[0:3] = 1             # frame 0's exposure: rate 1
    s[3:6:2] = 1           # frame 1: frames 3, 5 of 3..5 -> 2/3
    s[6:10] = 0            # frame 2: rate 0
    sp = save_spikes(tmp_path / "v.npz", s)
    fake = FakeModel()
    out = tmp_path / "out"
    deblur_file(frames, sp, out, model=fake, progress=False)
    assert [c.shape[1] for c in fake.calls] == [3, 3, 4]  # windows (0,3), (3,6), (6,10)
    got = [float(load_image(out / f"frame_{i:06d}.png", gray=True).mean()) for i in range(3)]
    assert got == pytest.approx([1.0, 170 / 255, 0.0], abs=1 / 255)


def test_deblur_video_to_mp4_with_samples(tiny, tmp_path):
    import av

    frames = tmp_path / "clip"
    for i in range(2):
        save_image(frames / f"{i:03d}.png", torch.rand(3, 32, 32))
    sp = save_spikes(tmp_path / "v.npz", (np.random.default_rng(0).random((6, 32, 32)) < 0.3).astype(np.uint8))
    written = deblur_file(frames, sp, tmp_path / "out.mp4", model=tiny, samples=2, steps=2, progress=False)
    assert [p.name for p in written] == ["out.mp4", "out_mean.mp4", "out_std.mp4"]
    for p in written:
        with av.open(str(p)) as c:
            assert sum(1 for _ in c.decode(video=0)) == 2


def test_deblur_video_needs_enough_spike_frames(tmp_path):
    frames = tmp_path / "clip"
    for i in range(4):
        save_image(frames / f"f{i}.png", torch.rand(3, 8, 8))
    sp = save_spikes(tmp_path / "v.npz", np.ones((3, 8, 8), np.uint8))
    with pytest.raises(SpikeFileError, match="3 frames, fewer than the 4 RGB frames"):
        deblur_file(frames, sp, tmp_path / "o", model=FakeModel(), progress=False)


# ------------------------------------------------------------------------------------- CLI
def _run(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_cli_deblur_image(tiny_dir, blurry, spikes_npz, tmp_path, capsys):
    out = tmp_path / "cli.png"
    code, stdout, err = _run(["deblur", "--rgb", blurry, "--spikes", spikes_npz, "-o", out, "--weights", tiny_dir,
                              "--steps", 2, "--samples", 2, "--seed", 1], capsys)
    assert code == 0, err
    assert out.is_file() and out.with_name("cli_mean.png").is_file() and out.with_name("cli_std.png").is_file()
    assert "wrote" in stdout


def test_cli_deblur_bad_input_is_one_line(tiny_dir, blurry, tmp_path, capsys):
    sp = save_spikes(tmp_path / "small.npz", np.ones((8, 20, 24), np.uint8))
    code, _, err = _run(["deblur", "--rgb", blurry, "--spikes", sp, "-o", tmp_path / "o.png", "--weights", tiny_dir], capsys)
    assert code == 2 and err.startswith("error:") and "20x24" in err and "40x48" in err
    code, _, err = _run(["deblur", "--rgb", tmp_path / "missing.png", "--spikes", sp, "-o", tmp_path / "o.png"], capsys)
    assert code == 2 and "missing.png" in err


# ------------------------------------------------------------------------------------ colour
def test_colour_input_keeps_the_blurry_chroma_and_the_model_luminance():
    from spikegen.degrade import rgb_to_gray

    g = torch.Generator().manual_seed(0)
    # a mid-range colourful image, so that no channel clamps
    rgb = 0.3 + 0.4 * torch.rand(3, H, W, generator=g)
    # each pixel fires in 3, 4 or 5 of the 8 frames: the fake model's gray output lies in [3/8, 5/8]
    k = torch.randint(3, 6, (H, W), generator=g)
    spikes = (torch.arange(8)[:, None, None] < k).to(torch.uint8)
    model = FakeModel()
    own = deblur_image(model, rgb, spikes, colour="model").image
    full = deblur_image(model, rgb, spikes).image  # the default is colour="input"
    assert torch.allclose(own[0], own[1]) and torch.allclose(own[1], own[2])  # the fake model is gray
    # luminance from the model ...
    assert torch.allclose(rgb_to_gray(full), rgb_to_gray(own), atol=1e-5)
    # ... chroma from the blurry input: the difference to the input is the same on R, G and B
    d = full - rgb
    inside = (full > 0) & (full < 1)
    assert inside.all()
    assert torch.allclose(d[0], d[1], atol=1e-5) and torch.allclose(d[1], d[2], atol=1e-5)
    assert not torch.allclose(full[0], full[1])  # colour is back


def test_colour_is_validated(tmp_path, blurry, spikes_npz):
    with pytest.raises(Exception, match="--colour must be input"):
        deblur_image(FakeModel(), torch.rand(3, 8, 8), torch.zeros(4, 8, 8), colour="rgb")
    out = tmp_path / "o.png"
    with pytest.raises(SystemExit) as e:
        main(["deblur", "--rgb", str(blurry), "--spikes", str(spikes_npz), "-o", str(out), "--colour", "fancy"])
    assert e.value.code == 2
    assert not out.exists()
