"""Locks at the proxy's SSH hop, on their own: a real ProxySSHRouter in front of a real
node SSH server, OpenSSH's ssh going through it with ProxyJump. Only the proxy's lock
view is given locks here, so what is refused is refused by the hop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from proto.locks import Lock, LockSet, LockTarget
from proto.lockwatch import LockView
from server.proxy.ssh_router import NodeDirectory, ProxySSHRouter, RoutedNode
from tests.integration.sshd_fixtures import (
    HOST_ID,
    LABELS,
    NODE_NAME,
    SSH_BIN,
    RunningNode,
    SSHResult,
    UserCert,
    public_line,
    run,
    running_node,
)

pytestmark = pytest.mark.skipif(SSH_BIN is None, reason="OpenSSH client `ssh` not installed")


@dataclass
class Hop:
    node: RunningNode
    router: ProxySSHRouter
    locks: LockView
    events: list[tuple[str, dict[str, object]]]

    def config(self, cert: UserCert) -> Path:
        path = self.node.client_dir / f"hop-{cert.key_path.stem}.conf"
        identity = (
            f"    IdentityFile {cert.key_path}\n    CertificateFile {cert.cert_path}\n"
            f"    IdentitiesOnly yes\n    UserKnownHostsFile {self.node.known_hosts}\n"
            "    GlobalKnownHostsFile /dev/null\n    StrictHostKeyChecking yes\n"
            "    BatchMode yes\n    ConnectTimeout 10\n"
        )
        path.write_text(
            f"Host hop\n    HostName 127.0.0.1\n    Port {self.router.port}\n"
            f"    User alice\n    HostKeyAlias proxy\n{identity}"
            f"Host {NODE_NAME}\n    ProxyJump hop\n{identity}"
        )
        return path

    def argv(self, cert: UserCert, *command: str) -> list[str]:
        return ["-F", str(self.config(cert)), f"alice@{NODE_NAME}", *command]

    async def ssh(self, cert: UserCert, *command: str) -> SSHResult:
        assert SSH_BIN is not None
        return await run(SSH_BIN, *self.argv(cert, *command))

    def impose(self, *locks: Lock) -> None:
        self.locks.update(LockSet(tuple(locks)))

    def of(self, type: str) -> list[dict[str, object]]:
        return [fields for t, fields in self.events if t == type]


@pytest.fixture
async def hop(tmp_path: Path) -> AsyncIterator[Hop]:
    async with running_node(tmp_path) as node:
        routed = RoutedNode(
            HOST_ID, NODE_NAME, f"127.0.0.1:{node.port}", dict(LABELS), seen_from="127.0.0.1"
        )

        async def list_nodes() -> Sequence[RoutedNode]:
            return [routed]

        events: list[tuple[str, dict[str, object]]] = []
        locks = LockView(node.clock, "proxy-1")
        key, cert = node.authorities.host_credentials(node.clock.now(), ("proxy", "127.0.0.1"))
        router = ProxySSHRouter(
            host_key=key,
            host_cert=cert,
            user_ca_keys=[public_line(node.authorities.user_ca)],
            directory=NodeDirectory(list_nodes, "test-cluster"),
            audit=lambda type, **fields: events.append((type, fields)),
            clock=node.clock,
            locks=locks,
        )
        await router.start("127.0.0.1", 0)
        try:
            yield Hop(node, router, locks, events)
        finally:
            await router.stop()


def a_lock(**target: str) -> Lock:
    return Lock("l1", LockTarget(**target), "hop test", time.time(), "admin")


async def test_the_hop_routes_when_nothing_is_locked(hop: Hop) -> None:
    result = await hop.ssh(hop.node.certs.issue("alice"), "echo through")
    assert (result.returncode, result.out) == (0, "through\n"), result.stderr


@pytest.mark.parametrize(
    "target",
    [{"user": "alice@example.com"}, {"role": "access"}],
    ids=["user", "role"],
)
async def test_the_hop_refuses_a_locked_user_and_says_why(hop: Hop, target: dict[str, str]) -> None:
    hop.impose(a_lock(**target))
    result = await hop.ssh(hop.node.certs.issue("alice"), "true")
    assert result.returncode == 255
    assert "mezite proxy: access denied: locked by admin" in result.stderr.decode()
    assert any("locked" in str(f["reason"]) for f in hop.of("auth.failed"))
    assert hop.node.audit.of("session.start") == []  # the node never saw it


async def test_the_hop_opens_no_route_to_a_locked_node(hop: Hop) -> None:
    hop.impose(a_lock(node=HOST_ID))
    result = await hop.ssh(hop.node.certs.issue("alice"), "true")
    assert result.returncode == 255
    assert "locked by admin" in result.stderr.decode()
    (route,) = hop.of("proxy.route")
    assert route["success"] is False and route["node_id"] == HOST_ID
    assert hop.node.audit.of("session.start") == []


@pytest.mark.parametrize(
    "target", [{"user": "alice@example.com"}, {"node": HOST_ID}], ids=["user", "node"]
)
async def test_a_new_lock_ends_a_live_hop(hop: Hop, target: dict[str, str]) -> None:
    assert SSH_BIN is not None
    proc = await asyncio.create_subprocess_exec(
        SSH_BIN, *hop.argv(hop.node.certs.issue("live"), "echo up; sleep 60"),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    assert b"up" in await asyncio.wait_for(proc.stdout.readline(), 15)
    hop.impose(a_lock(**target))
    await asyncio.wait_for(proc.communicate(), 5)
    assert proc.returncode == 255
    (ended,) = hop.of("session.terminated")
    assert "locked by admin" in str(ended["reason"])
