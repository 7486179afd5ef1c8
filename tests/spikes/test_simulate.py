"""Tests of spikegen.spikes.simulate: integrate-and-fire, the noise model, photon sampling and
video sources."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spikegen.errors import ShapeError, SpikeFileError
from spikegen.spikes.simulate import (
    SpikeNoise,
    integrate_and_fire,
    interpolate_frames,
    iter_frames,
    iter_simulate_video,
    load_frames,
    photon_probability,
    photon_sampling,
    simulate_video,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def numpy_if(q: np.ndarray, a0: np.ndarray) -> np.ndarray:
    """Plain sequential integrate-and-fire in units of v_th: q [T, H, W] charge per step."""
    acc = a0.copy()
    out = np.zeros(q.shape, dtype=np.uint8)
    for t in range(q.shape[0]):
        acc += q[t]
        fire = acc >= 1
        acc[fire] -= 1
        out[t] = fire
    return out


# ----------------------------------------------------------------------------- integrate-and-fire
@pytest.mark.parametrize("v_th", [1.0, 2.0, 0.37])
@pytest.mark.parametrize("gain", [1.0, 0.5, 3.0])
def test_firing_rate_equals_intensity_times_gain_over_vth(v_th, gain):
    intensity = torch.tensor([0.0, 0.01, 0.05, 0.1, 0.2, 0.33, 0.5, 0.74, 0.9, 1.0])
    intensity = intensity.view(1, 1, 1, -1).expand(1, 1, 3, -1).contiguous()
    steps = 20000
    spikes = integrate_and_fire(intensity, steps=steps, v_th=v_th, gain=gain, generator=gen())
    rate = spikes.double().mean(dim=1)[0]  # [3, 10]
    expected = (intensity[0, 0].double() * gain / v_th).clamp(max=1.0)
    on = expected > 0
    assert torch.all(rate[~on] == 0)
    rel = (rate[on] - expected[on]).abs() / expected[on]
    assert float(rel.max()) < 0.01, (rate, expected)


def test_per_sample_vth_and_gain():
    img = torch.full((3, 1, 2, 2), 0.4)
    v_th = torch.tensor([1.0, 2.0, 4.0])
    gain = torch.tensor([1.0, 1.0, 2.0])
    s = integrate_and_fire(img, steps=5000, v_th=v_th, gain=gain, generator=gen())
    rate = s.double().mean(dim=(1, 2, 3))
    assert torch.allclose(rate, torch.tensor([0.4, 0.2, 0.2], dtype=torch.float64), rtol=0.01)


def test_threshold_is_greater_or_equal():
    v_th = 0.37
    img = torch.full((2, 1, 4, 5), v_th)
    s = integrate_and_fire(img, steps=200, v_th=v_th, generator=gen())
    assert s.dtype == torch.uint8 and bool((s == 1).all())  # fires at every step
    below = integrate_and_fire(img * (1 - 1e-3), steps=200, v_th=v_th, generator=gen())
    assert not bool((below == 1).all())
    # brighter than the threshold: at most one spike per step, the surplus is kept
    bright = integrate_and_fire(img * 2.5, steps=50, v_th=v_th, generator=gen(), return_state=True)
    assert bool((bright[0] == 1).all())
    assert torch.all(bright[1] >= 50 * 1.5 - 1e-3)


@pytest.mark.parametrize("scale", [0.9, 1.7])  # fast path (q < 1) and general path (q > 1)
def test_matches_sequential_numpy_reference(scale):
    rng = np.random.default_rng(1)
    img = (rng.random((6, 7), dtype=np.float32) * scale).astype(np.float32)
    a0 = rng.random((6, 7), dtype=np.float32)
    s = integrate_and_fire(torch.from_numpy(img), steps=300, init=torch.from_numpy(a0))
    ref = numpy_if(np.broadcast_to(img, (300, 6, 7)), a0)
    assert s.shape == (300, 6, 7)
    assert np.array_equal(s.numpy(), ref)
    # a sequence with varying intensities
    seq = (rng.random((300, 6, 7), dtype=np.float32) * scale).astype(np.float32)
    s = integrate_and_fire(torch.from_numpy(seq), init=torch.from_numpy(a0))
    assert np.array_equal(s.numpy(), numpy_if(seq, a0))


def test_sequence_equals_static():
    img = torch.rand(2, 1, 5, 6, generator=gen(3))
    noise = SpikeNoise.parametric(4, 4, generator=gen(4))
    for nz in (None, noise):
        a = integrate_and_fire(img, steps=64, v_th=0.8, gain=1.3, noise=nz, generator=gen(5))
        b = integrate_and_fire(img.expand(2, 64, 5, 6), v_th=0.8, gain=1.3, noise=nz,
                               generator=gen(5))
        assert torch.equal(a, b)


def test_determinism_under_generator():
    img = torch.rand(1, 1, 16, 16, generator=gen(0))
    a = integrate_and_fire(img, steps=32, generator=gen(7))
    b = integrate_and_fire(img, steps=32, generator=gen(7))
    c = integrate_and_fire(img, steps=32, generator=gen(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    noise = SpikeNoise(temporal_std=0.2)
    a = integrate_and_fire(img, steps=32, noise=noise, generator=gen(7))
    b = integrate_and_fire(img, steps=32, noise=noise, generator=gen(7))
    assert torch.equal(a, b)


def test_init_modes_and_state_continuation():
    img = torch.rand(2, 1, 8, 8, generator=gen(1)) * 1.4
    z = integrate_and_fire(img, steps=1, init="zero", v_th=1.0)
    assert torch.equal(z[:, 0], (img[:, 0] >= 1).to(torch.uint8))
    full = integrate_and_fire(img, steps=90, v_th=0.7, generator=gen(2))
    s1, st = integrate_and_fire(img, steps=40, v_th=0.7, generator=gen(2), return_state=True)
    s2 = integrate_and_fire(img, steps=50, v_th=0.7, init=st)
    assert torch.equal(torch.cat([s1, s2], dim=1), full)
    # random init is U[0, 1) of the threshold: first-step spikes match a zero-init draw
    r = integrate_and_fire(torch.zeros(1, 1, 64, 64), steps=1, generator=gen(3), return_state=True)
    assert 0.0 <= float(r[1].min()) and float(r[1].max()) < 1.0 and float(r[1].std()) > 0.2


def test_unbatched_shapes():
    assert integrate_and_fire(torch.rand(5, 6), steps=3).shape == (3, 5, 6)
    assert integrate_and_fire(torch.rand(1, 5, 6), steps=3).shape == (3, 5, 6)
    assert integrate_and_fire(torch.rand(4, 5, 6)).shape == (4, 5, 6)
    assert integrate_and_fire(torch.rand(2, 4, 5, 6)).shape == (2, 4, 5, 6)
    s, st = integrate_and_fire(torch.rand(5, 6), steps=3, return_state=True)
    assert st.shape == (5, 6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(intensity=torch.rand(3, 5, 6), steps=4), "static gray image"),
        (dict(intensity=torch.rand(2, 3, 5, 6), steps=4), "static gray image"),
        (dict(intensity=torch.rand(5, 6)), "sequence"),
        (dict(intensity=torch.zeros(5, 6, dtype=torch.uint8), steps=2), "floating-point"),
        (dict(intensity=-torch.rand(1, 5, 6), steps=2), ">= 0"),
        (dict(intensity=torch.rand(1, 5, 6), steps=2, v_th=0.0), "v_th"),
        (dict(intensity=torch.rand(2, 1, 5, 6), steps=2, v_th=torch.ones(3)), "per-sample"),
        (dict(intensity=torch.rand(1, 5, 6), steps=2, init="ones"), "init"),
        (dict(intensity=torch.rand(1, 5, 6), steps=2, init=torch.rand(3, 3)), "broadcast"),
        (dict(intensity=torch.rand(1, 5, 6), steps=-1), "steps"),
        (dict(intensity=torch.rand(1, 5, 6), steps=2, noise="dark"), "SpikeNoise"),
    ],
)
def test_bad_inputs_raise_shape_error(kwargs, match):
    x = kwargs.pop("intensity")
    with pytest.raises(ShapeError, match=match):
        integrate_and_fire(x, **kwargs)


@pytest.mark.parametrize("bad", [float("nan"), -0.5, float("-inf"), float("inf")])
@pytest.mark.parametrize("size, frame", [((5, 6), 39), ((64, 64), 17), ((300, 300), 3)])
def test_a_bad_value_in_any_frame_of_a_sequence_raises(bad, size, frame):
    """The CPU kernel checks a sequence in groups of frames (all 40 small frames at once, 16
    frames of 64 x 64, frame by frame at 300 x 300): a bad value anywhere is found."""
    seq = torch.rand(40, *size, generator=gen(9))
    seq[frame, size[0] // 2, size[1] - 1] = bad
    with pytest.raises(ShapeError, match=">= 0"):
        integrate_and_fire(seq)
    seq[frame, size[0] // 2, size[1] - 1] = -0.0  # negative zero is a valid 0
    assert integrate_and_fire(seq).shape == (40, *size)


@pytest.mark.parametrize("bad", [float("nan"), -0.5, float("-inf"), float("inf")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_a_bad_value_in_a_static_image_raises(bad, dtype):
    """A static image is checked by its min and max (NaN propagates through both): NaN, a
    negative value and either infinity raise, in every float dtype; -0.0 and 0 pass."""
    img = torch.rand(1, 1, 50, 70, generator=gen(4)).to(dtype)
    img[0, 0, 49, 3] = bad
    with pytest.raises(ShapeError, match=">= 0"):
        integrate_and_fire(img, steps=4)
    img[0, 0, 49, 3] = -0.0
    assert integrate_and_fire(img, steps=4).shape == (1, 4, 50, 70)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_numpy_sequence_path_equals_the_general_path(dtype):
    """Plain-number v_th / gain take the all-numpy path; per-sample tensors take the general
    one: the same spikes and states, for every init, batched or not."""
    seq = torch.rand(2, 12, 9, 7, generator=gen(4), dtype=dtype) * 1.6
    state0 = torch.rand(2, 9, 7, generator=gen(5), dtype=dtype)
    for x in (seq, seq[1]):
        b = x.shape[0] if x.ndim == 4 else 1
        for init in ("zero", "random", state0[:b] if x.ndim == 4 else state0[1]):
            for v_th, gain in ((1.0, 1.0), (0.7, 1.3), (2.0, 0.5)):
                fast = integrate_and_fire(x, v_th=v_th, gain=gain, init=init, generator=gen(6), return_state=True)
                per_sample = dict(v_th=torch.full((b,), v_th, dtype=dtype), gain=torch.full((b,), gain, dtype=dtype))
                general = integrate_and_fire(x, **per_sample, init=init, generator=gen(6), return_state=True)
                assert torch.equal(fast[0], general[0]) and torch.equal(fast[1], general[1])
                assert fast[0].shape == x.shape and fast[1].dtype == dtype
    assert torch.equal(integrate_and_fire(seq.numpy(), init="zero"), integrate_and_fire(seq, init="zero"))
    # the first step reads a same-dtype init in place (no copy): the caller's array is left as
    # it was; an init of the other float dtype, as an array, and a sequence of no steps
    other = torch.float32 if dtype == torch.float64 else torch.float64
    before = state0.clone()
    for init in (state0, state0.to(other), state0.numpy(), state0.to(other).numpy()):
        fast = integrate_and_fire(seq, init=init, return_state=True)
        general = integrate_and_fire(seq, v_th=torch.ones(2, dtype=dtype), init=init, return_state=True)
        assert torch.equal(fast[0], general[0]) and torch.equal(fast[1], general[1])
        empty, st = integrate_and_fire(seq[:, :0], init=init, return_state=True)
        assert empty.shape == (2, 0, 9, 7) and torch.equal(st, torch.as_tensor(init).to(dtype))
    assert torch.equal(state0, before)


def test_a_bad_sequence_raises_on_the_torch_loop_too():
    """With temporal noise the CPU takes the torch loop: its input is checked there."""
    seq = torch.rand(6, 5, 6, generator=gen(2))
    seq[4, 1, 1] = -0.25
    with pytest.raises(ShapeError, match=">= 0"):
        integrate_and_fire(seq, noise=SpikeNoise(temporal_std=0.1), generator=gen(3))


# ----------------------------------------------------------------------------- noise model
def test_noise_from_shared_maps(shared_data):
    path = shared_data / "spikes" / "noise" / "spikenerf_noise_maps.npz"
    noise = SpikeNoise.from_maps(path)
    prnu, dark = noise.maps(250, 400)
    assert prnu.shape == dark.shape == (250, 400)
    assert abs(float(prnu.mean()) - 1.0) < 1e-4
    assert 0.003 < float(dark.median()) < 0.006 and float(dark.max()) > 0.05  # hot pixels
    # tiling to a larger image repeats the pattern; cropping to a smaller one keeps the corner
    big_prnu, _ = noise.maps(300, 900)
    assert torch.equal(big_prnu[250:300, 400:800], prnu[:50, :400])
    small, _ = noise.maps(10, 20)
    assert torch.equal(small, prnu[:10, :20])
    resized = SpikeNoise.from_maps(path, fit="resize").maps(125, 200)[0]
    assert resized.shape == (125, 200)
    # (80 x 400 crops keep every tensor below torch's parallel grain size: fast on a busy CPU)
    prnu, dark = noise.maps(80, 400)
    # a dark scene fires only through dark current, at about the map's rate
    s = integrate_and_fire(torch.zeros(1, 1, 80, 400), steps=1000, noise=noise, generator=gen())
    rate = s.double().mean(dim=(0, 1))
    assert abs(float(rate.mean()) - float(dark.double().mean())) < 3e-4
    hot = dark > 0.02
    assert int(hot.sum()) > 10
    assert float(rate[hot].mean()) > 5 * float(rate[~hot].mean())
    # the photo-response gain multiplies the rate of a lit scene (at most 1 spike per step)
    lit = integrate_and_fire(torch.full((1, 1, 80, 400), 0.3), steps=400, noise=noise,
                             generator=gen())
    lit_rate = lit.double().mean(dim=(0, 1))
    expected = (0.3 * prnu + dark).double().clamp(max=1)
    assert float((lit_rate - expected).abs().max()) <= 1 / 400 + 1e-6


def test_noise_parametric_and_errors(tmp_path):
    n = SpikeNoise.parametric(50, 60, generator=gen(0))
    prnu, dark = n.maps(50, 60)
    assert abs(float(prnu.mean()) - 1) < 0.02 and 0.04 < float(prnu.std()) < 0.07
    assert 0.003 < float(dark.median()) < 0.006
    assert torch.equal(SpikeNoise.parametric(50, 60, generator=gen(0)).prnu, n.prnu)
    with pytest.raises(SpikeFileError, match="does not exist"):
        SpikeNoise.from_maps(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    np.savez(bad, foo=np.zeros((2, 2)))
    with pytest.raises(SpikeFileError, match="expected 'Nd'"):
        SpikeNoise.from_maps(bad)
    with pytest.raises(ShapeError):
        SpikeNoise(prnu=torch.zeros(2, 2, 2))
    with pytest.raises(ShapeError):
        SpikeNoise(dark=-1.0)
    own = tmp_path / "own.npz"
    np.savez(own, prnu=np.ones((3, 3)), dark=np.full((3, 3), 0.01))
    assert float(SpikeNoise.from_maps(own).maps(3, 3)[1].mean()) == pytest.approx(0.01)


def test_temporal_noise_keeps_mean_rate():
    img = torch.full((1, 1, 32, 32), 0.3)
    s = integrate_and_fire(img, steps=2000, noise=SpikeNoise(temporal_std=0.1), generator=gen())
    assert abs(float(s.double().mean()) - 0.3) < 0.003


# ----------------------------------------------------------------------------- photon sampling
def test_photon_sampling_density_matches_coverage_minus_collisions():
    rgb = torch.rand(2, 3, 48, 40, generator=gen(0))
    h, w, frames, coverage = 48, 40, 64, 0.1
    s = photon_sampling(rgb, frames=frames, coverage=coverage, noise=0.0, generator=gen(1))
    assert s.shape == (2, frames, h, w) and s.dtype == torch.uint8
    assert set(torch.unique(s).tolist()) <= {0, 1}
    p = photon_probability(rgb).double()  # [2, 1, H, W]
    p = p / p.sum(dim=(1, 2, 3), keepdim=True)
    n = round(coverage * h * w)
    expected = (1 - (1 - p) ** n).sum(dim=(1, 2, 3)) / (h * w)  # distinct fraction
    measured = s.double().mean(dim=(1, 2, 3))
    # std of the per-frame density is below 0.003 here; 64 frames -> < 0.0004
    assert torch.allclose(measured, expected, atol=1.5e-3), (measured, expected)
    assert bool((expected < coverage).all())
    # with the default noise the density is still just under the coverage
    d = photon_sampling(rgb, generator=gen(2)).double().mean()
    assert 0.085 < float(d) < 0.1


def test_photon_sampling_follows_brightness_and_is_deterministic():
    img = torch.zeros(3, 32, 64)
    img[:, :, 32:] = 1.0
    s = photon_sampling(img, frames=16, noise=0.0, sigma=0.0, generator=gen(0))
    assert int(s[:, :, :32].sum()) == 0 and int(s[:, :, 32:].sum()) > 0
    a = photon_sampling(img, generator=gen(5))
    assert torch.equal(a, photon_sampling(img, generator=gen(5)))
    gray = photon_sampling(torch.rand(1, 1, 16, 16), frames=2, generator=gen(0))
    assert gray.shape == (1, 2, 16, 16)
    flat = photon_sampling(torch.full((3, 16, 16), 0.5), noise=0.0, generator=gen(0))
    assert flat.float().mean() > 0.08  # constant image: uniform draws
    with pytest.raises(ShapeError, match="rgb must be"):
        photon_sampling(torch.rand(2, 16, 16))
    with pytest.raises(ShapeError, match="frames"):
        photon_sampling(torch.rand(3, 16, 16), frames=0)


# ----------------------------------------------------------------------------- video sources
def _write_frames(folder, frames: np.ndarray) -> None:
    import imageio.v3 as iio

    folder.mkdir()
    for i, f in enumerate(frames):
        iio.imwrite(folder / f"f{i}.png", f)  # natural order: f2 before f10


def test_frame_folder_video_and_interpolation(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(12, 20, 24, 3), dtype=np.uint8)
    _write_frames(tmp_path / "seq", frames)
    loaded = load_frames(tmp_path / "seq", gray=False)
    assert loaded.shape == (12, 3, 20, 24)
    assert torch.allclose(loaded[10], torch.from_numpy(frames[10]).permute(2, 0, 1) / 255.0)
    gray = load_frames(tmp_path / "seq", max_frames=5)
    assert gray.shape == (5, 1, 20, 24)
    up = load_frames(tmp_path / "seq", interp=4, max_frames=3)
    assert up.shape == (9, 1, 20, 24)
    assert torch.allclose(up[2], (gray[0] + gray[1]) / 2, atol=1e-6)
    assert torch.equal(up[4], gray[1])
    # streaming simulation equals the whole-video simulation, whatever the block size
    whole = simulate_video(tmp_path / "seq", interp=3, v_th=0.8, generator=gen(1))
    assert whole.shape == (34, 20, 24)
    blocks = list(iter_simulate_video(tmp_path / "seq", interp=3, v_th=0.8, generator=gen(1),
                                      block=5))
    assert all(b.shape[0] <= 5 for b in blocks)
    assert torch.equal(torch.cat(blocks), whole)
    seq = interpolate_frames(load_frames(tmp_path / "seq"), 3)[:, 0]
    assert torch.equal(integrate_and_fire(seq, v_th=0.8, generator=gen(1)), whole)
    # tensors of frames work too (RGB is converted to gray)
    rgb = load_frames(tmp_path / "seq", gray=False)
    assert torch.equal(simulate_video(rgb, interp=3, v_th=0.8, generator=gen(1)), whole)


def test_video_file(tmp_path):
    import imageio.v3 as iio

    frames = np.zeros((6, 32, 48, 3), dtype=np.uint8)
    for i in range(6):
        frames[i, :, i * 8 : i * 8 + 8] = 255
    path = tmp_path / "clip.mp4"
    iio.imwrite(path, frames, plugin="pyav", codec="libx264", fps=10)
    loaded = load_frames(path)
    assert loaded.shape == (6, 1, 32, 48)
    # the bright bar moves right (lossy codec: compare column means)
    cols = loaded[:, 0].mean(dim=1)
    assert [int(c.argmax()) // 8 for c in cols] == list(range(6))
    assert simulate_video(path, interp=2, generator=gen()).shape == (11, 32, 48)


def test_video_source_errors(tmp_path):
    with pytest.raises(SpikeFileError, match="neither"):
        list(iter_frames(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpikeFileError, match="no images"):
        load_frames(tmp_path / "empty")
    import imageio.v3 as iio

    (tmp_path / "mixed").mkdir()
    iio.imwrite(tmp_path / "mixed" / "a.png", np.zeros((8, 8), np.uint8))
    iio.imwrite(tmp_path / "mixed" / "b.png", np.zeros((9, 8), np.uint8))
    with pytest.raises(SpikeFileError, match="differs"):
        load_frames(tmp_path / "mixed")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(SpikeFileError, match="cannot open video"):
        load_frames(bad)
    with pytest.raises(ShapeError, match="n must be"):
        interpolate_frames(torch.rand(3, 1, 2, 2), 0)


@pytest.mark.cuda
def test_cuda_matches_cpu():
    from spikegen.degrade import motion_blur

    img = torch.rand(2, 1, 40, 50, generator=gen(0))
    cpu = integrate_and_fire(img, steps=30, v_th=0.7, generator=gen(1))
    cuda = integrate_and_fire(img.cuda(), steps=30, v_th=0.7, generator=gen(1))  # CPU generator
    assert cuda.is_cuda and torch.equal(cuda.cpu(), cpu)
    noise = SpikeNoise.parametric(16, 16, generator=gen(2))
    cpu = integrate_and_fire(img, steps=30, noise=noise, generator=gen(1))
    cuda = integrate_and_fire(img.cuda(), steps=30, noise=noise, generator=gen(1))
    assert (cuda.cpu() != cpu).float().mean() < 1e-3
    s = photon_sampling(torch.rand(2, 3, 32, 32).cuda(), generator=torch.Generator("cuda"))
    assert s.is_cuda and s.shape == (2, 8, 32, 32)
    x = torch.rand(2, 3, 48, 48, generator=gen(3))
    assert torch.allclose(motion_blur(x.cuda(), generator=gen(4)).cpu(),
                          motion_blur(x, generator=gen(4)), atol=1e-5)
