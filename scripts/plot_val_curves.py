"""Plot validation curves (``val_curve.csv`` files of ``scripts/val_curve.py``) on one figure.

    python scripts/plot_val_curves.py -o docs/img/tiny_f4_validation.png \
        --curve "2x128 head=/work/runs/pretrain_f4_val/val_curve.csv" \
        --curve "3x256 head=/work/runs/pretrain_f4_h256_val/val_curve.csv" \
        --line "blurry input=18.19" --line "shipped f8 deblur=22.9"

Each ``--curve LABEL=CSV`` draws the gray PSNR against the step (and, with ``--rgb``, the RGB
PSNR); each ``--line LABEL=DB`` a horizontal reference over the plotted steps. Drawn with
:func:`spikegen.tasks.plots.save_line_plot` (no plotting library needed).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from spikegen.tasks.plots import save_line_plot


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--curve", action="append", default=[], help="LABEL=path/to/val_curve.csv")
    ap.add_argument("--line", action="append", default=[], help="LABEL=PSNR in dB")
    ap.add_argument("--rgb", action="store_true", help="also draw the RGB PSNR of each curve")
    ap.add_argument("--title", default="SpikeGen g=0.5, V_th=1, 6 mcmaster18 crops (gray PSNR)")
    args = ap.parse_args()
    series: dict[str, tuple[list[float], list[float]]] = {}
    steps: set[int] = set()
    for spec in args.curve:
        label, path = spec.split("=", 1)
        with open(path, newline="") as f:
            rows = sorted(csv.DictReader(f), key=lambda r: int(r["step"]))
        xs = [int(r["step"]) for r in rows]
        steps.update(xs)
        series[label] = (xs, [float(r["psnr_gray"]) for r in rows])
        if args.rgb:
            series[f"{label} RGB"] = (xs, [float(r["psnr_rgb"]) for r in rows])
    lo, hi = (min(steps), max(steps)) if steps else (0, 1)
    for spec in args.line:
        label, db = spec.split("=", 1)
        series[label] = ([lo, hi], [float(db), float(db)])
    ticks = sorted({lo, hi, *range(0, hi + 1, 1000)} - {0} | ({0} if lo == 0 else set()))
    save_line_plot(args.output, series, title=args.title, xlabel="training step", ylabel="PSNR (dB)",
                   size=(720, 420), xticks=[t for t in ticks if lo <= t <= hi])
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
