"""The outputs of ``spikegen eval``: summaries, results.json / csv / md, the report and the command string."""

from __future__ import annotations

import csv
import json
import math
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from spikegen.errors import OutputExistsError
from spikegen.image import save_image
from spikegen.report import Report, markdown_table
from spikegen.tasks.evaluate.scoring import METRIC_DOC

__all__ = ["DISPLAY", "stderr_warn", "check_out", "safe_name", "summarise", "display_rows", "write_outputs",
           "command_string", "progress_bar", "save_png", "report_base", "report_figs"]

#: Column titles of the summary tables (results.md, report.html): the space each metric is in.
DISPLAY = {
    "method": "method", "v_th": "V_th", "n": "images",
    "psnr_gray": "PSNR gray (dB) ↑", "ssim_gray": "SSIM gray ↑", "lpips_gray": "LPIPS gray ↓",
    "psnr_rgb": "PSNR RGB (dB) ↑", "ssim_rgb": "SSIM RGB ↑", "lpips_rgb": "LPIPS RGB ↓",
    "psnr": "PSNR 8-bit gray (dB) ↑", "ssim": "SSIM MATLAB gray [0,255] ↑", "lpips": "LPIPS gray ↓",
    "niqe": "NIQE ↓", "brisque": "BRISQUE ↓",
}


# ----------------------------------------------------------------------------- helpers
def stderr_warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr, flush=True)


def check_out(out_dir: Path, overwrite: bool) -> None:
    names = ("results.json", "results.csv", "results.md", "report.html", "per_image.csv", "psnr_vs_vth.png")
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputExistsError(f"-o {out_dir}: exists and is not a folder")
    busy = [out_dir / n for n in names if (out_dir / n).exists()]
    if (out_dir / "images").is_dir() and any((out_dir / "images").iterdir()):
        busy.append(out_dir / "images")
    if busy and not overwrite:
        raise OutputExistsError(f"{busy[0]}: exists; pass --overwrite to replace the results in {out_dir}")


def safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "_" for c in name).strip("_")


def _mean(vals: Iterable[float]) -> float:
    v = [x for x in vals if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return float(np.mean(v)) if v else float("nan")


def summarise(rows: list[dict[str, Any]], keys: Sequence[str], group: Sequence[str]) -> list[dict[str, Any]]:
    """Mean of each metric per group (first-seen order); ``n`` = images with a value."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(r.get(g) for g in group), []).append(r)
    out = []
    for gk, rs in groups.items():
        row: dict[str, Any] = dict(zip(group, gk))
        row["n"] = len(rs)
        for k in keys:
            if any(k in r for r in rs):
                row[k] = _mean(r.get(k) for r in rs)
        out.append(row)
    return out


def display_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Summary rows with the column titles of :data:`DISPLAY` (V_th printed as ``1``, ``2`` ...)."""
    return [{DISPLAY.get(k, k): (f"{v:g}" if k == "v_th" else v) for k, v in r.items()} for r in rows]


def _to_json(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def write_outputs(out_dir: Path, result: dict[str, Any], report) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)

    def atomic(path: Path, text: str) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)

    atomic(out_dir / "results.json", json.dumps(result, indent=1, default=_to_json) + "\n")
    for name, rows in (("results.csv", result["summary"]), ("per_image.csv", result["per_image"])):
        cols: list[str] = []
        for r in rows:
            cols += [k for k in r if k not in cols]
        tmp = out_dir / f".{name}.tmp"
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, out_dir / name)
    md = [f"# spikegen eval {result['task']}", "", f"Data: `{result['data']}`", "",
          f"Reproduce: `{result['command']}`", "", markdown_table(display_rows(result["summary"]), digits=4)]
    if result.get("skipped"):
        md += [f"Skipped (no SpikeGen weights): {', '.join(result['skipped'])}", ""]
    md += ["Metrics:", ""] + [f"- `{k}`: {METRIC_DOC[k]}" for k in result["metrics"]] + [""]
    atomic(out_dir / "results.md", "\n".join(md))
    return report.write(out_dir / "report.html")


def _num(x: Any) -> str:
    """Shortest text that reads back as the same value (``1.0`` -> ``1``, ``1/0.6`` in full)."""
    if isinstance(x, float):
        short = f"{x:g}"
        return short if float(short) == x else repr(x)
    return str(x)


def command_string(task: str, data: Path, out_dir: Path, **opts: Any) -> str:
    parts = ["spikegen", "eval", task, "--data", str(data)]
    for k, v in opts.items():
        if v is None or v is False:
            continue
        flag = "--" + k.replace("_", "-")
        if v is True:
            parts.append(flag)
        else:
            parts += [flag, ",".join(_num(x) for x in v) if isinstance(v, (list, tuple)) else _num(v)]
    parts += ["-o", str(out_dir)]
    return " ".join(shlex.quote(p) for p in parts)


def progress_bar(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="image", dynamic_ncols=True, file=sys.stderr)


def save_png(path: Path, img: torch.Tensor, root: Path) -> str:
    save_image(path, img.detach().float().cpu().clamp(0, 1), overwrite=True)
    return path.relative_to(root).as_posix()


def report_base(result: dict[str, Any], n: int, title: str):
    rep = Report(f"spikegen eval {result['task']}: {title}",
                 f"{n} items from {result['data']}; {result['seconds']:.1f} s on {'CUDA' if torch.cuda.is_available() else 'CPU'}.")
    rep.table("Summary (mean over items)", display_rows(result["summary"]), digits=4)
    if result.get("skipped"):
        rep.text(f"Skipped (no SpikeGen weights; pass --weights DIR): {', '.join(result['skipped'])}.")
    rep.text("Metrics: " + " | ".join(f"{DISPLAY.get(k, k)}: {v}" for k, v in result["metrics"].items()) + ".")
    rep.text("Protocol: " + "; ".join(f"{k} = {v}" for k, v in result["protocol"].items()) + ".")
    rep.heading("Reproduce")
    rep.code(result["command"])
    return rep


def report_figs(rep, figs: list[tuple[str, list[list[tuple[str, str]]]]]) -> None:
    """One heading per item, then one row of pictures per entry of its list."""
    for name, rows in figs:
        rep.heading(name)
        for row in rows:
            rep.figures(None, row, width=256)
