"""Small PNG line plots drawn with PIL (no plotting library needed).

Used by ``spikegen eval`` for the PSNR-vs-V_th figure of its report.

Example:
    >>> from spikegen.tasks.plots import line_plot
    >>> img = line_plot({"TFP": ([1, 2, 4], [20.0, 18.5, 16.0])}, xlabel="V_th", ylabel="PSNR (dB)")
    >>> img.size
    (640, 400)
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Mapping, Sequence

# Colour-blind-safe palette (Okabe & Ito).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering ``[lo, hi]``."""
    if not math.isfinite(lo) or not math.isfinite(hi):
        return []
    if hi - lo < 1e-9:
        lo, hi = lo - 1.0, hi + 1.0
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=10 * mag)
    ticks = [round(math.floor(lo / step) * step, 10)]
    while ticks[-1] < hi - 1e-9 * step:  # the last tick is at or above hi: every point is inside
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _fmt(v: float) -> str:
    return f"{v:g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.1e}"


def line_plot(series: Mapping[str, tuple[Sequence[float], Sequence[float]]], *, title: str = "", xlabel: str = "",
              ylabel: str = "", size: tuple[int, int] = (640, 400), xticks: Sequence[float] | None = None):
    """Draw lines with markers, one per series, and return a ``PIL.Image`` (RGB).

    Args:
        series: ``{name: (xs, ys)}``; non-finite y values are left out (a gap in the line).
        title, xlabel, ylabel: labels.
        size: ``(width, height)`` in pixels.
        xticks: x tick positions (default: the union of the series' x values).

    Returns:
        A ``PIL.Image.Image`` of ``size``.
    """
    from PIL import Image, ImageDraw, ImageFont

    W, H = size
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    left, right, top, bottom = 64, 150, 36 if title else 16, 48
    pw, ph = W - left - right, H - top - bottom
    xs_all = sorted({float(x) for xs, _ in series.values() for x in xs})
    ys_all = [float(y) for _, ys in series.values() for y in ys if y is not None and math.isfinite(float(y))]
    if xticks is None:
        xticks = xs_all
    if not xs_all:
        xs_all = [0.0, 1.0]
    x0, x1 = min(xs_all), max(xs_all)
    if x1 - x0 < 1e-12:
        x0, x1 = x0 - 1, x1 + 1
    pad = 0.05 * (x1 - x0)
    x0, x1 = x0 - pad, x1 + pad
    yt = _nice_ticks(min(ys_all), max(ys_all)) if ys_all else [0.0, 1.0]
    y0, y1 = min(yt), max(yt)
    if y1 - y0 < 1e-12:
        y0, y1 = y0 - 1, y1 + 1

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return top + (1 - (y - y0) / (y1 - y0)) * ph

    # grid, axes, ticks
    for y in yt:
        d.line([(left, py(y)), (left + pw, py(y))], fill="#e6e6e6")
        label = _fmt(y)
        d.text((left - 6 - d.textlength(label, font=font), py(y) - 5), label, fill="#333333", font=font)
    for x in xticks:
        d.line([(px(x), top + ph), (px(x), top + ph + 4)], fill="#333333")
        label = _fmt(float(x))
        d.text((px(x) - d.textlength(label, font=font) / 2, top + ph + 7), label, fill="#333333", font=font)
    d.rectangle([left, top, left + pw, top + ph], outline="#333333")
    if title:
        d.text((left + (pw - d.textlength(title, font=font)) / 2, 12), title, fill="#000000", font=font)
    if xlabel:
        d.text((left + (pw - d.textlength(xlabel, font=font)) / 2, H - 18), xlabel, fill="#000000", font=font)
    if ylabel:
        tw = int(d.textlength(ylabel, font=font)) + 4
        lab = Image.new("RGB", (tw, 14), "white")
        ImageDraw.Draw(lab).text((2, 1), ylabel, fill="#000000", font=font)
        lab = lab.rotate(90, expand=True)
        img.paste(lab, (8, int(top + (ph - lab.size[1]) / 2)))

    # lines and legend
    for k, (name, (xs, ys)) in enumerate(series.items()):
        color = PALETTE[k % len(PALETTE)]
        pts = [(px(float(x)), py(float(y))) for x, y in zip(xs, ys) if y is not None and math.isfinite(float(y))]
        if len(pts) > 1:
            d.line(pts, fill=color, width=2)
        for (u, v) in pts:
            d.ellipse([u - 3.5, v - 3.5, u + 3.5, v + 3.5], fill=color)
        ly = top + 6 + 16 * k
        lx = left + pw + 12
        d.line([(lx, ly + 5), (lx + 20, ly + 5)], fill=color, width=2)
        d.ellipse([lx + 6.5, ly + 1.5, lx + 13.5, ly + 8.5], fill=color)
        d.text((lx + 26, ly), str(name)[:20], fill="#000000", font=font)
    return img


def save_line_plot(path: str | os.PathLike, series: Mapping[str, tuple[Sequence[float], Sequence[float]]], **kwargs) -> Path:
    """:func:`line_plot` written to a PNG file (replaced atomically); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    line_plot(series, **kwargs).save(tmp)
    os.replace(tmp, path)
    return path
