"""Bad input through the real entry point (`spikegen.cli.main`): every case ends with exit 2 and
one line on stderr, and nothing a user already has is ever changed (checked byte for byte)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_helpers import run
from spikegen.image import save_image
from spikegen.spikes.io import save_spikes, write_dat


def refused(argv: list, capsys, *needles: str) -> str:
    """Run, expect exit 2 and exactly one `error:` line on stderr containing every needle."""
    code, out, err = run(argv, capsys)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, (code, out, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def digest(root: Path) -> dict[str, str]:
    """Path -> SHA-256 of every file under ``root`` (or of ``root`` itself)."""
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture
def photo(tmp_path) -> Path:
    y, x = torch.meshgrid(torch.linspace(0, 1, 40), torch.linspace(0, 1, 48), indexing="ij")
    return save_image(tmp_path / "photo.png", torch.stack([x, y, (x + y) / 2]))


@pytest.fixture
def spikes(tmp_path) -> Path:
    s = (np.random.default_rng(0).random((64, 40, 48)) < 0.3).astype(np.uint8)
    return save_spikes(tmp_path / "s.npz", s)


@pytest.fixture
def occupied(tmp_path) -> Path:
    """A folder holding a user's own files, named like outputs the commands write."""
    d = tmp_path / "mine"
    d.mkdir()
    for name in ("report.html", "results.csv", "results.json", "out.png", "index.html"):
        (d / name).write_text(f"the user's own {name}\n")
    return d


# ----------------------------------------------------------------- nothing is ever replaced
@pytest.mark.parametrize("make", ["simulate", "reconstruct", "blur", "deblur", "view"])
def test_writing_into_an_existing_file_changes_no_byte(make, photo, spikes, occupied, capsys, tiny_dir):
    target = occupied / "out.png"
    dat_target = occupied / "out.dat"
    dat_target.write_bytes(b"\x01\x02")
    before = digest(occupied)
    argv = {
        "simulate": ["simulate", photo, "-o", dat_target, "--frames", 8],
        "reconstruct": ["reconstruct", spikes, "-o", target],
        "blur": ["blur", photo, "-o", target],
        "deblur": ["deblur", "--rgb", photo, "--spikes", spikes, "-o", target, "--weights", tiny_dir],
        "view": ["view", spikes, "-o", occupied],
    }[make]
    refused(argv, capsys, "--overwrite")
    assert digest(occupied) == before


def test_demo_and_eval_refuse_an_occupied_folder(occupied, photo, capsys):
    before = digest(occupied)
    refused(["demo", "-o", occupied], capsys, "--overwrite")
    refused(["eval", "deblur", "--data", photo.parent, "-o", occupied, "--methods", "blurry"], capsys, "--overwrite")
    assert digest(occupied) == before


def _train_args(run_dir: Path, images: Path) -> list:
    return ["train", "vae", "--no-progress", "model.vae=preset:tiny-f4-d16", f"data.root={images}", "data.size=32",
            "data.blur=false", "data.frames=1", "train.batch_size=2", "train.steps=2", f"log.dir={run_dir}",
            "log.every=1", "log.checkpoint_every=1", "train.mixed_precision=no", "train.scale_images=2"]


def test_training_never_replaces_a_run(tmp_path, photo, capsys):
    images = photo.parent
    run_dir = tmp_path / "run"
    code, out, err = run(_train_args(run_dir, images), capsys)
    assert code == 0, err
    before = digest(run_dir)
    # the same command again: refused, naming both ways on
    refused(_train_args(run_dir, images), capsys, "--resume", "--overwrite")
    refused(_train_args(run_dir, images) + ["--resume", "--overwrite"], capsys, "exclude each other")
    assert digest(run_dir) == before
    # resuming a finished run says so (no "loss nan")
    code, out, err = run(_train_args(run_dir, images) + ["--resume"], capsys)
    assert code == 0 and "already finished" in out and "nan" not in out
    # export needs no --config (the run stores it); a non-empty export folder needs --overwrite
    exp = tmp_path / "exported"
    code, out, err = run(["train", "vae", "--resume-from", run_dir, "--export", exp], capsys)
    assert code == 0 and (exp / "config.json").is_file(), err
    exp_before = digest(exp)
    refused(["train", "vae", "--resume-from", run_dir, "--export", exp], capsys, "--overwrite")
    assert digest(exp) == exp_before
    code, out, err = run(["train", "vae", "--resume-from", run_dir, "--export", exp, "--overwrite"], capsys)
    assert code == 0, err
    # --overwrite starts afresh
    code, out, err = run(_train_args(run_dir, images) + ["--overwrite"], capsys)
    assert code == 0, err
    assert (run_dir / "log.csv").read_text().count("\n") == 3  # header + 2 fresh steps, nothing appended


# ------------------------------------------------------------------------- configs
@pytest.mark.parametrize("override,needles", [
    ("train.stpes=1", ("train.stpes", "did you mean 'steps'")),
    ("train.steps=five", ("train.steps", "integer")),
    ("train.steps=-1", ("train.steps", ">= 1")),
    ("train.lr=nan", ("train.lr",)),
    ("bogus=1", ("bogus",)),
    ("data.sise=32", ("data.sise", "did you mean 'size'")),
])
def test_config_mistakes_are_one_line_errors(override, needles, tmp_path, photo, capsys):
    argv = _train_args(tmp_path / "r", photo.parent) + [override]
    refused(argv, capsys, *needles)
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_config_file_mistakes_name_the_file(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("stage: vae\ntrian: {steps: 1}\n")
    refused(["train", "vae", "-c", cfg], capsys, str(cfg), "trian", "did you mean 'train'")
    cfg.write_text("stage: pretrain\n")
    refused(["train", "vae", "-c", cfg], capsys, "stage: pretrain", "trains vae")
    cfg.write_text("stage: vae\nmodel: {vae: ../nowhere/vae}\n")
    refused(["train", "vae", "-c", cfg], capsys, "model.vae", "no such file")


# ---------------------------------------------------------------- numeric options
@pytest.mark.parametrize("argv,needle", [
    (["deblur", "--steps", "0"], "--steps"),
    (["deblur", "--temperature", "nan"], "--temperature"),
    (["deblur", "--gamma", "1.5"], "--gamma"),
    (["deblur", "--samples", "0"], "--samples"),
    (["deblur", "--seed", str(2**70)], "--seed"),
    (["deblur", "--fps", "0"], "--fps"),
    (["reconstruct", "--fps", "nan"], "--fps"),
    (["reconstruct", "--scale", "-1"], "--scale"),
    (["reconstruct", "--window", "100000"], "--window"),
    (["simulate", "--frames", "0"], "--frames"),
    (["simulate", "--gain", "nan"], "--gain"),
    (["simulate", "--coverage", "2"], "--coverage"),
    (["simulate", "--frames", "100000000"], "GiB"),
])
def test_bad_numbers_are_refused_before_any_work(argv, needle, photo, spikes, tmp_path, capsys, tiny_dir):
    out = tmp_path / "never.png"
    cmd = argv[0]
    if cmd == "deblur":
        full = ["deblur", "--rgb", photo, "--spikes", spikes, "-o", out, "--weights", tiny_dir] + argv[1:]
    elif cmd == "reconstruct":
        full = ["reconstruct", spikes, "-o", out] + argv[1:]
    else:
        out = tmp_path / "never.dat"
        full = ["simulate", photo, "-o", out] + argv[1:]
    refused(full, capsys, needle)
    assert not out.exists()


def test_tiny_images_are_a_clear_error(tmp_path, capsys, tiny_dir):
    img = save_image(tmp_path / "one.png", torch.rand(3, 1, 1))
    spk = save_spikes(tmp_path / "one.npz", np.ones((8, 1, 1), np.uint8))
    refused(["deblur", "--rgb", img, "--spikes", spk, "-o", tmp_path / "o.png", "--weights", tiny_dir,
             "--no-progress"], capsys, "at least 16x16")


def test_headerless_dat_says_how_to_read_it_back(tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        save_image(frames / f"{i:03d}.png", torch.rand(3, 24, 32))
    code, out, err = run(["simulate", frames, "-o", tmp_path / "v.dat"], capsys)
    assert code == 0, err
    assert "--height 24 --width 32" in out
    code, out, err = run(["info", tmp_path / "v.dat", "--height", 24, "--width", 32], capsys)
    assert code == 0 and "24x32" in out


def test_a_folder_given_as_a_spike_file_is_called_a_folder(tmp_path, capsys):
    refused(["info", tmp_path], capsys, "is a folder", ".dat")
