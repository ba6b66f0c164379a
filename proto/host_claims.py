"""What a node may claim as its addresses: the hosts its SSH host certificate names.

A host certificate is what every client checks a node by (``@cert-authority`` lines
trust the host CA for any name), so a name in it is a promise from the CA. A node may
name IP literals and DNS names, a bounded number of them, but nothing that names
another agent: not the proxy's name, not an agent id, not another node's
``name.cluster``.

One rule for both sides: auth refuses a request whose claims break it
(``parse_claims``), and a node leaves out the addresses it found on its own that auth
would refuse (``claim_problem``), so a renewal never fails on them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from proto.addr import HostPort
from proto.errors import BadParameter

MAX_CLAIMS = 16
MAX_ADDR_CHARS = 262  # a 253-character name, ":" and a port, or a bracketed IPv6 literal
PROXY_PRINCIPAL = "proxy"  # the name `mez` checks the proxy's host certificate by
_AGENT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|local-.*")


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def canonical_host(host: str) -> str:
    """The form clients compare certificate principals with: IP literals as Python
    prints them (``::1``), names lower-cased without a trailing dot."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower().removesuffix(".")


def _ip_problem(host: str) -> str | None:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if "%" in host:
        return "is a scoped IPv6 address"
    if ip.is_unspecified or ip.is_multicast:
        return "is not an address a client connects to"
    return None


def claim_problem(host: str, *, cluster: str, name: str) -> str | None:
    """Why node ``name`` of ``cluster`` may not claim ``host`` (canonical), or None."""
    if is_ip(host):
        return _ip_problem(host)
    if host == PROXY_PRINCIPAL:
        return "is the proxy's name"
    if _AGENT_ID.fullmatch(host):
        return "has the form of an agent id"
    if (host == cluster or host.endswith("." + cluster)) and host != f"{name}.{cluster}":
        return f"is in the cluster's own names (only {name}.{cluster} is this node's)"
    return None


def name_problem(name: str, *, cluster: str) -> str | None:
    """Why a node may not be called ``name``, or None. A node's name, ``name.cluster``
    and id are principals of its host certificate and the keys the proxy routes by (and
    `mez ssh NAME` checks the node's certificate for NAME), so no name may be another
    agent's key: not the proxy's name, not an agent id's form, not in the cluster's own
    names (``web.CLUSTER`` is node ``web``'s), not an IP literal (which a node claims)."""
    if name == PROXY_PRINCIPAL:
        return "is the proxy's name"
    if _AGENT_ID.fullmatch(name):
        return "has the form of an agent id"
    if is_ip(name):
        return "is an IP address"
    if name == cluster or name.endswith("." + cluster):
        return f"ends in the cluster's name ({cluster})"
    return None


def parse_claims(
    addrs: Sequence[str], *, cluster: str, name: str, principals: bool = True
) -> list[str]:
    """``addrs`` (HOST:PORT) checked and in canonical form, duplicates dropped. With
    ``principals`` (a node's certificate names) the hosts must also pass
    ``claim_problem``. One BadParameter names the first bad address."""
    if len(addrs) > MAX_CLAIMS:
        raise BadParameter(f"at most {MAX_CLAIMS} advertised addresses, got {len(addrs)}")
    found: list[str] = []
    for addr in addrs:
        shown = repr(addr[:80])
        if len(addr) > MAX_ADDR_CHARS:
            raise BadParameter(f"advertised address {shown}... is too long")
        try:
            parsed = HostPort.parse(addr)
        except BadParameter as err:
            raise BadParameter(
                f"invalid advertised address {shown}: {err.message}",
                hint="use HOST:PORT with an IP address or a DNS name",
            ) from None
        if parsed.port == 0 or addr != addr.strip():
            raise BadParameter(f"invalid advertised address {shown}; use HOST:PORT")
        host = canonical_host(parsed.host)
        why = claim_problem(host, cluster=cluster, name=name) if principals else _ip_problem(host)
        if why is not None:
            raise BadParameter(f"advertised address {shown} {why}")
        found.append(str(HostPort(host, parsed.port)))
    return list(dict.fromkeys(found))
