"""The README's command-line quick tour runs top to bottom as written, on small inputs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SPIKEGEN_SHARED", REPO.parent / "shared"))


def tour_block() -> str:
    text = (REPO / "README.md").read_text()
    section = text[text.index("### Command line"):]
    m = re.search(r"```bash\n(.*?)```", section, re.S)
    assert m, "no bash block in the README's command-line tour"
    return m.group(1)


@pytest.mark.slow
def test_readme_quick_tour_runs_top_to_bottom(tmp_path):
    lego = SHARED / "data" / "nvs" / "lego"
    if not lego.is_dir():
        pytest.skip(f"no shared NeRF scene at {lego}")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:64] / 63.0
    photo = np.stack([xx, yy, 0.5 * (xx + yy)], -1) + 0.1 * rng.random((64, 64, 3))
    Image.fromarray((np.clip(photo, 0, 1) * 255).astype(np.uint8)).save(tmp_path / "photo.png")
    frames = tmp_path / "frames_dir"
    frames.mkdir()
    for i in range(12):  # x4 interpolation: 45 spike frames, more than TFP's 41
        f = np.roll(photo, 2 * i, axis=1)
        Image.fromarray((np.clip(f, 0, 1) * 255).astype(np.uint8)).resize((400, 250)).save(frames / f"{i:05d}.png")
    # a small scene: 6 of lego's views
    import json

    scene = tmp_path / "scene"
    (scene / "train").mkdir(parents=True)
    meta = json.loads((lego / "transforms_train.json").read_text())
    meta["frames"] = meta["frames"][:6]
    for fr in meta["frames"]:
        name = Path(fr["file_path"]).name + ".png"
        Image.open(lego / "train" / name).resize((64, 64)).save(scene / "train" / name)
    (scene / "transforms_train.json").write_text(json.dumps(meta))
    (tmp_path / "configs").symlink_to(REPO / "configs")

    script = tmp_path / "tour.sh"
    script.write_text("set -euo pipefail\n" + tour_block())
    env = dict(os.environ, OMP_NUM_THREADS="1", PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    r = subprocess.run(["bash", str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for out in ("spikes.npz", "photon.npz", "video.dat", "clip.npz", "spikes.mp4", "frame.png", "movie.mp4", "blend.mp4", "frame_spikegen.png",
                "blurry.png", "sharp.png", "sharp_mean.png", "sharp_std.png", "eval_out/report.html",
                "runs/try/final/config.json", "mid/config.json", "restored/transforms_train.json", "demo_out/report.html"):
        assert (tmp_path / out).exists(), out
