"""Named points where a test may kill this process, to prove a multi-step operation
survives a crash between any two of its steps.

``MEZITE_FAILPOINT=join.committed`` makes the process SIGKILL itself when it reaches
``failpoint("join.committed")``: no cleanup, no buffered output, exactly what a power
cut or the OOM killer does. Unset (always, outside tests) a failpoint is one dict lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "MEZITE_FAILPOINT"


def armed(name: str) -> bool:
    """Whether this run dies at ``failpoint(name)``: for a point that must first wait
    for its peer to reach a known state, so the test sees the same crash every run."""
    return os.environ.get(ENV) == name


def failpoint(name: str) -> None:
    if armed(name):
        os.kill(os.getpid(), signal.SIGKILL)
