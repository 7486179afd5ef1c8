"""The optional compiled loops (spikegen._native) against the numpy kernels: the same bits."""

from __future__ import annotations

import shutil
import sysconfig

import numpy as np
import pytest
import torch

from spikegen.errors import ShapeError
from spikegen.spikes import native
from spikegen.spikes.simulate import SpikeNoise, integrate_and_fire

needs_native = pytest.mark.skipif(native.lib is None, reason=f"spikegen._native: {native.status}")


def _both(monkeypatch, fn):
    """``fn()`` with the compiled loops and with the numpy kernels."""
    lib = native.lib
    got = fn()
    monkeypatch.setattr(native, "lib", None)
    want = fn()
    monkeypatch.setattr(native, "lib", lib)
    return got, want


def _same(got, want):
    if isinstance(got, tuple):
        for g, w in zip(got, want):
            _same(g, w)
        return
    assert got.dtype == want.dtype and got.shape == want.shape
    assert torch.equal(got, want)


def test_the_extension_is_built_where_a_compiler_is():
    """A silent build failure would leave the fast path untested: where this checkout has a C
    compiler (as on CI), the extension must be there, unless switched off on purpose."""
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None or native.status.startswith("switched off"):
        pytest.skip(f"no C compiler ({cc}) or switched off: {native.status}")
    assert native.lib is not None, native.status
    assert native.lib.ABI_VERSION == native.ABI_VERSION


@needs_native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(7, 3, 4), (2, 9, 150, 130), (3, 1, 1, 1)])
@pytest.mark.parametrize("init", ["zero", "random", "same-dtype", "other-dtype"])
def test_sequences_give_the_numpy_bits(monkeypatch, dtype, shape, init):
    # 150 x 130 = 19 500 pixels: more than one tile of the loop (16 384 float32 / 8 192 float64)
    g = torch.Generator().manual_seed(sum(shape))
    x = (torch.rand(shape, generator=g, dtype=torch.float64) * 1.3).to(dtype)  # > 1: every step
    b_hw = (shape[0], *shape[-2:]) if len(shape) == 4 else shape[-2:]
    if init == "same-dtype":
        start = torch.rand(b_hw, generator=g, dtype=dtype)
    elif init == "other-dtype":
        start = torch.rand(b_hw, generator=g, dtype=torch.float64 if dtype == torch.float32 else torch.float32)
    else:
        start = init

    def run():
        gen = torch.Generator().manual_seed(1)
        return integrate_and_fire(x, init=start, generator=gen, return_state=True)

    got, want = _both(monkeypatch, run)
    _same(got, want)
    if got[0].numel() > 50:
        assert 0 < int(got[0].sum()) < got[0].numel()
    if isinstance(start, torch.Tensor):
        assert not torch.equal(start, got[1])  # the caller's state is read, never written


@needs_native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gain_threshold_noise_maps_and_static_scenes_give_the_numpy_bits(monkeypatch, dtype):
    g = torch.Generator().manual_seed(5)
    video = torch.rand(2, 6, 40, 50, generator=g, dtype=dtype)
    still = torch.rand(2, 1, 300, 70, generator=g, dtype=dtype)  # 21 000 pixels: two tiles
    noise = SpikeNoise.parametric(40, 50, generator=torch.Generator().manual_seed(2))
    cases = [
        lambda: integrate_and_fire(video, gain=0.7, v_th=1.3, init="zero", return_state=True),  # scalar
        lambda: integrate_and_fire(video, v_th=torch.tensor([0.8, 1.7]), init="zero"),  # per sample
        lambda: integrate_and_fire(video, noise=noise, init="zero", return_state=True),  # maps + dark
        lambda: integrate_and_fire(still, steps=33, gain=1.1, init="zero", return_state=True),
        lambda: integrate_and_fire(still[0, 0], steps=5, init="zero"),
    ]
    for case in cases:
        got, want = _both(monkeypatch, case)
        _same(got, want)


@needs_native
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, -1e-30, -0.5])
def test_bad_values_raise_in_any_frame_and_tile(dtype, bad):
    x = np.full((5, 140, 130), 0.25, dtype)
    x[4, 139, 129] = bad  # the last value of the last frame, in the second tile
    with pytest.raises(ShapeError, match="finite and >= 0"):
        integrate_and_fire(torch.from_numpy(x), init="zero")
    with pytest.raises(ShapeError, match="finite and >= 0"):
        integrate_and_fire(x[None], init="zero")  # a numpy array, batched


@needs_native
def test_negative_zero_and_the_largest_float_are_valid_light(monkeypatch):
    x = np.full((4, 3, 3), 0.5, np.float32)
    x[:, 0, 0] = -0.0
    x[0, 1, 1] = np.finfo(np.float32).max  # one step: the next one would overflow the charge
    got, want = _both(monkeypatch, lambda: integrate_and_fire(torch.from_numpy(x[:1]), init="zero"))
    _same(got, want)
    assert got[0, 1, 1] == 1 and got[0, 0, 0] == 0
    got, want = _both(monkeypatch, lambda: integrate_and_fire(torch.from_numpy(x[:, :1]), init="zero"))
    _same(got, want)
    assert got[:, 0, 0].tolist() == [0, 0, 0, 0] and got[:, 0, 1].tolist() == [0, 1, 0, 1]


@needs_native
def test_the_extension_checks_its_buffers():
    lib = native.lib
    a = np.zeros((2, 6), np.float32)
    out = np.zeros((2, 3, 6), np.uint8)
    x = np.zeros((2, 3, 6), np.float32)
    assert lib.integrate_and_fire(x, a, out, None, None, None, 2, 3, 6) is True
    with pytest.raises(ValueError, match="x: expected 36 items"):
        lib.integrate_and_fire(x[:1], a, out, None, None, None, 2, 3, 6)
    with pytest.raises(TypeError, match="format 'f'"):
        lib.integrate_and_fire(x.astype(np.int32), a, out, None, None, None, 2, 3, 6)
    with pytest.raises(TypeError, match="float32 or float64"):
        lib.integrate_and_fire(x, a.astype(np.int32), out, None, None, None, 2, 3, 6)
    with pytest.raises((BufferError, ValueError), match="contiguous"):
        lib.integrate_and_fire(x[:, :, ::2], a[:, :3].copy(), out[:, :, :3].copy(), None, None, None, 2, 3, 3)
    with pytest.raises(ValueError, match="per-pixel scale"):
        lib.integrate_and_fire(x, a, out, None, None, a, 2, 3, 6)
    assert lib.integrate_and_fire(x - 1, a, out, None, None, None, 2, 3, 6) is False


@needs_native
@pytest.mark.parametrize("shape", [(300, 65, 64), (2, 120, 90, 101), (50, 1, 3)])
def test_tfp_gives_the_numpy_bits(monkeypatch, shape):
    """Ordered, unordered, repeated, clipped and > 255-frame windows, a batch, uint8 and bool
    spikes."""
    from spikegen.spikes import tfp

    rng = np.random.default_rng(sum(shape))
    s = (rng.random(shape) < 0.3).astype(np.uint8)
    t = shape[-3]
    # counts in uint8 up to 255 frames, uint16 beyond (and int32 beyond 65 535: the next test)
    cases = [(41, None, 1.0), (7, [0, t - 1, 5, 5, 2], 1.7), (280, [t // 2, 10, t // 2], 1.0),
             (1, "all", 3.0), (t + 5, "all", 1.0), (3, list(range(t - 1, -1, -2)), 1.0)]
    for window, centers, scale in cases:
        for arr in (s, s.astype(bool)):
            got, want = _both(monkeypatch, lambda: tfp(arr, window, centers=centers, scale=scale))
            _same(got, want)


@needs_native
def test_tfp_counts_windows_of_more_than_65535_frames(monkeypatch):
    from spikegen.spikes import tfp

    s = (np.random.default_rng(8).random((70_010, 1, 3)) < 0.5).astype(np.uint8)
    s[:, 0, 2] = 1  # 70 000 spikes in one window: above the uint16 counts
    got, want = _both(monkeypatch, lambda: tfp(s, 70_000, centers=[35_000, 35_004], scale=0.5))
    _same(got, want)
    assert float(got[0, 0, 2]) == 0.5


@needs_native
def test_tfp_tiles_of_pixels_give_the_whole_frame_result():
    """Frames of more than 2**20 pixels go in tiles: small tiles (and a last, partial one) give
    the bits of whole frames, and each tile checks the frames it reads."""
    lib = native.lib
    rng = np.random.default_rng(4)
    s = (rng.random((2, 60, 9090)) < 0.3).astype(np.uint8)
    starts = np.array([0, 3, 3, 40, 10, 11, 0], np.int64)
    ends = np.array([20, 30, 30, 59, 12, 59, 59], np.int64)
    factor = (np.float32(1.7) / (ends - starts + 1)).astype(np.float32)
    clamp = np.array([1, 1, 1, 0, 1, 0, 1], np.uint8)
    outs = []
    for tile in (2**20, 4096, 1000, 1):
        out = np.empty((2, 7, 9090), np.float32)
        assert lib.tfp(s, out, starts, ends, factor, clamp, 2, 60, 9090, True, tile) == 1
        outs.append(out)
    for out in outs[1:]:
        assert np.array_equal(out, outs[0])
    counts = np.stack([s[:, a : e + 1].sum(1) for a, e in zip(starts, ends)], 1)
    want = counts.astype(np.float32) * factor[None, :, None]
    want = np.where(clamp[None, :, None] == 1, np.minimum(want, 1), want)
    assert np.array_equal(outs[0], want)
    s[1, 59, 9089] = 3
    assert lib.tfp(s, out, starts, ends, factor, clamp, 2, 60, 9090, True, 1000) == 3


@needs_native
@pytest.mark.parametrize("frame", [0, 4, 5, 30, 64, 65, 69])
def test_tfp_catches_a_bad_value_in_any_frame(frame):
    from spikegen.spikes import tfp

    s = (np.random.default_rng(3).random((70, 70, 70)) < 0.3).astype(np.uint8)
    s[frame, 69, 69] = 2  # the last pixel: the last tile
    with pytest.raises(ShapeError, match=r"only 0 and 1 \(spikes\), found values in \[0, 2\]"):
        tfp(s, 41, centers=range(25, 45))
    with pytest.raises(ShapeError, match="only 0 and 1"):
        tfp(s[None].repeat(2, 0), 3, centers=[1, 60, 30])  # unordered windows, a batch


@needs_native
def test_tfp_extension_rejects_windows_outside_the_stream():
    lib = native.lib
    s = np.zeros((1, 4, 6), np.uint8)
    out = np.zeros((1, 1, 6), np.float32)
    args = (np.ones(1, np.float32), np.zeros(1, np.uint8), 1, 4, 6)
    assert lib.tfp(s, out, np.array([0]), np.array([3]), *args) == 0
    for a, e in ((-1, 2), (2, 4), (3, 2)):
        with pytest.raises(ValueError, match="outside 0 .. 3"):
            lib.tfp(s, out, np.array([a]), np.array([e]), *args)


@needs_native
@pytest.mark.parametrize("flip", [True, False])
@pytest.mark.parametrize("workers", [1, 2])
def test_read_dat_gives_the_numpy_bytes(monkeypatch, tmp_path, flip, workers):
    """Byte-aligned rows (a multiple of 8 pixels, 4 packed bytes a step plus a tail), rows
    cropped from a wider stored row, frames picked with a step, one thread and two."""
    from spikegen.spikes.io import read_dat, write_dat

    rng = np.random.default_rng(7)
    for h, w, raw_w in ((6, 40, None), (9, 16, 24), (5, 8, None), (4, 7, None)):
        stored = (rng.random((23, h, raw_w or w)) < 0.4).astype(np.uint8)
        path = tmp_path / f"s{h}x{w}.dat"
        write_dat(path, stored, overwrite=True)
        for frames in (None, range(2, 23, 3)):
            def read():
                return torch.from_numpy(read_dat(path, h, w, flip=flip, raw_width=raw_w,
                                                 frames=frames, workers=workers))
            got, want = _both(monkeypatch, read)
            _same(got, want)
            expect = stored if frames is None else stored[frames]
            expect = expect if flip else expect[:, ::-1]  # write_dat stores frames upside down
            assert np.array_equal(got.numpy(), expect[:, :, :w])


def test_version_says_which_kernels_run(capsys):
    from cli_helpers import run

    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out.startswith("spikegen ")
    assert f"(spike kernels: {native.status})" in out


def test_a_build_of_another_source_or_a_switched_off_one_is_not_used(monkeypatch, tmp_path):
    edited = tmp_path / "_native.c"
    source = native._SOURCE.read_bytes() if native._SOURCE.is_file() else b""
    edited.write_bytes(source + b"/* edited */\n")
    lib, status = native._load(edited)
    if native.lib is not None:
        assert lib is None and status.startswith("stale build")
        assert native._load(native._SOURCE)[0] is native.lib
    monkeypatch.setenv("SPIKEGEN_NATIVE", "0")
    assert native._load() == (None, "switched off (SPIKEGEN_NATIVE=0): numpy kernels")


@needs_native
@pytest.mark.parametrize("shape", [(120, 65, 64), (2, 300, 30, 41), (40, 1, 3)])
@pytest.mark.parametrize("rate", [0.02, 0.3, 0.9])
def test_tfi_gives_the_numpy_bits(monkeypatch, shape, rate):
    """Every centre, the valid ones, unordered and repeated ones, with and without a search
    range; uint8 indices up to 254 frames, uint16 beyond; dark pixels (no spike: 0)."""
    from spikegen.spikes import tfi

    rng = np.random.default_rng(int(rate * 100) + sum(shape))
    s = (rng.random(shape) < rate).astype(np.uint8)
    t = shape[-3]
    v_th = 1.0 if len(shape) == 3 else torch.tensor([0.7, 1.9])
    cases = [(None, None), ("valid", 20), ([t - 1, 0, 5, 5, t // 2], 7), ("all", 1), ([3, 3], None)]
    for centers, half in cases:
        got, want = _both(monkeypatch, lambda: tfi(s, v_th=v_th, centers=centers, max_half_window=half))
        _same(got, want)


@needs_native
def test_tfi_long_streams_and_tiles_give_the_numpy_bits(monkeypatch):
    from spikegen.spikes import tfi

    s = np.zeros((70_000, 1, 3), np.uint8)  # int32 indices beyond 65 534 frames
    s[[5, 40_000, 69_990], 0, 0] = 1
    s[::3, 0, 1] = 1
    got, want = _both(monkeypatch, lambda: tfi(s, centers=[10, 39_999, 69_995], max_half_window=None))
    _same(got, want)
    assert got[1, 0, 0] == np.float32(1) / np.float32(40_000 - 5)  # prev 5, next 40 000
    # tiles of pixels (frames of more than 2**20 pixels, or many centres): the same bits
    lib = native.lib
    rng = np.random.default_rng(9)
    x = (rng.random((2, 50, 9090)) < 0.1).astype(np.uint8)
    c = np.array([25, 3, 3, 49, 1], np.int64)
    lo, hi = np.maximum(c - 5, 1), np.minimum(c + 6, 50)
    v = np.array([1.0, 0.5], np.float32)
    outs = []
    for tile in (2**20, 4096, 999, 1):
        out = np.empty((2, 5, 9090), np.float32)
        lib.tfi(x, out, c, lo, hi, v, 2, 50, 9090, tile)
        outs.append(out)
    for out in outs[1:]:
        assert np.array_equal(out, outs[0])
    with pytest.raises(ValueError, match="lo <= centre <= hi"):
        lib.tfi(x, out, c, lo + 1, hi, v, 2, 50, 9090)
