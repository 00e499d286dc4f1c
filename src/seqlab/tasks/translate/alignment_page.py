"""A translation's alignment as one self-contained HTML page: no script, font or style sheet is
fetched from anywhere, so the file opens offline and can be mailed around.

Rows are output tokens, columns source tokens; each cell is shaded by its attention weight and
shows it on hover (its `title`). Several sentences can share one page.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from seqlab.files import write_text

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.3em; } h2 { font-size: 1.05em; margin-top: 2em; }
.pair { margin: .3em 0; } .pair b { display: inline-block; width: 6em; color: #666; font-weight: normal; }
table { border-collapse: collapse; margin-top: .8em; }
th { font-weight: normal; font-family: ui-monospace, monospace; padding: 2px 6px; white-space: nowrap; }
thead th { writing-mode: vertical-rl; transform: rotate(180deg); text-align: left; vertical-align: bottom; }
tbody th { text-align: right; }
td { width: 1.9em; height: 1.9em; text-align: center; font-size: .7em; border: 1px solid #fff; }
td:hover { outline: 2px solid #d62728; }
.note { color: #666; font-size: .85em; }
"""


def _cell(weight: float) -> str:
    # viridis-like ramp from pale to dark blue; the number is shown only for weights worth reading
    shade = max(0.0, min(1.0, weight))
    background = f"rgba(31, 60, 136, {0.08 + 0.92 * shade:.3f})"
    color = "#fff" if shade > 0.45 else "#222"
    label = f"{weight:.2f}".lstrip("0") if weight >= 0.1 else ""
    return f'<td style="background:{background};color:{color}" title="{weight:.4f}">{label}</td>'


def alignment_table(source_tokens: Sequence[str], target_tokens: Sequence[str], weights: Sequence[Sequence[float]]) -> str:
    """One (target × source) table as an HTML fragment."""
    head = "".join(f"<th>{html.escape(t)}</th>" for t in source_tokens)
    body = "".join(
        f"<tr><th>{html.escape(target)}</th>{''.join(_cell(float(w)) for w in row)}</tr>"
        for target, row in zip(target_tokens, weights)
    )
    return f"<table><thead><tr><th></th>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_alignment_page(path: str | Path, items: Sequence[dict], title: str = "alignments") -> Path:
    """Write the page; each item has "source", "translation", "source_tokens", "target_tokens"
    and "attention" (target × source weights, rows summing to 1). The file is written through a
    temporary name, then renamed."""
    sections = []
    for number, item in enumerate(items, 1):
        sections.append(
            f"<h2>{number}.</h2>"
            f'<div class="pair"><b>source</b>{html.escape(item["source"])}</div>'
            f'<div class="pair"><b>translation</b>{html.escape(item["translation"])}</div>'
            + alignment_table(item["source_tokens"], item["target_tokens"], item["attention"])
        )
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        '<p class="note">Rows: output tokens; columns: source tokens. A cell is the attention weight of that output '
        "token on that source token (hover for its value); every row sums to 1. ▁ marks a token that starts a word.</p>"
        + "".join(sections)
        + "</body></html>\n"
    )
    return write_text(path, page)
