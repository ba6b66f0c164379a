"""A real proxy SSH hop (ProxySSHRouter) on 127.0.0.1:0 in front of a running node,
with a host certificate from the node's host CA and a recording audit sink."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from proto.lockwatch import LockView
from server.proxy.ssh_router import NodeDirectory, ProxySSHRouter, RoutedNode
from tests.integration.sshd_fixtures import HOST_ID, LABELS, NODE_NAME, RunningNode, public_line

HOP_PRINCIPALS = ("proxy", "127.0.0.1")


@dataclass
class RunningHop:
    router: ProxySSHRouter
    locks: LockView
    events: list[tuple[str, dict[str, object]]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.router.port

    def of(self, type: str) -> list[dict[str, object]]:
        return [fields for t, fields in self.events if t == type]


@asynccontextmanager
async def running_hop(node: RunningNode) -> AsyncIterator[RunningHop]:
    routed = RoutedNode(
        HOST_ID, NODE_NAME, f"127.0.0.1:{node.port}", dict(LABELS), seen_from="127.0.0.1"
    )

    async def list_nodes() -> Sequence[RoutedNode]:
        return [routed]

    events: list[tuple[str, dict[str, object]]] = []
    locks = LockView(node.clock, "proxy-1")
    key, cert = node.authorities.host_credentials(node.clock.now(), HOP_PRINCIPALS)
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
        yield RunningHop(router, locks, events)
    finally:
        await router.stop()
