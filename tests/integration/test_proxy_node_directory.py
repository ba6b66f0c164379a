"""The proxy hop's node directory: a node that auth lists is routable at once (a miss asks
auth again before refusing), and misses cannot become a flood of auth RPCs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from proto.lockwatch import LockView
from server.proxy import ssh_router
from server.proxy.ssh_router import NodeDirectory, ProxySSHRouter, RoutedNode
from tests.integration.sshd_fixtures import HOST_ID, LABELS, NODE_NAME, SSH_BIN, public_line
from tests.integration.sshd_fixtures import running_node as start_node
from tests.integration.test_proxy_ssh_locks import Hop

OTHER = RoutedNode("other-id", "other", "127.0.0.1:9", {}, seen_from="127.0.0.1")


class Auth:
    """What auth lists, and how often the proxy asked."""

    def __init__(self) -> None:
        self.nodes: list[RoutedNode] = []
        self.calls = 0
        self.gate: asyncio.Event | None = None  # when set, answers wait for it
        self.fail = False
        self.asked = asyncio.Event()

    async def list_nodes(self) -> Sequence[RoutedNode]:
        self.calls += 1
        self.asked.set()
        listed = list(self.nodes)
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise ConnectionError("auth is away")
        return listed


@pytest.fixture
async def late_hop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Hop, Auth]]:
    # No background refresh during the test: only a miss can bring the node in.
    monkeypatch.setattr(ssh_router, "REFRESH_INTERVAL", 3600.0)
    async with start_node(tmp_path) as node:
        auth = Auth()
        events: list[tuple[str, dict[str, object]]] = []
        locks = LockView(node.clock, "proxy-1")
        key, cert = node.authorities.host_credentials(node.clock.now(), ("proxy", "127.0.0.1"))
        router = ProxySSHRouter(
            host_key=key, host_cert=cert,
            user_ca_keys=[public_line(node.authorities.user_ca)],
            directory=NodeDirectory(auth.list_nodes, "test-cluster"),
            audit=lambda type, **fields: events.append((type, fields)),
            clock=node.clock, locks=locks,
        )  # fmt: skip
        await router.start("127.0.0.1", 0)
        try:
            yield Hop(node, router, locks, events), auth
        finally:
            await router.stop()


@pytest.mark.skipif(SSH_BIN is None, reason="OpenSSH client `ssh` not installed")
async def test_a_node_auth_lists_is_routable_at_once(late_hop: tuple[Hop, Auth]) -> None:
    hop, auth = late_hop
    assert auth.calls == 1  # the start: an empty cluster
    node = RoutedNode(
        HOST_ID, NODE_NAME, f"127.0.0.1:{hop.node.port}", dict(LABELS), seen_from="127.0.0.1"
    )
    auth.nodes.append(node)
    result = await hop.ssh(hop.node.certs.issue("alice"), "echo routed")
    assert (result.returncode, result.out) == (0, "routed\n"), result.stderr
    assert auth.calls == 2
    (route,) = hop.of("proxy.route")
    assert route["success"] is True and route["node_id"] == HOST_ID


@pytest.mark.skipif(SSH_BIN is None, reason="OpenSSH client `ssh` not installed")
async def test_a_name_auth_does_not_list_is_still_refused(late_hop: tuple[Hop, Auth]) -> None:
    hop, _ = late_hop
    result = await hop.ssh(hop.node.certs.issue("alice"), "true")
    assert result.returncode == 255
    assert f"no node named '{NODE_NAME}' that you can reach" in result.stderr.decode()
    (route,) = hop.of("proxy.route")  # audited once, after the refresh
    assert route["success"] is False and route["requested"] == NODE_NAME
    assert hop.node.audit.of("session.start") == []


async def test_misses_share_one_refresh() -> None:
    auth = Auth()
    directory = NodeDirectory(auth.list_nodes, "c")
    auth.nodes.append(OTHER)
    await asyncio.gather(*(directory.refresh_for_miss() for _ in range(100)))
    assert auth.calls == 1 and directory.resolve("other.c") == OTHER
    # The next burst gets the next refresh (not earlier than the gap allows), one again.
    auth.nodes.clear()
    await asyncio.gather(*(directory.refresh_for_miss() for _ in range(100)))
    assert auth.calls == 2 and directory.resolve("other") is None
    await directory.stop()


async def test_a_miss_waits_for_a_refresh_that_starts_after_it() -> None:
    # A refresh already asking auth may not see a node that registered since; a miss
    # arriving meanwhile must wait for the one after it.
    auth = Auth()
    auth.gate = asyncio.Event()
    directory = NodeDirectory(auth.list_nodes, "c")
    first = asyncio.create_task(directory.refresh_for_miss())
    await auth.asked.wait()
    auth.nodes.append(OTHER)  # registers while the first refresh is in flight
    second = asyncio.create_task(directory.refresh_for_miss())
    auth.gate.set()
    await first
    assert directory.resolve("other") is None
    await second
    assert directory.resolve("other") == OTHER and auth.calls == 2
    await directory.stop()


async def test_waiting_misses_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ssh_router, "MISS_WAITERS", 5)
    auth = Auth()
    auth.gate = asyncio.Event()
    directory = NodeDirectory(auth.list_nodes, "c")
    waiting = [asyncio.create_task(directory.refresh_for_miss()) for _ in range(8)]
    await auth.asked.wait()
    assert sum(task.done() for task in waiting) == 3  # refused at once, no wait
    auth.gate.set()
    await asyncio.gather(*waiting)
    assert auth.calls == 1
    await directory.stop()


async def test_a_failed_refresh_keeps_the_table_and_releases_the_misses() -> None:
    auth = Auth()
    auth.nodes.append(OTHER)
    directory = NodeDirectory(auth.list_nodes, "c")
    await directory.refresh()
    auth.fail = True
    await directory.refresh_for_miss()
    assert directory.resolve("other") == OTHER and auth.calls == 2
    await directory.stop()


async def test_an_older_refresh_never_replaces_a_newer_table() -> None:
    auth = Auth()
    late = auth.gate = asyncio.Event()
    directory = NodeDirectory(auth.list_nodes, "c")
    old = asyncio.create_task(directory.refresh())  # sees no node, answers late
    await auth.asked.wait()
    auth.gate = None
    auth.nodes.append(OTHER)
    await directory.refresh()
    assert directory.resolve("other") == OTHER
    late.set()
    await old
    assert directory.resolve("other") == OTHER


async def test_an_id_beats_a_name_and_a_name_beats_name_dot_cluster() -> None:
    """Records from before auth refused such names cannot take another node's key,
    whichever order auth lists them in: `mez ssh KEY` reaches the node whose id, then
    name, then name.cluster KEY is (ssh checks that node's certificate for KEY)."""
    real = RoutedNode("0f8ad6c2-61b5-4b1e-9a53-3c2f0e7d9a11", "web", "127.0.0.1:1", {})
    named_as_id = RoutedNode("a1", real.id, "127.0.0.1:2", {})
    named_as_fqdn = RoutedNode("a2", "web.c", "127.0.0.1:3", {})
    for order in ([real, named_as_id, named_as_fqdn], [named_as_fqdn, named_as_id, real]):
        auth = Auth()
        auth.nodes[:] = order
        directory = NodeDirectory(auth.list_nodes, "c")
        await directory.refresh()
        assert directory.resolve(real.id) == real
        assert directory.resolve("web.c") == named_as_fqdn  # its name, not web's NAME.CLUSTER
        assert directory.resolve("web") == real
        assert directory.resolve("a1") == named_as_id
        await directory.stop()
