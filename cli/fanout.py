"""`mez ssh k=v CMD`: run a command on every matching node at once, each output line
prefixed with its node."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from typing import TextIO

from cli.mez_client import NodeRef, ssh_argv
from proto.profile import Profile

MAX_PARALLEL = 32


async def _relay(stream: asyncio.StreamReader, prefix: str, out: TextIO) -> None:
    while line := await stream.readline():
        text = line.decode(errors="replace").rstrip("\n")
        print(f"[{prefix}] {text}", file=out, flush=True)


async def _one(argv: list[str], name: str, gate: asyncio.Semaphore) -> int:
    async with gate:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stderr is not None
        await asyncio.gather(
            _relay(proc.stdout, name, sys.stdout), _relay(proc.stderr, name, sys.stderr)
        )
        return await proc.wait()


def run_everywhere(
    profile: Profile, nodes: Sequence[NodeRef], login: str, flags: Sequence[str],
    command: Sequence[str],
) -> int:  # fmt: skip
    """The worst exit code of all nodes (255 if any could not be reached)."""

    async def main() -> list[int]:
        gate = asyncio.Semaphore(MAX_PARALLEL)
        return await asyncio.gather(
            *(_one(ssh_argv(profile, n, login, ["-T", *flags], command), n.name, gate)
              for n in nodes)
        )  # fmt: skip

    codes = asyncio.run(main())
    return max(codes) if codes else 0
