"""The `spikegen` command line: every command as named in the issues, bad input -> exit 2 and
one line on stderr, existing outputs never replaced without --overwrite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cli_helpers import run
from spikegen.image import save_image
from spikegen.spikes.io import load_spikes, read_dat, save_spikes, write_dat


@pytest.fixture
def photo(tmp_path) -> Path:
    y, x = torch.meshgrid(torch.linspace(0, 1, 40), torch.linspace(0, 1, 48), indexing="ij")
    img = torch.stack([x, y, (x + y) / 2])
    return save_image(tmp_path / "photo.png", img)


@pytest.fixture
def dat(tmp_path) -> Path:
    g = np.random.default_rng(0)
    s = (g.random((60, 16, 24)) < np.linspace(0.05, 0.6, 24)).astype(np.uint8)
    return write_dat(tmp_path / "s.dat", s)


@pytest.mark.parametrize("cmd", ["info", "simulate", "convert", "reconstruct", "blur", "deblur", "eval", "demo", "train", "nvs", "view"])
def test_every_command_has_help(cmd, capsys):
    code, out, _ = run([cmd, "--help"], capsys)
    assert code == 0 and "Usage" in out


def test_help_shows_documented_defaults(capsys):
    # Rich reads "[default: x]" inside a help string as a markup tag and drops it silently.
    code, out, _ = run(["eval", "--help"], capsys)
    assert code == 0
    assert "(default: 1,2,4)" in " ".join(out.replace("│", " ").split())


def test_info_reports_frames_size_and_rate(dat, capsys):
    code, out, _ = run(["info", dat, "--height", 16, "--width", 24], capsys)
    assert code == 0
    assert "frames: 60" in out and "16x24" in out
    rate = read_dat(dat, 16, 24).mean()
    assert f"{rate:.5f}" in out


def test_info_on_shared_real_capture(shared_data, capsys):
    code, out, _ = run(["info", shared_data / "spikes/real/uhsr_helicopter.npz"], capsys)
    assert code == 0 and "frames: 200" in out and "250x250" in out
    # its hot pixel fires 24 times where its neighbours' median is 4: no absolute threshold sees it
    assert "hot pixels (>0.5): 0" in out and "bright outliers: 1 " in out


def test_bright_outliers_are_hot_pixels_against_their_neighbours_and_colour_plane():
    from spikegen.tasks.toolkit import bright_outliers

    rng = np.random.default_rng(4)
    n = 400
    counts = rng.poisson(0.03 * n, (120, 160))  # a dim, uniform capture: no outlier by chance
    assert bright_outliers(counts, n) == 0
    hot = [(5, 7), (60, 80), (119, 159), (0, 0)]
    for y, x in hot:
        counts[y, x] = rng.poisson(0.15 * n)  # 5x the neighbours: far below an absolute 0.5
    assert bright_outliers(counts, n) == len(hot)
    # a Bayer mosaic: red pixels fire 4x as often as green; judged per colour plane, none stand out
    rate = np.full((120, 160), 0.03)
    rate[0::2, 0::2] = 0.12  # RGGB: R
    bayer = rng.poisson(rate * n)
    assert bright_outliers(bayer, n, "RGGB") == 0 and bright_outliers(bayer, n) > 1000


@pytest.mark.parametrize("suffix", [".dat", ".npz"])
def test_simulate_image(photo, tmp_path, suffix, capsys):
    out = tmp_path / f"sim{suffix}"
    code, msg, _ = run(["simulate", photo, "-o", out, "--vth", 1, "--gain", 0.5, "--frames", 400, "--seed", 1], capsys)
    assert code == 0, msg
    s = load_spikes(out, height=40, width=48) if suffix == ".dat" else load_spikes(out)
    assert s.shape == (400, 40, 48)
    # firing rate follows intensity * gain / v_th: the right edge is bright in the red channel
    from spikegen.degrade import rgb_to_gray
    from spikegen.image import load_image

    expect = rgb_to_gray(load_image(photo)).mean().item() * 0.5
    assert abs(s.mean() - expect) < 0.01


def test_simulate_frame_folder_with_interp(tmp_path, capsys):
    folder = tmp_path / "frames"
    for i in range(5):
        save_image(folder / f"{i:03d}.png", torch.full((3, 8, 8), i / 4))
    out = tmp_path / "v.npz"
    code, msg, _ = run(["simulate", folder, "-o", out, "--interp", 2, "--gain", 1], capsys)
    assert code == 0, msg
    s = load_spikes(out)
    assert s.shape[1:] == (8, 8) and s.shape[0] == 9  # 5 frames -> 4 gaps x 2 + 1


def test_simulate_photon(photo, tmp_path, capsys):
    out = tmp_path / "p.npz"
    code, _, _ = run(["simulate", photo, "-o", out, "--method", "photon", "--frames", 8, "--coverage", 0.1], capsys)
    assert code == 0
    s, meta = load_spikes(out, with_meta=True)
    assert s.shape == (8, 40, 48) and meta["method"] == "photon"


def test_reconstruct_one_frame_png(dat, tmp_path, capsys):
    out = tmp_path / "f.png"
    code, _, _ = run(["reconstruct", dat, "--method", "tfp", "--window", 41, "--frame", 30, "-o", out,
                      "--height", 16, "--width", 24], capsys)
    assert code == 0
    from spikegen.image import load_image

    img = load_image(out, gray=True)[0]
    # the rate rises left to right, so does the reconstruction
    assert img[:, -4:].mean() > img[:, :4].mean() + 0.3


@pytest.mark.parametrize("method", ["tfp", "tfi", "blend"])
def test_reconstruct_all_to_mp4_and_folder(dat, tmp_path, method, capsys):
    mp4 = tmp_path / f"{method}.mp4"
    code, _, err = run(["reconstruct", dat, "--method", method, "--all", "-o", mp4, "--height", 16, "--width", 24], capsys)
    assert code == 0, err
    import av

    with av.open(str(mp4)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 60
    folder = tmp_path / f"{method}_frames"
    code, _, _ = run(["reconstruct", dat, "--method", method, "--all", "--stride", 10, "-o", folder,
                      "--height", 16, "--width", 24], capsys)
    assert code == 0
    assert sorted(p.name for p in folder.iterdir()) == [f"frame_{t:06d}.png" for t in range(0, 60, 10)]


def test_blur(photo, tmp_path, capsys):
    out = tmp_path / "b.png"
    code, _, _ = run(["blur", photo, "-o", out, "--kernels", 4, "--size", 9, "--seed", 3], capsys)
    assert code == 0 and out.is_file()


def _one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    for n in needles:
        assert n in lines[0], (n, lines[0])


def test_bad_inputs_exit_2_with_one_line(tmp_path, dat, photo, capsys):
    partial = tmp_path / "partial.dat"
    partial.write_bytes(dat.read_bytes()[:-1])
    _one_line_error(*run(["info", partial, "--height", 16, "--width", 24], capsys)[::2], str(partial), "--drop-partial")
    empty = tmp_path / "empty.dat"
    empty.write_bytes(b"")
    _one_line_error(*run(["info", empty], capsys)[::2], "empty")
    _one_line_error(*run(["info", tmp_path / "missing.dat"], capsys)[::2], "missing.dat")
    _one_line_error(*run(["reconstruct", dat, "-o", tmp_path / "x.png", "--method", "nope", "--height", 16, "--width", 24],
                         capsys)[::2], "--method")
    _one_line_error(*run(["reconstruct", dat, "-o", tmp_path / "x.png", "--frame", 999, "--height", 16, "--width", 24],
                         capsys)[::2], "999")
    _one_line_error(*run(["simulate", photo, "-o", tmp_path / "x.txt"], capsys)[::2], ".dat or .npz")
    bad_img = tmp_path / "bad.png"
    bad_img.write_bytes(b"not a png")
    _one_line_error(*run(["blur", bad_img, "-o", tmp_path / "y.png"], capsys)[::2], "bad.png")


def test_existing_output_is_refused_and_kept(photo, tmp_path, capsys):
    out = tmp_path / "keep.npz"
    save_spikes(out, np.ones((2, 3, 4), np.uint8))
    before = out.read_bytes()
    _one_line_error(*run(["simulate", photo, "-o", out], capsys)[::2], "exists", "--overwrite")
    assert out.read_bytes() == before
    code, _, _ = run(["simulate", photo, "-o", out, "--overwrite", "--frames", 4], capsys)
    assert code == 0 and load_spikes(out).shape == (4, 40, 48)


def test_simulate_video_folder_to_dat_streams_and_matches_npz(tmp_path, capsys):
    folder = tmp_path / "frames"
    for i in range(6):
        save_image(folder / f"{i:03d}.png", torch.full((3, 8, 16), (i + 1) / 8))
    code, _, _ = run(["simulate", folder, "-o", tmp_path / "v.dat", "--interp", 3, "--seed", 2], capsys)
    assert code == 0
    code, _, _ = run(["simulate", folder, "-o", tmp_path / "v.npz", "--interp", 3, "--seed", 2], capsys)
    assert code == 0
    a = read_dat(tmp_path / "v.dat", 8, 16)
    b = load_spikes(tmp_path / "v.npz")
    assert a.shape == (16, 8, 16) and np.array_equal(a, b)
