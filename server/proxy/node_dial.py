"""Where the proxy's SSH hop connects for a node: the one rule, so that a joined node
cannot choose it (a node that claimed ``127.0.0.1:5432`` would otherwise have the proxy
connect to a database beside it: a server-side request forgery).

A node claims an address in its heartbeats; auth records the IP the heartbeats came
from. By default the hop dials the claimed *port* on that IP: the machine the node runs
on, which the node could reach anyway. The claimed address itself is dialled only when
it is an IP literal inside one of the operator's ``proxy.node_dial_allow`` networks (for
nodes behind NAT or a load balancer, whose claimed address differs from the one auth
sees). Names are never resolved here: the allowlist admits addresses, not names.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from proto.addr import HostPort
from proto.errors import BadParameter

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class NodeDialPolicy:
    def __init__(self, allow: Sequence[Network] = ()) -> None:
        self._allow = tuple(allow)

    def admits(self, host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(ip in net for net in self._allow)

    def target(self, claimed: str, seen_from: str) -> HostPort | None:
        """The address to dial for a node claiming ``claimed`` (HOST:PORT) whose
        heartbeats came from ``seen_from``; None when there is none it may dial."""
        try:
            addr = HostPort.parse(claimed)
        except BadParameter:
            return None
        if addr.port == 0:
            return None
        if self.admits(addr.host):
            return addr
        try:
            seen = ipaddress.ip_address(seen_from)
        except ValueError:
            return None  # auth did not say where it saw the node: nowhere to go
        return HostPort(str(seen), addr.port)
