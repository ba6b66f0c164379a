"""Output helpers for the CLIs: tables via rich (imported only when a table is drawn)."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import typer

FormatOpt = Annotated[str, typer.Option("--format", help="Output format: text or json.")]


def when(ts: float) -> str:
    if not ts:
        return "-"
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    from rich.console import Console
    from rich.table import Table

    # Fold, never cut: an id or name cut short cannot be pasted into the next command.
    out = Table(box=None, header_style="bold", pad_edge=False)
    for header in headers:
        out.add_column(header, overflow="fold")
    for row in rows:
        out.add_row(*(str(cell) for cell in row))
    Console(soft_wrap=True).print(out)


def split_list(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def parse_labels(text: str | None) -> dict[str, str]:
    from proto.errors import BadParameter

    labels: dict[str, str] = {}
    for part in split_list(text):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise BadParameter(f"invalid label {part!r}; use key=value")
        labels[key] = value
    return labels


def show_rows(
    rows: Sequence[dict[str, Any]],
    output: str,
    headers: Sequence[str],
    cells: Callable[[dict[str, Any]], Sequence[object]],
) -> None:
    """Listings: the rows as JSON for scripts (``--format json``), else a table."""
    if output == "json":
        import json

        print(json.dumps(list(rows), indent=2, sort_keys=True))
        return
    table(headers, [cells(row) for row in rows])
