"""--start/--end with units on info, reconstruct, deblur and view: a time window selects exactly
the frames of the same frame window (--start 5ms --end 10ms at 20 kHz == frames 100..199)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from cli_helpers import run
from spikegen.image import load_image, save_image
from spikegen.spikes.io import save_spikes, write_dat

T, H, W = 300, 8, 16


@pytest.fixture
def x() -> np.ndarray:
    # the firing rate grows with the frame index, so every range has its own statistics
    rate = np.linspace(0.02, 0.9, T)[:, None, None]
    return (np.random.default_rng(0).random((T, H, W)) < rate).astype(np.uint8)


@pytest.fixture
def dat(tmp_path, x) -> Path:
    return write_dat(tmp_path / "s.dat", x)


DAT = ["--height", H, "--width", W]


@pytest.fixture
def sample_inputs(monkeypatch) -> list:
    """The ``(rgb, spikes)`` of every ``SpikeGen.sample`` call (the model still runs)."""
    from spikegen.models import SpikeGen

    seen: list = []
    real = SpikeGen.sample

    def spy(self, rgb=None, spikes=None, **kw):
        seen.append((rgb, spikes))
        return real(self, rgb=rgb, spikes=spikes, **kw)

    monkeypatch.setattr(SpikeGen, "sample", spy)
    return seen


def test_info_time_window_equals_the_frame_window(dat, capsys):
    by_time = json.loads(run(["info", dat, *DAT, "--json", "--start", "5ms", "--end", "10ms"], capsys)[1])
    by_frame = json.loads(run(["info", dat, *DAT, "--json", "--start", "100", "--end", "200"], capsys)[1])
    assert by_time["range"] == by_frame["range"] == {"start": 100, "end": 200, "frames": 100,
                                                     "start_s": 0.005, "end_s": 0.01}
    assert by_time["mean_rate"] == by_frame["mean_rate"]
    assert by_time["fps"] == 20000 and by_time["fps_source"] == "default"
    # --fps changes the conversion: at 10 kHz 5..10 ms are frames 50..99
    at10k = json.loads(run(["info", dat, *DAT, "--json", "--fps", 10000, "--start", "5ms", "--end", "10ms"], capsys)[1])
    assert at10k["range"]["start"] == 50 and at10k["range"]["end"] == 100 and at10k["fps_source"] == "--fps"


def test_info_prints_duration_fps_and_its_source(dat, tmp_path, x, capsys):
    code, out, _ = run(["info", dat, *DAT], capsys)
    assert code == 0
    assert "fps: 20000 Hz (default" in out and "duration: 15.000 ms (0.015 s)" in out
    npz = save_spikes(tmp_path / "s.npz", x, fps=30000)
    out = run(["info", npz], capsys)[1]
    assert "fps: 30000 Hz (from the file's metadata)" in out and "duration: 10.000 ms (0.01 s)" in out
    out = run(["info", npz, "--fps", 15000, "--start", "1ms"], capsys)[1]
    assert "15000 Hz (--fps)" in out and "range: frames 15..299" in out


@pytest.mark.parametrize("argv, flag", [
    (["--end", "1s"], "--end"), (["--start", "10ms", "--end", "5ms"], "--start"),
    (["--start", "abc"], "--start"), (["--fps", "0"], "--fps"),
])
def test_info_bad_ranges_are_one_line_errors(dat, argv, flag, capsys):
    code, out, err = run(["info", dat, *DAT, *argv], capsys)
    assert code == 2 and out == "" and err.startswith("error: ") and flag in err and len(err.strip().splitlines()) == 1


def test_reconstruct_all_time_window_equals_the_frame_window(dat, tmp_path, capsys):
    a, b = tmp_path / "by_time", tmp_path / "by_frame"
    assert run(["reconstruct", dat, *DAT, "--all", "--window", 9, "-o", a, "--start", "5ms", "--end", "10ms"], capsys)[0] == 0
    assert run(["reconstruct", dat, *DAT, "--all", "--window", 9, "-o", b, "--start", 100, "--end", 200], capsys)[0] == 0
    names = sorted(p.name for p in a.iterdir())
    assert names == [f"frame_{t:06d}.png" for t in range(100, 200)]  # the file's own frame numbers
    assert names == sorted(p.name for p in b.iterdir())
    for n in ("frame_000100.png", "frame_000150.png", "frame_000199.png"):
        assert torch.equal(load_image(a / n), load_image(b / n))


def test_reconstruct_one_frame_uses_only_the_selected_frames(dat, tmp_path, x, capsys):
    out = tmp_path / "one.png"
    # the range's middle frame (150), its 41-frame window 130..170 inside 100..199
    assert run(["reconstruct", dat, *DAT, "-o", out, "--start", "5ms", "--end", "10ms"], capsys)[0] == 0
    want = x[130:171].mean(0)
    assert np.abs(load_image(out, gray=True)[0].numpy() - want).max() <= 0.5 / 255 + 1e-6
    # near the cut the window is truncated as at a file's end: frame 100 sees 100..120 only
    out2 = tmp_path / "edge.png"
    assert run(["reconstruct", dat, *DAT, "-o", out2, "--start", "5ms", "--end", "10ms", "--frame", 100], capsys)[0] == 0
    assert np.abs(load_image(out2, gray=True)[0].numpy() - x[100:121].mean(0)).max() <= 0.5 / 255 + 1e-6
    code, _, err = run(["reconstruct", dat, *DAT, "-o", tmp_path / "o.png", "--start", "5ms", "--end", "10ms",
                        "--frame", 99], capsys)
    assert code == 2 and "--frame 99" in err


def test_view_time_window_equals_the_frame_window(dat, tmp_path, capsys):
    a, b = tmp_path / "va", tmp_path / "vb"
    assert run(["view", dat, *DAT, "-o", a, "--start", "5ms", "--end", "10ms", "--every", 25, "--no-progress"], capsys)[0] == 0
    assert run(["view", dat, *DAT, "-o", b, "--start", 100, "--end", 200, "--every", 25, "--no-progress"], capsys)[0] == 0
    names = sorted(p.name for p in a.iterdir())
    assert names == [f"frame_{t:07d}.png" for t in (100, 125, 150, 175)] == sorted(p.name for p in b.iterdir())
    assert torch.equal(load_image(a / names[1]), load_image(b / names[1]))


class FakeModel:
    """Stands in for SpikeGen: records the spikes it gets."""

    def __init__(self):
        self.config = SimpleNamespace(spike_frames=None, sample_steps=1)
        self.device = torch.device("cpu")
        self.calls: list[torch.Tensor] = []

    def sample(self, rgb=None, spikes=None, **kw):
        self.calls.append(spikes.clone())
        return spikes.float().mean(1, keepdim=True).expand(-1, 3, -1, -1).clone()


def test_deblur_time_window_equals_the_frame_window(dat, tmp_path, x):
    from spikegen.tasks.deblur import deblur_file

    blurry = save_image(tmp_path / "b.png", torch.full((3, H, W), 0.5))
    runs = []
    for i, (s, e) in enumerate([("5ms", "10ms"), ("100", "200"), (100, 200)]):
        m = FakeModel()
        deblur_file(blurry, dat, tmp_path / f"o{i}.png", model=m, start=s, end=e, tile=None, progress=False)
        runs.append(m.calls[0][0].numpy())
    for got in runs:
        assert np.array_equal(got, x[100:200])
    with pytest.raises(Exception, match="--end"):
        deblur_file(blurry, dat, tmp_path / "o9.png", model=FakeModel(), end="1s", progress=False)


def test_reconstruct_spikegen_gets_the_eval_protocols_inputs(tmp_path, tiny_dir, sample_inputs):
    """``reconstruct --method spikegen`` feeds SpikeGen what ``eval reconstruct`` does: the
    window's TFP x the model's tfp_scale as the RGB input and the centre 8 spike frames."""
    from spikegen.models import SpikeGen
    from spikegen.spikes.reconstruct import tfp
    from spikegen.tasks.reconstruct import reconstruct_file

    rng = np.random.default_rng(0)
    spikes = (rng.random((60, 16, 16)) < 0.3).astype(np.uint8)
    f = save_spikes(tmp_path / "s.npz", spikes)
    out = reconstruct_file(f, tmp_path / "o.png", method="spikegen", window=41, frame=30, weights=tiny_dir,
                           steps=2, progress=False)
    assert out.is_file()
    lo = 30 - 20
    rgb, sp = sample_inputs[0]
    assert torch.equal(sp[0].reshape(8, 16, 16), torch.from_numpy(spikes[26:34]))
    scale = SpikeGen.from_pretrained(tiny_dir).config.tfp_scale
    want = tfp(torch.from_numpy(spikes[lo:lo + 41]), 41, centers=[20], scale=scale)[0].clamp(0, 1)
    assert torch.allclose(rgb[0, 0], want) and torch.equal(rgb[0, 0], rgb[0, 2])


def test_reconstruct_spikegen_uses_the_weights_tfp_window(tmp_path, tiny_dir, sample_inputs):
    """Weights that name ``tfp_window`` get the TFP of that many centred frames (out of 61 by
    default), at most ``window``, and more on a sparse stream (``tfp_min_spikes``)."""
    import json
    import shutil

    from spikegen.models import SpikeGen
    from spikegen.spikes.reconstruct import tfp
    from spikegen.tasks.reconstruct import reconstruct_file

    w = tmp_path / "w"
    shutil.copytree(tiny_dir, w)
    cfg = json.loads((w / "config.json").read_text())
    (w / "config.json").write_text(json.dumps({**cfg, "tfp_window": 21, "tfp_min_spikes": 2.0}))
    rng = np.random.default_rng(1)
    spikes = (rng.random((80, 16, 16)) < 0.3).astype(np.uint8)
    spikes[:, :8] = 0  # half the frame dark: mean rate 0.15, 2 spikes need 14 frames
    f = save_spikes(tmp_path / "s.npz", spikes)
    sparse = (rng.random((80, 16, 16)) < 0.05).astype(np.uint8)  # 2 spikes need about 40 frames
    fs = save_spikes(tmp_path / "sparse.npz", sparse)
    scale = SpikeGen.from_pretrained(w).config.tfp_scale
    for i, (src, window, n) in enumerate([(spikes, None, 21), (spikes, 15, 15), (sparse, None, None)]):
        reconstruct_file(fs if src is sparse else f, tmp_path / f"o{i}.png", method="spikegen", window=window,
                         frame=40, weights=w, steps=2, progress=False)
        if n is None:  # widened: ceil(2 / the 61 frames' mean rate)
            rate = float(sparse[10:71].mean())
            n = int(np.ceil(2 / rate))
            assert 30 < n < 61
        lo = 40 - n // 2
        want = tfp(torch.from_numpy(src[lo:lo + n]), n, centers=[40 - lo], scale=scale)[0].clamp(0, 1)
        assert torch.allclose(sample_inputs[i][0][0, 0], want, atol=1e-6)
    assert not torch.allclose(sample_inputs[0][0], sample_inputs[1][0])


def test_reconstruct_spikegen_blends_the_tfi_into_the_pseudo_frame(tmp_path, tiny_dir, sample_inputs):
    """Weights that name ``pseudo_tfi`` get the TFP blended with the TFI as their RGB input:
    the TFP over the weights' ``tfp_window``, the TFI searched over the whole 61-frame window,
    per pixel by inverse variance (``"ivw"``) or with a fixed weight, at the weights'
    ``tfp_scale``; ``eval reconstruct`` makes the same frame (pseudo_frame)."""
    import json
    import shutil

    from spikegen.errors import SpikeGenError
    from spikegen.models import SpikeGen
    from spikegen.spikes.reconstruct import tfi, tfp
    from spikegen.tasks.deblur import pseudo_frame
    from spikegen.tasks.reconstruct import reconstruct_file

    w = tmp_path / "w"
    shutil.copytree(tiny_dir, w)
    cfg = json.loads((w / "config.json").read_text())
    rng = np.random.default_rng(2)
    spikes = (rng.random((80, 16, 16)) < rng.uniform(0.02, 0.9, (1, 16, 16))).astype(np.uint8)
    f = save_spikes(tmp_path / "s.npz", spikes)
    win = torch.from_numpy(spikes[10:71])  # the 61 frames around frame 40
    rate = tfp(win, 21, centers=[30])[0]
    ti = tfi(win, v_th=1.0, centers=[30], max_half_window=30)[0]
    for i, blend in enumerate(("ivw", 0.7)):
        (w / "config.json").write_text(json.dumps({**cfg, "tfp_window": 21, "pseudo_tfi": blend}))
        model = SpikeGen.from_pretrained(w)
        scale = model.config.tfp_scale
        reconstruct_file(f, tmp_path / f"o{i}.png", method="spikegen", frame=40, weights=w, steps=2, progress=False)
        b = 1 / (1 + (21 * rate ** 2) ** 2) if blend == "ivw" else blend
        want = (((1 - b) * rate + b * ti) * scale).clamp(0, 1)
        assert torch.allclose(sample_inputs[i][0][0, 0], want, atol=1e-6)
        assert float((want - (rate * scale).clamp(0, 1)).abs().max()) > 0.1  # the blend is not the TFP
        frame, n = pseudo_frame(model, win, 30, scale=scale)
        assert n == 21 and torch.allclose(frame[0], want, atol=1e-6)
    (w / "config.json").write_text(json.dumps({**cfg, "pseudo_tfi": "median"}))
    with pytest.raises(SpikeGenError, match="pseudo_tfi"):
        pseudo_frame(SpikeGen.from_pretrained(w), win, 30)


def test_reconstruct_spikegen_default_window_fits_a_short_stream(tmp_path, tiny_dir):
    # weights with a tfp_window default to 61 frames to pick from; a 40-frame stream is all used
    import json
    import shutil

    from spikegen.tasks.reconstruct import reconstruct_file

    w = tmp_path / "w"
    shutil.copytree(tiny_dir, w)
    cfg = json.loads((w / "config.json").read_text())
    (w / "config.json").write_text(json.dumps({**cfg, "tfp_window": 21}))
    f = save_spikes(tmp_path / "s.npz", (np.random.default_rng(2).random((40, 16, 16)) < 0.3).astype(np.uint8))
    out = reconstruct_file(f, tmp_path / "o.png", method="spikegen", weights=w, steps=2, progress=False)
    assert out.is_file()
    with pytest.raises(Exception, match="--window 61 is longer"):
        reconstruct_file(f, tmp_path / "o2.png", method="spikegen", window=61, weights=w, steps=2, progress=False)
