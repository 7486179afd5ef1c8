"""The HTML reports open in a real browser: headless Chromium loads every image.

A copy of the report gets a script that, on the window's ``load`` event, writes the number of
``<img>`` elements with ``naturalWidth > 0`` (decoded images), the total and the sources of the
broken ones into an element; Chromium's ``--dump-dom`` prints the DOM after loading. Chromium
is the Debian package ``chromium``: when it is missing the session installs it once
(``apt-get update && apt-get install -y chromium``, as root). The issue requires this check, so
a failed install fails the tests instead of skipping them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

CHROMIUM = Path("/usr/bin/chromium")
INSTALL_TIMEOUT_S = 900
_MARK = "spikegen-image-check"
_SCRIPT = (
    "<script>window.addEventListener('load',function(){"
    "var a=Array.prototype.slice.call(document.images);"
    "var good=function(i){return i.complete&&i.naturalWidth>0;};"
    "var d=document.createElement('pre');d.id='" + _MARK + "';"
    "d.textContent=JSON.stringify({ok:a.filter(good).length,total:a.length,"
    "bad:a.filter(function(i){return !good(i);}).map(function(i){return i.getAttribute('src');})});"
    "document.body.appendChild(d);});</script>"
)


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Path of a headless-capable Chromium, installed from the Debian archive when missing."""
    found = CHROMIUM if CHROMIUM.exists() else (Path(p) if (p := shutil.which("chromium")) else None)
    if found is not None:
        return found
    if os.geteuid() != 0:
        pytest.fail("chromium is not installed and the tests are not root: run `apt-get install -y chromium`")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, env=env)
            if r.returncode != 0:
                pytest.fail(f"`{' '.join(cmd)}` failed ({r.returncode}): {r.stderr[-2000:]}")
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"installing chromium failed: {exc}")
    if not CHROMIUM.exists():
        pytest.fail("apt-get installed chromium but /usr/bin/chromium is missing")
    return CHROMIUM


def images_loaded(chromium: Path, report: Path, profile: Path) -> dict:
    """Open ``report`` in headless Chromium; returns ``{"ok", "total", "bad"}`` for its ``<img>``s."""
    html = report.read_text(encoding="utf-8")
    assert "</body>" in html, f"{report}: no </body>"
    probe = report.with_name(f".probe_{report.name}")  # beside the report: relative paths resolve
    probe.write_text(html.replace("</body>", _SCRIPT + "</body>", 1), encoding="utf-8")
    cmd = [str(chromium), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom", probe.resolve().as_uri()]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    finally:
        probe.unlink(missing_ok=True)
    m = re.search(rf'<pre id="{_MARK}">(.*?)</pre>', r.stdout, re.S)
    assert m, f"chromium did not run the check (exit {r.returncode}): {r.stderr[-1500:]}"
    return json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def test_checker_sees_a_broken_image(chromium, tmp_path):
    """Negative control: a missing file is reported, so a pass below means the images loaded."""
    from spikegen.image import save_image
    from spikegen.report import Report

    save_image(tmp_path / "ok.png", torch.rand(3, 16, 16))
    Report("probe").figures("x", [("ok.png", "fine"), ("missing.png", "broken")]).write(tmp_path / "r.html")
    got = images_loaded(chromium, tmp_path / "r.html", tmp_path / "profile")
    assert got == {"ok": 1, "total": 2, "bad": ["missing.png"]}


def test_eval_deblur_report_loads_every_image(chromium, tmp_path):
    from spikegen.image import save_image
    from spikegen.models import SpikeGen, SpikeGenConfig
    from spikegen.models.vae import build_vae
    from spikegen.tasks.evaluate import evaluate_deblur

    torch.manual_seed(0)
    weights = tmp_path / "tiny"
    SpikeGen(SpikeGenConfig.preset("tiny"), vae=build_vae("tiny-f4-d16")).save_pretrained(weights)
    data = tmp_path / "imgs"
    g = torch.Generator().manual_seed(0)
    for i in range(2):
        save_image(data / f"im{i}.png", torch.rand(3, 64, 64, generator=g))
    out = tmp_path / "eval"
    evaluate_deblur(data, out, methods="blurry,tfp,tfi,spikegen-0.5", v_ths="1,2", size=64, weights=weights,
                    steps=2, progress=False)
    got = images_loaded(chromium, out / "report.html", tmp_path / "profile")
    # the plot + per image: sharp, blurry, and 3 methods at 2 thresholds
    assert got["total"] == 1 + 2 * (2 + 3 * 2)
    assert got["ok"] == got["total"], got["bad"]


def test_demo_report_loads_every_image(chromium, tmp_path):
    from spikegen.tasks.demo import run_demo

    report = run_demo(tmp_path / "demo", steps=2, samples=2)
    got = images_loaded(chromium, report, tmp_path / "profile")
    assert got["total"] >= 6
    assert got["ok"] == got["total"], got["bad"]
