"""Self-contained HTML reports: figures side by side, tables, notes.

A report lives in a folder beside its images and refers to them by relative paths, so the
folder can be zipped, moved or served as it is. Nothing is loaded from the network.

Example:
    >>> from spikegen.report import Report
    >>> import tempfile, pathlib
    >>> rep = Report("Demo")
    >>> rep = rep.figures("Reconstructions", [("tfp.png", "TFP"), ("tfi.png", "TFI")])  # returns itself: calls chain
    >>> out = rep.write(pathlib.Path(tempfile.mkdtemp()) / "index.html")
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1400px;padding:0 1rem;color:#222}
h1{margin-bottom:.2rem} .sub{color:#666;margin-top:0}
.row{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
figure{margin:0;text-align:center} figure img{max-width:320px;image-rendering:pixelated;border:1px solid #ccc}
figcaption{font-size:.85rem;color:#444;margin-top:4px}
table{border-collapse:collapse;margin:.5rem 0} th,td{border:1px solid #ddd;padding:4px 10px;text-align:right}
th{background:#f4f4f4} td:first-child,th:first-child{text-align:left}
.note{color:#555;font-size:.9rem} code{background:#f4f4f4;padding:1px 4px}
"""


def _columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The union of the rows' keys, in first-seen order."""
    return list(dict.fromkeys(k for r in rows for k in r))


@dataclass
class Report:
    """An HTML report built from sections; ``write`` renders it to a file."""

    title: str
    subtitle: str = ""
    _parts: list[str] = field(default_factory=list)

    def heading(self, text: str) -> "Report":
        self._parts.append(f"<h2>{html.escape(text)}</h2>")
        return self

    def text(self, text: str) -> "Report":
        self._parts.append(f"<p class='note'>{html.escape(text)}</p>")
        return self

    def code(self, text: str) -> "Report":
        self._parts.append(f"<pre><code>{html.escape(text)}</code></pre>")
        return self

    def figures(self, title: str | None, items: Sequence[tuple[str, str]], *, width: int | None = None) -> "Report":
        """A row of images: ``items`` are ``(relative_path, caption)``."""
        if title:
            self.heading(title)
        style = f" style='max-width:{width}px'" if width else ""
        figs = "".join(
            f"<figure><img src='{html.escape(src, quote=True)}' alt='{html.escape(cap, quote=True)}'{style}>"
            f"<figcaption>{html.escape(cap)}</figcaption></figure>"
            for src, cap in items
        )
        self._parts.append(f"<div class='row'>{figs}</div>")
        return self

    def table(self, title: str | None, rows: Sequence[dict[str, Any]], *, digits: int = 3) -> "Report":
        """A table from a list of dicts (columns = union of keys, in first-seen order)."""
        if title:
            self.heading(title)
        cols = _columns(rows)

        def fmt(v: Any) -> str:
            if isinstance(v, float):
                return f"{v:.{digits}f}"
            return html.escape(str(v)) if v is not None else ""

        head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        body = "".join("<tr>" + "".join(f"<td>{fmt(r.get(c))}</td>" for c in cols) + "</tr>" for r in rows)
        self._parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        return self

    def render(self) -> str:
        sub = f"<p class='sub'>{html.escape(self.subtitle)}</p>" if self.subtitle else ""
        return (
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{html.escape(self.title)}</h1>{sub}{''.join(self._parts)}</body></html>\n"
        )

    def write(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(self.render(), encoding="utf-8")
        os.replace(tmp, path)
        return path


def markdown_table(rows: Sequence[dict[str, Any]], *, digits: int = 3) -> str:
    """Render a list of dicts as a GitHub markdown table."""
    cols = _columns(rows)

    def fmt(v: Any) -> str:
        return f"{v:.{digits}f}" if isinstance(v, float) else ("" if v is None else str(v))

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"
