"""Durations as people write them: "90s", "30m", "12h", "1h30m", "2d", or plain seconds.

One parser for the config file, resource documents and CLI flags."""

from __future__ import annotations

import json
import re

from proto.errors import BadParameter

MAX_DURATION_SECONDS = 365 * 86400
DURATION_HINT = 'use e.g. "90s", "30m", "12h", "1h30m", "2d" or a number of seconds'
_DURATION = re.compile(r"(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?")


def parse_duration_text(text: str) -> int:
    """Whole seconds in ``text`` (units in d, h, m, s order, each at most once). Zero is
    allowed; negative, empty, malformed and over-365-day values are BadParameter."""
    shown = json.dumps(text, ensure_ascii=False)
    s = text.strip().lower()
    if s.startswith("-"):
        raise BadParameter(f"invalid duration {shown}: must not be negative")
    match = _DURATION.fullmatch(s) if len(s) <= 40 else None
    if re.fullmatch(r"[0-9]{1,12}", s):
        seconds = int(s)
    elif match is not None and any(g is not None for g in match.groups()):
        d, h, m, sec = (int(g or 0) for g in match.groups())
        seconds = ((d * 24 + h) * 60 + m) * 60 + sec
    else:
        raise BadParameter(f"invalid duration {shown}", hint=DURATION_HINT)
    if seconds > MAX_DURATION_SECONDS:
        raise BadParameter(f"duration {shown} is too long: the limit is 365d")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest "1h30m"-style spelling ("30h", not "1d6h", unless whole days)."""
    if seconds != int(seconds):
        return f"{seconds:g}s"
    rest, out = int(seconds), ""
    units = (("d", 86400),) if rest and rest % 86400 == 0 else ()
    for unit, size in (*units, ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out += f"{rest // size}{unit}"
            rest %= size
    return out or "0s"
