"""Output helpers for the CLIs: tables via rich (imported only when a table is drawn)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence


def when(ts: float) -> str:
    if not ts:
        return "-"
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    from rich.console import Console
    from rich.table import Table

    out = Table(*headers, box=None, header_style="bold", pad_edge=False)
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
