"""Connections that never finish the SSH handshake, from one address, against the
node's SSH server and the proxy's hop: capped per address while unauthenticated,
dropped after the login timeout, and a real ssh from another address still logs in."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.flood import flood, silent
from tests.integration.sshd_fixtures import SSH_BIN, running_node

pytestmark = pytest.mark.skipif(SSH_BIN is None, reason="OpenSSH ssh is not installed")
CAP = 5


async def test_node_unauthenticated_capped_and_dropped(tmp_path: Path) -> None:
    async with running_node(tmp_path, login_timeout=3, unauthenticated_per_address=CAP) as node:
        held = await asyncio.to_thread(flood, node.port, CAP + 20, silent)
        try:
            assert len(held.held) == CAP and held.refused == 20
            result = await node.ssh(node.certs.issue("alice"), "true", env=node.client_env())
            assert result.returncode == 0, result.stderr
            closed = await asyncio.to_thread(held.wait_all_closed, 60)
            assert closed == CAP
        finally:
            held.close()
