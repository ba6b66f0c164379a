"""The addresses a node claims when it is given none: what its host certificate names,
so that clients connecting by IP address or host name verify it.

- a specific listen address (``--listen 10.0.0.5:3022``): that address;
- a wildcard one (``0.0.0.0``, ``::``): the host name and the machine's addresses, less
  loopback, link-local, and whatever auth would refuse (``proto.host_claims``).

The machine's addresses come from getifaddrs(3), called through ctypes (the standard
library has no interface enumeration): every address of every interface that is up.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import ipaddress
import logging
import socket
import sys
from collections.abc import Iterator, Sequence

from proto.addr import HostPort
from proto.host_claims import MAX_CLAIMS, canonical_host, claim_problem

log = logging.getLogger(__name__)

WILDCARDS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104
_IFF_UP = 0x1
_BSD_SOCKADDR = sys.platform != "linux"  # BSD and macOS lead with sa_len


class _Sockaddr(ctypes.Structure):
    _fields_ = [("family", ctypes.c_uint16), ("data", ctypes.c_uint8 * 14)]


class _IfAddrs(ctypes.Structure):
    pass


_IfAddrs._fields_ = [
    ("next", ctypes.POINTER(_IfAddrs)),
    ("name", ctypes.c_char_p),
    ("flags", ctypes.c_uint),
    ("addr", ctypes.POINTER(_Sockaddr)),
    ("netmask", ctypes.c_void_p),
    ("dstaddr", ctypes.c_void_p),
    ("data", ctypes.c_void_p),
]


def _family(sa: _Sockaddr) -> int:
    if _BSD_SOCKADDR:
        return int(sa.family >> 8 if sys.byteorder == "little" else sa.family & 0xFF)
    return int(sa.family)


def _ip(sa_ptr: ctypes._Pointer[_Sockaddr]) -> str | None:
    family = _family(sa_ptr.contents)
    raw = ctypes.string_at(sa_ptr, 28)
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[4:8])
    if family == socket.AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, raw[8:24])
    return None


def interface_addresses() -> list[str]:
    """Every IP address of every interface that is up, as getifaddrs(3) lists them;
    empty (and logged) where the C library has no getifaddrs."""
    path = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(path, use_errno=True)
        getifaddrs, freeifaddrs = libc.getifaddrs, libc.freeifaddrs
    except (OSError, AttributeError) as exc:
        log.warning("cannot list this machine's addresses (%s)", exc)
        return []
    head = ctypes.POINTER(_IfAddrs)()
    if getifaddrs(ctypes.byref(head)) != 0:
        log.warning("getifaddrs failed: %s", ctypes.get_errno())
        return []
    found: list[str] = []
    try:
        entry = head
        while entry:
            item = entry.contents
            if item.addr and item.flags & _IFF_UP:
                ip = _ip(item.addr)
                if ip is not None:
                    found.append(ip)
            entry = item.next
    finally:
        freeifaddrs(head)
    return list(dict.fromkeys(found))


def _dialable(ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    return not (addr.is_loopback or addr.is_link_local or addr.is_unspecified)


def _host_name() -> Iterator[str]:
    name = canonical_host(socket.gethostname())
    if name and name != "localhost":
        yield name


def claimed_hosts(
    listen_host: str, *, cluster: str, name: str, machine: Sequence[str] | None = None
) -> list[str]:
    """The hosts a node listening on ``listen_host`` claims when given no address:
    at most ``MAX_CLAIMS``, IP addresses first (the first is what it heartbeats)."""
    if listen_host not in WILDCARDS:
        candidates = [canonical_host(listen_host)]
    else:
        ips = interface_addresses() if machine is None else list(machine)
        wanted_v6 = listen_host != "0.0.0.0"  # noqa: S104 - "::" serves both families
        usable = [
            canonical_host(ip) for ip in ips
            if _dialable(ip) and (wanted_v6 or ipaddress.ip_address(ip).version == 4)
        ]  # fmt: skip
        candidates = [*usable, *_host_name()]
    hosts = []
    for host in dict.fromkeys(candidates):
        why = claim_problem(host, cluster=cluster, name=name)
        if why is None:
            hosts.append(host)
        else:
            log.warning("not claiming %s as this node's address: it %s", host, why)
    if len(hosts) > MAX_CLAIMS:
        log.warning("claiming only the first %d of this node's addresses: %s", MAX_CLAIMS,
                    ", ".join(hosts[MAX_CLAIMS:]))  # fmt: skip
    return hosts[:MAX_CLAIMS]


def claimed_addrs(hosts: Sequence[str], port: int) -> list[str]:
    return [str(HostPort(host, port)) for host in hosts]
