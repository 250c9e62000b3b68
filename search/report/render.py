"""A report as a list of blocks, written as Markdown and as one self-contained HTML file
(inline CSS, figures as base64 data URIs)."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd


@dataclass
class Block:
    """One piece of a report: a heading (``h1``-``h3``), ``p``, ``list``, ``table`` or ``figure``."""

    kind: str
    text: str = ""
    items: list[str] = field(default_factory=list)
    table: pd.DataFrame | None = None
    path: Path | None = None


# -- Markdown -------------------------------------------------------------------------


def _md_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub pipe table of a frame of display strings."""
    head = "| " + " | ".join(_md_cell(c) for c in df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = [
        "| " + " | ".join(_md_cell(v) for v in row) + " |" for row in df.itertuples(index=False)
    ]
    return "\n".join([head, rule, *body])


def to_markdown(blocks: list[Block], root: Path) -> str:
    """Markdown with figures linked relative to ``root`` (the report's folder)."""
    out: list[str] = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            out.append("#" * int(b.kind[1]) + " " + b.text)
        elif b.kind == "p":
            out.append(b.text)
        elif b.kind == "list":
            out.append("\n".join(f"- {item}" for item in b.items))
        elif b.kind == "table" and b.table is not None:
            out.append((f"*{b.text}*\n\n" if b.text else "") + markdown_table(b.table))
        elif b.kind == "figure" and b.path is not None:
            out.append(f"![{b.text}]({b.path.relative_to(root).as_posix()})")
    return "\n\n".join(out) + "\n"


# -- HTML -----------------------------------------------------------------------------

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1500px; padding: 0 1em; color: #1b1b1b; line-height: 1.45; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { border-bottom: 1px solid #bbb; margin-top: 2em; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; white-space: nowrap; }
th { background: #eef1f5; white-space: normal; vertical-align: bottom; }
td:first-child, th:first-child { text-align: left; }
tr:nth-child(even) td { background: #fafafa; }
.caption { font-style: italic; color: #444; margin-bottom: .2em; }
figure { margin: .6em 0 1.4em; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 13px; color: #555; }
.tablewrap { overflow-x: auto; }
"""


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def to_html(blocks: list[Block], title: str) -> str:
    """One HTML page with everything inline."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
    ]
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            out.append(f"<{b.kind}>{html.escape(b.text)}</{b.kind}>")
        elif b.kind == "p":
            out.append(f"<p>{html.escape(b.text)}</p>")
        elif b.kind == "list":
            out.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in b.items) + "</ul>")
        elif b.kind == "table" and b.table is not None:
            if b.text:
                out.append(f'<p class="caption">{html.escape(b.text)}</p>')
            table = b.table.to_html(index=False, escape=True, border=0, na_rep="")
            out.append(f'<div class="tablewrap">{table}</div>')
        elif b.kind == "figure" and b.path is not None:
            out.append(
                f'<figure><img src="{_data_uri(b.path)}" alt="{html.escape(b.text)}">'
                f"<figcaption>{html.escape(b.text)}</figcaption></figure>"
            )
    out.append("</body></html>")
    return "\n".join(out) + "\n"
