"""--json on `spikegen info` and `spikegen eval`: stdout holds one JSON document and nothing else
(progress bars and messages go to stderr)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cli_helpers import run
from spikegen.image import save_image
from spikegen.spikes.io import read_dat, save_spikes, write_dat


def test_info_json_is_one_document_of_numbers(tmp_path, capsys):
    x = (np.random.default_rng(0).random((60, 16, 24)) < 0.25).astype(np.uint8)
    dat = write_dat(tmp_path / "s.dat", x[:, :, :])
    with open(dat, "ab") as f:
        f.write(b"\0" * 7)  # trailing bytes, read with --drop-partial
    code, out, err = run(["info", dat, "--height", 16, "--width", 24, "--drop-partial", "--json"], capsys)
    assert code == 0 and err == ""
    doc = json.loads(out)  # the whole of stdout
    assert doc["frames"] == 60 and (doc["height"], doc["width"]) == (16, 24) and doc["format"] == "dat"
    assert doc["mean_rate"] == pytest.approx(float(read_dat(dat, 16, 24, partial="drop").mean()))
    assert doc["trailing_bytes"] == 7 and doc["cfa"] is None
    assert doc["duration_s"] == pytest.approx(60 / 20000) and doc["fps_source"] == "default"
    npz = save_spikes(tmp_path / "s.npz", x, fps=1000, v_th=2.0, cfa="RGGB")
    doc = json.loads(run(["info", npz, "--json"], capsys)[1])
    assert doc["fps"] == 1000 and doc["fps_source"] == "metadata" and doc["cfa"] == "RGGB"
    assert doc["metadata"]["v_th"] == 2.0 and doc["duration_s"] == pytest.approx(0.06)


def test_info_json_errors_leave_stdout_empty(tmp_path, capsys):
    code, out, err = run(["info", tmp_path / "missing.dat", "--json"], capsys)
    assert code == 2 and out == "" and "missing.dat" in err


def test_eval_json_is_results_json_and_messages_go_to_stderr(tmp_path, capsys):
    root = tmp_path / "data"
    (root / "spike").mkdir(parents=True)
    g = np.random.default_rng(1)
    for k in range(2):
        write_dat(root / "spike" / f"s{k}.dat", (g.random((41, 32, 32)) < 0.3).astype(np.uint8))
        save_image(root / "gt" / f"s{k}.png", torch.full((1, 32, 32), 0.5))
    out_dir = tmp_path / "e"
    code, out, err = run(["eval", "reconstruct", "--data", root, "-o", out_dir, "--methods", "tfp,tfi",
                          "--window", 21, "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)  # stdout is exactly one document
    saved = json.loads((out_dir / "results.json").read_text())
    assert doc["summary"] == saved["summary"] and doc["methods"] == ["tfp", "tfi"]
    assert len(doc["per_image"]) == 4
    assert "wrote" in err and "results.json" in err  # the message went to stderr
    # without --json: the table on stdout, as before
    code, out, _ = run(["eval", "reconstruct", "--data", root, "-o", tmp_path / "e2", "--methods", "tfp",
                        "--window", 21, "--no-progress"], capsys)
    assert code == 0 and out.lstrip().startswith("|")
