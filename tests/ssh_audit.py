"""ssh-audit (PyPI ``ssh-audit``) against a listening SSH server, its report read into
the [fail] findings and the algorithms offered."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass

_FINDING = re.compile(r"^\((\w+)\) (.+?)\s+-- \[(\w+)\] (.*)$")
_MORE = re.compile(r"^\s+`- \[(\w+)\] (.*)$")
_ALGORITHM_TAGS = ("kex", "key", "enc", "mac")


@dataclass(frozen=True)
class Audit:
    text: str
    fails: frozenset[str]  # "(tag) algorithm: message", or the whole line
    offered: frozenset[str]  # "(tag) algorithm"


def read_audit(text: str) -> Audit:
    """ssh-audit's report (``-n``): each [fail] line with the algorithm it is about (a
    continuation line belongs to the finding above it), and the algorithms offered. A
    [fail] in a line of another shape is kept whole, so none goes unseen."""
    fails: set[str] = set()
    offered: set[str] = set()
    subject = ""
    for line in text.splitlines():
        if found := _FINDING.match(line):
            tag, name, level, message = found.groups()
            subject = f"({tag}) {name}"
            if tag in _ALGORITHM_TAGS:
                offered.add(subject)
        elif more := _MORE.match(line):
            level, message = more.groups()
        else:
            level, message = ("fail", line.strip()) if "[fail]" in line else ("", "")
        if level == "fail":
            fails.add(f"{subject}: {message}")
    return Audit(text, frozenset(fails), frozenset(offered))


def ssh_audit(host: str, port: int) -> Audit:
    done = subprocess.run(
        [sys.executable, "-m", "ssh_audit", "-n", "-p", str(port), host],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return read_audit(done.stdout)
