"""Time in spikegen.spikes.io: frame rates (fps metadata, the 20 kHz default), frame/time
ranges with units, SpikeRange windows, and partial reads of uncompressed packed .npz files."""

from __future__ import annotations

import pickle
import tracemalloc

import numpy as np
import pytest

from spikegen.errors import SpikeFileError
from spikegen.spikes.io import (
    DEFAULT_FPS,
    NpzSpikes,
    frame_range,
    load_spikes,
    open_spikes,
    save_spikes,
    spikes_info,
    time_to_frame,
    write_dat,
)


def stream(t, h=6, w=10, seed=0):
    return (np.random.default_rng(seed).random((t, h, w)) < 0.3).astype(np.uint8)


# ------------------------------------------------------------------------------ time specs
def test_time_specs_convert_exactly_start_down_end_up():
    assert DEFAULT_FPS == 20000
    assert frame_range("5ms", "10ms", 1000, 20000) == (100, 200)
    assert frame_range("0.005s", "0.01s", 1000, 20000) == (100, 200)
    assert frame_range("5e-3s", "1e1ms", 1000, 20000) == (100, 200)
    assert frame_range(100, "200", 1000, 20000) == (100, 200)  # plain integers are frames
    assert frame_range(None, None, 7, 20000) == (0, 7)
    # not on a frame boundary: start rounds down, end up (every frame overlapping [start, end))
    assert frame_range("0.07ms", "0.11ms", 100, 20000) == (1, 3)
    assert time_to_frame("0.07ms", 20000) == 1 and time_to_frame("0.07ms", 20000, rounding="ceil") == 2
    # decimal frame rates are taken as written (29.97 = 2997/100): 1 s is 29.97 frames
    assert frame_range("0s", "1s", 100, 29.97) == (0, 30)
    assert frame_range("10s", "20s", 1000, 29.97) == (299, 600)
    # floats would give 0.0003 * 20000 = 5.999999999999999 -> 5 frames; exact arithmetic gives 6
    assert time_to_frame("0.3ms", 20000) == 6


@pytest.mark.parametrize("start, end, match", [
    ("-1", None, "--start"), ("1.5", None, "--start.*integer"), ("5 min", None, "--start"),
    (None, "2s", "--end 2s is frame 40000, beyond"), ("10ms", "5ms", "--start 10ms .* before --end"),
    ("3", "3", "before"),
])
def test_bad_time_specs_name_the_flag(start, end, match):
    with pytest.raises(SpikeFileError, match=match):
        frame_range(start, end, 20000, 20000, names=("--start", "--end"))


# ------------------------------------------------------------------------------- frame rates
def test_fps_comes_from_metadata_the_default_or_the_argument(tmp_path):
    x = stream(40)
    dat = write_dat(tmp_path / "a.dat", x)
    npz = save_spikes(tmp_path / "a.npz", x, fps=10000)
    plain = save_spikes(tmp_path / "b.npz", x)
    d = open_spikes(dat, height=6, width=10)
    assert (d.fps, d.fps_source) == (20000.0, "default")
    assert (open_spikes(npz).fps, open_spikes(npz).fps_source) == (10000.0, "metadata")
    assert open_spikes(plain).fps_source == "default"
    f = open_spikes(npz, fps=40000)
    assert (f.fps, f.fps_source) == (40000.0, "given")
    info = spikes_info(npz)
    assert info.fps == 10000 and info.duration_s == pytest.approx(40 / 10000)
    assert info.as_dict()["fps_source"] == "metadata"
    # times read through each file's own rate: 1 ms = 20 frames of the .dat, 10 of the .npz
    assert np.array_equal(d.read("1ms", "1.5ms"), x[20:30])
    assert np.array_equal(open_spikes(npz).read("1ms", "1.5ms"), x[10:15])
    with pytest.raises(SpikeFileError, match="fps"):
        open_spikes(dat, height=6, width=10, fps=0)
    with pytest.raises(SpikeFileError, match="fps"):
        save_spikes(tmp_path / "c.npz", x, fps=-5)


def test_window_reads_a_range_as_a_stream(tmp_path):
    x = stream(50)
    src = open_spikes(write_dat(tmp_path / "a.dat", x), height=6, width=10)
    w = src.window(10, 30)
    assert len(w) == 20 and w.shape == (20, 6, 10) and w.fps == src.fps
    assert np.array_equal(w.read(), x[10:30])
    assert np.array_equal(w.read(5, 8), x[15:18])
    assert np.array_equal(w.read_frames(slice(None, None, -3)), x[10:30][::-3])
    assert [(b.start, len(b.spikes)) for b in w.blocks(8)] == [(0, 8), (8, 8), (16, 4)]
    with pytest.raises(SpikeFileError):
        w.read_frames(20)


# ------------------------------------------------------------------- packed .npz partial reads
def test_uncompressed_packed_npz_reads_only_the_frames_asked_for(tmp_path):
    T, H, W = 2000, 64, 64
    x = (np.random.default_rng(1).random((T, H, W)) < 0.2).astype(np.uint8)
    p = save_spikes(tmp_path / "long.npz", x)
    del x
    tracemalloc.start()
    try:
        f = open_spikes(p)
        part = f.read(1000, 1032)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(f, NpzSpikes) and f.partial_reads and f._bits is None
    # 32 frames are 131 kB unpacked; the packed file is 1 MB and the stream 8 MB
    assert peak < 400_000, peak
    ref = (np.random.default_rng(1).random((T, H, W)) < 0.2).astype(np.uint8)
    assert np.array_equal(part, ref[1000:1032])
    assert np.array_equal(load_spikes(p), ref)
    assert np.array_equal(pickle.loads(pickle.dumps(f)).read(5, 7), ref[5:7])


def test_partial_and_whole_loads_agree_on_odd_sizes_flip_and_compression(tmp_path):
    x = stream(37, 5, 7, seed=3)  # 35 px per frame: frames start mid-byte
    p = save_spikes(tmp_path / "odd.npz", x, fps=1000)
    c = save_spikes(tmp_path / "odd_c.npz", x, compress=True, fps=1000)
    f, fc = open_spikes(p), open_spikes(c)
    assert f.partial_reads and not fc.partial_reads  # compressed files are loaded whole
    for a, b in [(0, 37), (3, 4), (5, 19), (36, 37)]:
        assert np.array_equal(f.read(a, b), x[a:b]) and np.array_equal(fc.read(a, b), x[a:b])
    assert np.array_equal(f.read_frames(slice(30, 2, -7)), x[30:2:-7])
    assert np.array_equal(open_spikes(p, flip=True).read(2, 6), x[2:6, ::-1])
    assert f.meta["fps"] == 1000 and fc.meta == f.meta
    with pytest.raises(SpikeFileError, match="holds 5x7"):
        open_spikes(p, height=6)
