"""Plain-text tables for ``--dry-run``, the ``--run-now`` summary and ``status``.

Left-aligned columns two spaces apart, a dashed rule under the header, no trailing spaces, so
the output reads in a terminal and diffs cleanly in a ticket. Widths count East Asian wide
characters as two columns (domain names and messages may be Chinese).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence

EMPTY = "-"


def display_width(text: str) -> int:
    width = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def _cell(value: object) -> str:
    if value is None or value == "":
        return EMPTY
    if isinstance(value, bool):
        return "yes" if value else "no"
    return " ".join(str(value).split())  # a newline would break the row


def render_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Render ``rows`` under ``headers``. ``None`` and ``""`` show as ``-``; short rows are
    padded, long rows are an error. Ends with a newline."""
    head = [_cell(h) for h in headers]
    body: list[list[str]] = []
    for i, row in enumerate(rows):
        cells = [_cell(v) for v in row]
        if len(cells) > len(head):
            raise ValueError(f"row {i} has {len(cells)} cells for {len(head)} columns")
        body.append(cells + [EMPTY] * (len(head) - len(cells)))
    widths = [max([display_width(head[c])] + [display_width(r[c]) for r in body]) for c in range(len(head))]

    def line(cells: Sequence[str]) -> str:
        padded = [c + " " * (w - display_width(c)) for c, w in zip(cells, widths, strict=True)]
        return "  ".join(padded).rstrip()

    out = [line(head), line(["-" * w for w in widths])]
    out += [line(r) for r in body]
    return "\n".join(out) + "\n"
