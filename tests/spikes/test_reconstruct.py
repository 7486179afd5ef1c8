"""Tests of spikegen.spikes.reconstruct: TFP and TFI, in memory and streamed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spikegen.errors import ShapeError, SpikeFileError
from spikegen.spikes.io import iter_dat, read_dat, write_dat
from spikegen.spikes.reconstruct import TFI, TFP, tfi, tfi_stream, tfp, tfp_stream


# ----------------------------------------------------------------------------- references
def ref_tfp(s: np.ndarray, window: int, centers, scale: float = 1.0) -> np.ndarray:
    t = s.shape[0]
    out = []
    for c in centers:
        a, b = max(c - window // 2, 0), min(c - window // 2 + window - 1, t - 1)
        out.append(np.clip(s[a : b + 1].mean(axis=0) * scale, 0, 1))
    return np.stack(out).astype(np.float32)


def ref_tfi(s: np.ndarray, centers, h=None, v_th: float = 1.0) -> np.ndarray:
    """Pixel-by-pixel search, exactly as documented."""
    t = s.shape[0]
    out = np.zeros((len(centers), *s.shape[1:]), dtype=np.float64)
    for i, c in enumerate(centers):
        lo = 0 if h is None else max(c - h + 1, 0)
        hi = t - 1 if h is None else min(c + h, t - 1)
        for y, x in np.ndindex(*s.shape[1:]):
            col = s[:, y, x]
            before = [k for k in range(lo, c + 1) if col[k]]
            after = [k for k in range(c + 1, hi + 1) if col[k]]
            if before or after:
                prev = before[-1] if before else lo - 1
                nxt = after[0] if after else hi + 1
                out[i, y, x] = v_th / (nxt - prev)
    return out.astype(np.float32)


def random_spikes(t, h, w, rate=0.2, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((t, h, w)) < rate).astype(np.uint8)


def corr(a, b) -> float:
    return float(np.corrcoef(np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel())[0, 1])


# ----------------------------------------------------------------------------- TFP
def test_tfp_matches_reference_with_edges_and_any_order():
    s = random_spikes(30, 3, 4, rate=0.4)
    for window in (1, 4, 7, 41):
        out = tfp(s, window, centers="all", scale=1.3)
        assert out.shape == (30, 3, 4) and out.dtype == torch.float32
        np.testing.assert_allclose(out.numpy(), ref_tfp(s, window, range(30), 1.3), atol=1e-6)
    centers = [17, 3, 3, 29, 0]
    np.testing.assert_allclose(tfp(s, 8, centers=centers).numpy(), ref_tfp(s, 8, centers),
                               atol=1e-6)
    default = tfp(s, 7)  # every centre whose window fits
    assert default.shape == (24, 3, 4)
    np.testing.assert_allclose(default.numpy(), ref_tfp(s, 7, range(3, 27)), atol=1e-6)
    assert torch.equal(tfp(s, 7, centers=5), tfp(s, 7, centers=[5]))


def test_tfp_small_frames_path_equals_the_per_frame_path():
    """Frames of up to 4096 pixels take the whole-array path: bit-identical to the per-frame
    kernel of larger frames, for clipped, repeated, unordered and > 255-frame windows."""
    s = random_spikes(300, 65, 64, rate=0.3, seed=5)
    small, large = s[:, :64], s  # 4096 pixels (whole-array path) and 4160 (per-frame path)
    for window, centers, scale in ((41, range(20, 40), 1.0), (7, [0, 299, 5, 5, 2], 1.7),
                                   (280, [150, 10], 1.0), (1, "all", 3.0)):
        a = tfp(small, window, centers=centers, scale=scale)
        b = tfp(large, window, centers=centers, scale=scale)
        assert torch.equal(a, b[:, :64])
    bad = small.copy()
    bad[3, 2, 2] = 2
    with pytest.raises(ShapeError, match="only 0 and 1"):
        tfp(bad, 41, centers=[20])


@pytest.mark.parametrize("whole_max", [True, False])
def test_tfp_binary_check_catches_a_bad_value_in_any_frame(monkeypatch, whole_max):
    """The uint8 binary check is one max over the frames up to 64 MiB and a per-frame OR
    (in cache, as the frames are added) beyond: both catch a 2 in any frame the windows read,
    in the frames before the first window and after the last, and let binary input through."""
    from spikegen.spikes.reconstruct import playback

    monkeypatch.setattr(playback, "_TFP_CHECK_WHOLE", 1 << 40 if whole_max else 0)
    s = random_spikes(70, 70, 70, rate=0.3, seed=3)  # 4900 pixels: the per-frame kernels
    good = tfp(s, 41, centers=range(25, 45))
    np.testing.assert_allclose(good.numpy(), ref_tfp(s, 41, range(25, 45)), atol=1e-6)
    for frame in (0, 4, 5, 30, 64, 65, 69):  # outside, first, middle and last frame read
        bad = s.copy()
        bad[frame, 10, 20] = 2
        with pytest.raises(ShapeError, match="only 0 and 1"):
            tfp(bad, 41, centers=range(25, 45))


def test_tfp_batched_dtypes_and_module():
    s = random_spikes(50, 180, 200)  # larger than one CPU tile: tiled path
    batch = torch.from_numpy(np.stack([s, 1 - s]))
    out = tfp(batch, 9, centers=[4, 25])
    assert out.shape == (2, 2, 180, 200)
    np.testing.assert_allclose(out[0].numpy(), ref_tfp(s, 9, [4, 25]), atol=1e-6)
    np.testing.assert_allclose(out[1].numpy(), ref_tfp(1 - s, 9, [4, 25]), atol=1e-6)
    for x in (batch.bool(), batch.float(), batch.long(), batch.numpy().astype(bool)):
        assert torch.equal(tfp(x, 9, centers=[4, 25]), out)
    module = TFP(9, scale=2.0)
    assert torch.equal(module(batch, centers=[4, 25]), tfp(batch, 9, centers=[4, 25], scale=2.0))
    assert "window=9" in repr(module)


def test_tfp_at_key_frame_correlates_with_ground_truth(shared_data):
    import imageio.v3 as iio

    folder = shared_data / "spikes" / "synthetic_reds"
    dats = sorted((folder / "spike").glob("*.dat"))
    assert dats
    for dat in dats:
        spikes = read_dat(dat, 250, 400)
        gt = iio.imread(folder / "gt" / (dat.stem + ".png")).astype(np.float64)
        gt = gt if gt.ndim == 2 else gt[..., :3] @ np.array([0.2989, 0.5870, 0.1140])
        frame = tfp(spikes, 41, centers=[151])[0]
        assert corr(frame, gt) >= 0.9, dat.name
        # the Spk2ImgNet streams fire at about 0.6 x the intensity: scale 1 / 0.6 recovers it
        scaled = tfp(spikes, 41, centers=[151], scale=1 / 0.6)[0].numpy() * 255
        assert abs(scaled.mean() / gt.mean() - 1) < 0.05
        # tiled CPU path equals a plain numpy computation
        np.testing.assert_allclose(frame.numpy(), ref_tfp(spikes, 41, [151])[0], atol=1e-6)
        rec = tfi(spikes, centers=[151])[0]
        assert corr(rec, gt) >= 0.9, dat.name
        assert 0 <= float(rec.min()) and float(rec.max()) <= 1


# ----------------------------------------------------------------------------- TFI
def test_tfi_simple_intervals_and_boundaries():
    s = torch.zeros(20, 1, 3, dtype=torch.uint8)
    s[2::4, 0, 0] = 1  # period 4
    s[5, 0, 1] = 1  # a single spike
    # pixel 2: no spike at all
    out = tfi(s, centers=[0, 2, 3, 5, 9, 19])[:, 0]
    # period-4 pixel (spikes at 2, 6, 10, 14, 18): inside the stream the interval is 4
    assert out[1:5, 0].tolist() == [0.25, 0.25, 0.25, 0.25]
    # before the first spike the missing "prev" is at -1: centre 0 -> next 2 -> d = 3
    assert out[0, 0].item() == pytest.approx(1 / 3)
    # centre 19 (last frame): prev 18, no next -> virtual spike at T = 20 -> d = 2
    assert out[5, 0].item() == pytest.approx(1 / 2)
    # single spike at 5: centre 2 -> prev missing (-1), next 5 -> 1/6; centre 9 -> 5..20 -> 1/15
    assert out[1, 1].item() == pytest.approx(1 / 6)
    assert out[4, 1].item() == pytest.approx(1 / 15)
    assert out[3, 1].item() == pytest.approx(1 / 15)  # spike at the centre counts as prev
    assert torch.all(out[:, 2] == 0)  # no spike -> 0
    # a bounded search treats spikes beyond h as missing
    h = tfi(s, centers=[9], max_half_window=3)[0, 0]
    assert h[1].item() == 0  # spike at 5 is 4 frames before 9: outside 7..12
    # v_th scales the result; every pixel firing every frame gives v_th
    ones = torch.ones(10, 2, 2, dtype=torch.uint8)
    assert torch.all(tfi(ones, v_th=2.0) == 2.0)


def test_tfi_matches_reference():
    s = random_spikes(40, 3, 4, rate=0.15, seed=3)
    for h in (None, 1, 5, 30):
        np.testing.assert_allclose(tfi(s, max_half_window=h).numpy(),
                                   ref_tfi(s, range(40), h), atol=1e-6)
    centers = [31, 0, 7, 7, 39]
    np.testing.assert_allclose(tfi(s, centers=centers, max_half_window=6, v_th=2.0).numpy(),
                               ref_tfi(s, centers, 6, 2.0), atol=1e-6)
    valid = tfi(s, centers="valid", max_half_window=5)
    assert valid.shape == (40 - 10 + 1, 3, 4)
    np.testing.assert_allclose(valid.numpy(), ref_tfi(s, range(4, 35), 5), atol=1e-6)


def test_tfi_batched_per_sample_vth_and_module():
    s = torch.from_numpy(np.stack([random_spikes(30, 170, 210, seed=i) for i in range(2)]))
    out = tfi(s, v_th=torch.tensor([1.0, 4.0]), centers=[10, 20], max_half_window=8)
    assert out.shape == (2, 2, 170, 210)
    single = tfi(s[1], centers=[10, 20], max_half_window=8)
    assert torch.allclose(out[1], 4 * single)
    m = TFI(v_th=1.0, max_half_window=8)
    assert torch.equal(m(s[0], centers=[10, 20]), out[0])
    # tiled CPU path (170 x 210 > one tile) equals the reference on a crop
    np.testing.assert_allclose(single[:, :3, :5].numpy(),
                               ref_tfi(s[1, :, :3, :5].numpy(), [10, 20], 8), atol=1e-6)


def test_real_capture_reconstructs(shared_data):
    spk = np.load(shared_data / "spikes" / "real" / "uhsr_helicopter.npz")["spk"]
    assert spk.shape == (200, 250, 250)
    a = tfp(spk, 41, centers=[50, 100, 150])
    b = tfi(spk, centers=[50, 100, 150])
    for x in (a, b):
        assert torch.isfinite(x).all() and float(x.min()) >= 0 and float(x.max()) <= 1
        assert float(x.std()) > 0.005  # not constant
    assert corr(a[1], b[1]) > 0.6
    assert corr(a[0], a[2]) > 0.3  # the same scene over time


# ----------------------------------------------------------------------------- streaming
def test_streams_equal_in_memory_results_on_dat_file(tmp_path):
    s = random_spikes(230, 40, 48, rate=0.25, seed=5)
    path = tmp_path / "s.dat"
    write_dat(path, s)
    ref = tfp(s, 41)
    got = list(tfp_stream(path, 41, height=40, width=48, block=17, chunk=5))
    assert [t for t, _ in got] == list(range(20, 210))
    assert torch.equal(torch.stack([f for _, f in got]), ref)
    # overlapping blocks from iter_dat, clipped windows at the ends
    blocks = iter_dat(path, 40, 48, block=30, overlap=10)
    got = dict(tfp_stream(blocks, 41, centers="all", chunk=7))
    assert torch.equal(torch.stack([got[t] for t in range(230)]), tfp(s, 41, centers="all"))
    ref = tfi(s, max_half_window=16)
    got = list(tfi_stream(path, max_half_window=16, height=40, width=48, block=23, chunk=9))
    assert [t for t, _ in got] == list(range(230))
    assert torch.equal(torch.stack([f for _, f in got]), ref)
    centers = [200, 3, 100, 229]
    got = list(tfi_stream(torch.from_numpy(s), centers=centers, max_half_window=16, v_th=2.0,
                          block=11))
    assert [t for t, _ in got] == sorted(centers)
    ref = tfi(s, centers=sorted(centers), max_half_window=16, v_th=2.0)
    assert torch.equal(torch.stack([f for _, f in got]), ref)
    got = list(tfi_stream((b for b in np.array_split(s, 9)), centers="valid",
                          max_half_window=16))
    assert torch.equal(torch.stack([f for _, f in got]),
                       tfi(s, centers="valid", max_half_window=16))


def test_stream_memory_is_bounded():
    """Only about ``chunk + window`` frames are alive at once (checked via buffered frames)."""
    from spikegen.spikes.reconstruct import streaming as rec

    seen = []
    original = rec._Buffer.get

    def spy(self, a, b):
        seen.append(self.end - self.start)
        return original(self, a, b)

    rec._Buffer.get = spy
    try:
        blocks = (torch.zeros(10, 4, 4, dtype=torch.uint8) for _ in range(300))  # 3000 frames
        n = sum(1 for _ in tfp_stream(blocks, 41, chunk=16))
    finally:
        rec._Buffer.get = original
    assert n == 3000 - 40
    assert max(seen) <= 16 + 41 + 2 * 10


def test_bad_inputs_raise_clear_errors(tmp_path):
    s = random_spikes(20, 4, 4)
    with pytest.raises(ShapeError, match="only 0 and 1"):
        tfp(s * 2, 5)
    with pytest.raises(ShapeError, match="only 0 and 1"):
        tfi(s.astype(np.float32) * 0.5)
    with pytest.raises(ShapeError, match=r"\[T, H, W\] or \[B, T, H, W\]"):
        tfp(s[0], 5)
    with pytest.raises(ShapeError, match="window"):
        tfp(s, 0)
    with pytest.raises(ShapeError, match="fewer than the TFP window"):
        tfp(s, 41)
    with pytest.raises(ShapeError, match="outside the stream"):
        tfp(s, 5, centers=[20])
    with pytest.raises(ShapeError, match=">= 0"):
        tfi(s, centers=[-1])
    with pytest.raises(ShapeError, match="max_half_window"):
        tfi(s, max_half_window=0)
    with pytest.raises(ShapeError, match="empty"):
        tfp(np.zeros((0, 4, 4), np.uint8), 1)
    with pytest.raises(ShapeError, match="v_th"):
        tfi(s, v_th=0.0)
    with pytest.raises(ShapeError, match="finite max_half_window"):
        list(tfi_stream(s, max_half_window=None))
    with pytest.raises(ShapeError, match="outside the stream"):
        list(tfp_stream(s, 5, centers=[3, 25]))
    with pytest.raises(ShapeError, match="too few"):
        list(tfp_stream(s, 41))
    with pytest.raises(ShapeError, match="change size"):
        list(tfp_stream([s[:10], s[10:, :2]], 3))
    with pytest.raises(SpikeFileError, match="skip frames"):
        list(tfp_stream([(0, s[:5]), (7, s[7:])], 3))


def test_accelerator_code_path_gives_the_same_result(monkeypatch):
    """The large-op path used off the CPU (here forced on the CPU) equals the CPU path."""
    from spikegen.spikes.reconstruct import _common as rec

    s = torch.from_numpy(random_spikes(40, 170, 200, rate=0.1, seed=11))  # > one CPU tile
    centers = [0, 5, 6, 30, 30, 39, 12]

    def run():
        return [tfp(s, 9, centers=centers), tfp(s, 9, centers=range(4, 30)),
                tfp(s, 9, centers=[30]), tfi(s, centers=centers, max_half_window=9),
                tfi(s, v_th=2.0, centers=range(5, 30))]

    cpu = run()
    monkeypatch.setattr(rec, "small_ops", lambda device: False)
    big = run()
    for a, b in zip(cpu, big):
        assert torch.equal(a, b)


@pytest.mark.parametrize("rate", [0.02, 0.1, 0.35, 0.9])
def test_tfi_zeroes_pixels_without_spikes_like_the_accelerator_path(monkeypatch, rate):
    """The CPU kernel zeroes the pixels with no spike on either side of a centre by a masked
    copy when they are few (rate 0.35: about 0.03 % of them) and by a multiply when they are
    many (0.02, 0.1: most / 13 %); either way the outputs equal the large-op path's."""
    from spikegen.spikes.reconstruct import _common as rec

    s = torch.from_numpy(random_spikes(30, 120, 150, rate=rate, seed=3))
    cpu = tfi(s, centers=range(9, 21), max_half_window=9)
    none = cpu == 0
    assert (none.float().mean() > 0.01) if rate <= 0.1 else (none.float().mean() < 0.002)
    monkeypatch.setattr(rec, "small_ops", lambda device: False)
    big = tfi(s, centers=range(9, 21), max_half_window=9)
    assert torch.equal(cpu, big) and not torch.signbit(cpu).any()


def test_docstring_examples_run():
    import doctest

    from spikegen.spikes import reconstruct, simulate

    for module in (reconstruct, simulate):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0 and result.attempted > 3, module.__name__


@pytest.mark.cuda
def test_cuda_matches_cpu():
    s = torch.from_numpy(random_spikes(60, 32, 40, seed=9))
    assert torch.equal(tfp(s.cuda(), 9, centers="all").cpu(), tfp(s, 9, centers="all"))
    assert torch.equal(tfi(s.cuda(), max_half_window=7).cpu(), tfi(s, max_half_window=7))
    got = list(tfp_stream(s, 9, device="cuda", block=13))
    assert got[0][1].is_cuda
    assert torch.equal(torch.stack([f for _, f in got]).cpu(), tfp(s, 9))
