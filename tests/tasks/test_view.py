"""Tests of `spikegen view` (spikegen.tasks.view): videos that open with independent readers,
with the right frame count, size, content and stamps; streaming reads; no silent overwrite."""

from __future__ import annotations

from pathlib import Path

import av
import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from spikegen.cli import main
from spikegen.errors import OutputExistsError, SpikeGenError
from spikegen.spikes import io as sio
from spikegen.spikes.io import write_dat
from spikegen.tasks.view import LABEL_HEIGHT, PANEL_GAP, view_file

T, H, W = 120, 32, 96


@pytest.fixture
def stream(tmp_path) -> tuple[np.ndarray, Path]:
    x = (np.random.default_rng(0).random((T, H, W)) < np.linspace(0.05, 0.5, W)).astype(np.uint8)
    return x, write_dat(tmp_path / "rec.dat", x)


def dat_opts():
    return {"height": H, "width": W}


def count_av_frames(path: Path) -> tuple[int, tuple[int, int]]:
    with av.open(str(path)) as c:
        frames = [f for f in c.decode(video=0)]
    return len(frames), (frames[0].width, frames[0].height)


def test_mp4_opens_with_pyav_with_the_right_count_and_size(stream, tmp_path):
    _, dat = stream
    out = tmp_path / "v.mp4"
    r = view_file(dat, out, start=10, end=100, every=3, **dat_opts())
    assert r["label_height"] == LABEL_HEIGHT  # 96 px: the stamp fits on one line
    assert r["frames"] == 30 and r["size"] == [W, H + LABEL_HEIGHT]
    n, size = count_av_frames(out)
    assert n == 30 and size == (W, H + LABEL_HEIGHT)
    # side by side with TFP
    out2 = tmp_path / "tfp.mp4"
    r2 = view_file(dat, out2, tfp_window=9, end=20, **dat_opts())
    assert count_av_frames(out2) == (20, (2 * W + PANEL_GAP, H + r2["label_height"])) and r2["tfp_scale"] > 0
    assert not list(tmp_path.glob(".*partial*"))  # no temporary file left


def test_gif_opens_with_imageio_and_pil(stream, tmp_path):
    x, dat = stream
    out = tmp_path / "v.gif"
    view_file(dat, out, every=10, zoom=2, **dat_opts())
    frames = iio.imread(out, index=None)
    assert frames.shape[:3] == (12, 2 * H + LABEL_HEIGHT, 2 * W)
    with Image.open(out) as im:
        assert im.n_frames == 12 and im.size == (2 * W, 2 * H + LABEL_HEIGHT)
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 12
    # GIF is lossless for black/white: the spike panel of frame 3 is frame 30, zoomed 2x
    f3 = frames[3] if frames.ndim == 3 else frames[3][..., 0]
    assert np.array_equal(f3[LABEL_HEIGHT:] > 127, x[30].repeat(2, 0).repeat(2, 1) > 0)


def test_png_folder_content_stamps_and_tfp_panel(stream, tmp_path):
    x, dat = stream
    out = tmp_path / "frames"
    r = view_file(dat, out, start=40, end=50, tfp_window=11, tfp_scale=1.0, **dat_opts())
    files = sorted(out.glob("*.png"))
    assert [f.name for f in files] == [f"frame_{t:07d}.png" for t in range(40, 50)] and r["frames"] == 10
    a = np.asarray(Image.open(files[0]).convert("L"))
    b = np.asarray(Image.open(files[3]).convert("L"))
    L = r["label_height"]
    assert a.shape == (H + L, 2 * W + PANEL_GAP)
    # raw spikes, upright (the .dat flip is undone), white = spike
    assert np.array_equal(a[L:, :W], x[40] * 255)
    # the TFP panel is the mean of the 11 frames around 40 (scale 1)
    tfp_ref = x[35:46].mean(0)
    assert np.abs(a[L:, W + PANEL_GAP:] / 255.0 - tfp_ref).max() <= 1 / 255 + 1e-6
    # the stamp is drawn (white text on the black bar) and differs between frame 40 and 43
    assert (a[:L] > 128).sum() > 20
    assert not np.array_equal(a[:L], b[:L])


def test_time_stamp_uses_the_camera_rate(stream, tmp_path):
    _, dat = stream
    # same frame, different camera rates: different stamps (the time in ms changes)
    view_file(dat, tmp_path / "a", start=100, end=101, fps_camera=20000, **dat_opts())
    view_file(dat, tmp_path / "b", start=100, end=101, fps_camera=40000, **dat_opts())
    a = np.asarray(Image.open(tmp_path / "a" / "frame_0000100.png").convert("L"))
    b = np.asarray(Image.open(tmp_path / "b" / "frame_0000100.png").convert("L"))
    assert not np.array_equal(a[:LABEL_HEIGHT], b[:LABEL_HEIGHT])
    assert np.array_equal(a[LABEL_HEIGHT:], b[LABEL_HEIGHT:])


def test_narrow_frames_get_a_two_line_stamp(tmp_path):
    x = (np.random.default_rng(1).random((30, 16, 24)) < 0.3).astype(np.uint8)
    dat = write_dat(tmp_path / "narrow.dat", x)
    r = view_file(dat, tmp_path / "n", start=20, end=30, height=16, width=24)
    assert r["label_height"] == 2 * LABEL_HEIGHT and r["size"] == [24, 16 + 2 * LABEL_HEIGHT]
    a = np.asarray(Image.open(tmp_path / "n" / "frame_0000020.png").convert("L"))
    assert (a[:LABEL_HEIGHT] > 128).any() and (a[LABEL_HEIGHT : 2 * LABEL_HEIGHT] > 128).any()  # both lines drawn
    assert np.array_equal(a[2 * LABEL_HEIGHT :], x[20] * 255)


def test_streams_in_blocks(stream, tmp_path, monkeypatch):
    _, dat = stream
    reads = []
    orig = sio.DatFile.read_frames

    def spy(self, frames=None, *, workers=None):
        reads.append(frames)
        return orig(self, frames, workers=workers)

    monkeypatch.setattr(sio.DatFile, "read_frames", spy)
    view_file(dat, tmp_path / "s.gif", tfp_window=9, block=16, **dat_opts())
    assert len(reads) > 5 and max(len(r) for r in reads) <= 16 + 9
    assert reads[0].start == 0 and reads[-1].stop == T  # the whole range is covered
    reads.clear()
    view_file(dat, tmp_path / "sparse.gif", every=50, tfp_window=9, **dat_opts())
    assert [(r.start, r.stop) for r in reads] == [(0, 5), (46, 55), (96, 105)]  # only their windows
    reads.clear()
    view_file(dat, tmp_path / "raw.gif", every=7, block=8, **dat_opts())  # no TFP: just the shown frames
    assert reads[0] == range(0, 50, 7) and sum(len(r) for r in reads) == len(range(0, T, 7))


def test_existing_outputs_are_refused_without_overwrite(stream, tmp_path):
    _, dat = stream
    out = tmp_path / "v.gif"
    view_file(dat, out, end=5, **dat_opts())
    before = out.read_bytes()
    with pytest.raises(OutputExistsError):
        view_file(dat, out, end=9, **dat_opts())
    assert out.read_bytes() == before
    view_file(dat, out, end=9, overwrite=True, **dat_opts())
    assert Image.open(out).n_frames == 9
    folder = tmp_path / "pngs"
    view_file(dat, folder, end=2, **dat_opts())
    with pytest.raises(OutputExistsError):
        view_file(dat, folder, end=2, **dat_opts())
    with pytest.raises(SpikeGenError, match="start < end"):
        view_file(dat, tmp_path / "x.gif", start=50, end=50, **dat_opts())
    with pytest.raises(SpikeGenError, match="expected OUT.mp4"):
        view_file(dat, tmp_path / "x.avi", **dat_opts())


def test_cli_view(stream, tmp_path, capsys):
    _, dat = stream
    out = tmp_path / "cli.mp4"
    argv = ["view", str(dat), "-o", str(out), "--height", str(H), "--width", str(W), "--tfp", "5",
            "--every", "4", "--start", "8", "--no-progress"]
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code in (0, None)
    assert "wrote" in capsys.readouterr().out
    n, (w, h) = count_av_frames(out)
    assert n == 28 and w == 2 * W + PANEL_GAP and h in (H + LABEL_HEIGHT, H + 2 * LABEL_HEIGHT)
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and "exists" in capsys.readouterr().err
