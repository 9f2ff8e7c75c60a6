"""Presentation of a metrics document: a rich table on the console, and Markdown."""

from __future__ import annotations

import sys
from typing import Any


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    ax = abs(x)
    if ax != 0 and (ax >= 1e5 or ax < 1e-3):
        return f"{x:.3e}"
    return f"{x:.4g}" if ax < 100 else f"{x:.1f}"


def _cell(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("value") is None:
        return "-"
    ci = entry.get("ci95")
    text = _fmt(entry["value"])
    return f"{text} [{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else text


def table_rows(doc: dict) -> list[list[str]]:
    """One row per metric: name, value [CI], real-vs-real [CI], n (generated / real), better."""
    rows = []
    for name, e in doc["metrics"].items():
        rvr = e.get("real_vs_real")
        n = f"{e.get('n', 0)} / {e.get('n_real', 0)}"
        rows.append([name, _cell(e), _cell(rvr), n, str(e.get("better", ""))])
    return rows


HEADER = ["metric", "value [95% CI]", "real vs real [95% CI]", "n gen / real", "better"]


def print_table(doc: dict, console: Any = None) -> None:
    """Print the metrics as a rich table (to stdout by default)."""
    from rich.console import Console
    from rich.table import Table

    if console is None:  # wide enough for one line per metric, also when piped (rich defaults to 80)
        console = Console(width=None if sys.stdout.isatty() else 120)
    fake = doc.get("fake") or {}
    title = f"{fake.get('source') or 'real-vs-real baseline'} vs {doc['real']['source']}"
    table = Table(title=title, title_justify="left")
    for i, h in enumerate(HEADER):
        table.add_column(h, justify="left" if i in (0, 4) else "right", no_wrap=True)
    for row in table_rows(doc):
        table.add_row(*row)
    console.print(table)


def markdown_table(doc: dict) -> str:
    """The same table as GitHub Markdown."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join("---" for _ in HEADER) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(doc)]
    return "\n".join(lines) + "\n"
