"""Network addresses as people type them: ``host:port``, ``[v6]:port``, ``:port``, ``host``."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

from proto.errors import BadParameter, ConnectionProblem

ANY_HOST = "0.0.0.0"  # noqa: S104 (":port" means every interface)


def _show(value: object) -> str:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else repr(value)


@dataclass(frozen=True, slots=True)
class HostPort:
    """A host (name or IP literal, IPv6 without brackets) and a port (0 = any free port)."""

    host: str
    port: int

    def __post_init__(self) -> None:
        if isinstance(self.port, bool) or not isinstance(self.port, int):
            raise BadParameter(f"port must be an integer, got {self.port!r}")
        if not 0 <= self.port <= 65535:
            raise BadParameter(f"port {self.port} is out of range 0..65535")
        _check_host(self.host)

    @classmethod
    def parse(cls, text: str, default_port: int | None = None) -> HostPort:
        """Parse ``host:port``, ``[v6]:port``, ``:port`` (all interfaces, 0.0.0.0) or a
        bare ``host`` / IPv6 literal, which takes ``default_port`` (required if None)."""
        s = text.strip()
        port_text: str | None = None
        if not s:
            raise BadParameter("empty address", hint='use "host:port"')
        if s.startswith("["):
            end = s.find("]")
            if end < 0:
                raise _bad_address(text, 'missing "]"')
            host, rest = s[1:end], s[end + 1 :]
            if not is_ipv6(host):
                raise _bad_address(text, f'"{host}" in brackets is not an IPv6 address')
            if rest.startswith(":"):
                port_text = rest[1:]
            elif rest:
                raise _bad_address(text, 'expected ":port" after "]"')
        elif s.count(":") > 1:
            if not is_ipv6(s):
                raise _bad_address(text, "not host:port", hint='write IPv6 as "[addr]:port"')
            host = s
        elif ":" in s:
            host, port_text = s.split(":", 1)
            host = host or ANY_HOST  # ":port" means every interface
        else:
            host = s
        if port_text is None:
            if default_port is None:
                raise _bad_address(text, "missing port", hint='use "host:port"')
            port = default_port
        elif re.fullmatch(r"[0-9]{1,5}", port_text):
            port = int(port_text)
        else:
            raise _bad_address(text, f'port "{port_text}" is not a number 0..65535')
        try:
            return cls(host, port)
        except BadParameter as err:
            raise _bad_address(text, err.message) from None

    def __str__(self) -> str:
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


@contextlib.contextmanager
def listen_errors(addr: HostPort | str) -> Iterator[None]:
    """A listener that cannot bind (a port in use, an address not ours) as one clear
    error naming the listener's address, for every listener alike."""
    import errno
    import socket

    try:
        yield
    except OSError as exc:
        if isinstance(exc, socket.gaierror):
            hint = "the host name does not resolve here; listen on an IP address"
        elif exc.errno == errno.EADDRINUSE:
            hint = "another process holds the port; stop it or choose another address"
        elif exc.errno == errno.EADDRNOTAVAIL:
            hint = "that address is not one of this machine's; listen on one that is"
        elif exc.errno == errno.EACCES:
            hint = "ports below 1024 need root (or CAP_NET_BIND_SERVICE); choose another"
        else:
            hint = "choose another address"
        raise ConnectionProblem(
            f"cannot listen on {addr}: {exc.strerror or exc}", hint=hint
        ) from exc


def _bad_address(text: str, why: str, *, hint: str | None = None) -> BadParameter:
    return BadParameter(f"invalid address {_show(text)}: {why}", hint=hint)


def is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


_DNS_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")


def is_dns_name(text: str) -> bool:
    name = text.lower().removesuffix(".")
    return 0 < len(name) <= 253 and all(_DNS_LABEL.fullmatch(p) for p in name.split("."))


def _check_host(host: object) -> None:
    if not isinstance(host, str) or not host:
        raise BadParameter("host must be a non-empty string")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not is_dns_name(host):
            raise BadParameter(f"{_show(host)} is not a host name or IP address") from None


def parse_addr_list(text: str, default_port: int | None = None) -> list[HostPort]:
    """Several addresses as one option value: ``a:3025,b:3025`` (the flag repeated joins
    its values with commas). An empty item or a bad one is refused, naming it."""
    items = text.split(",")
    if not text.strip():
        raise BadParameter("empty address list", hint='use "host:port[,host:port...]"')
    found: list[HostPort] = []
    for number, item in enumerate(items, 1):
        if not item.strip():
            raise BadParameter(
                f"invalid address list {_show(text)}: item {number} is empty",
                hint='separate addresses with single commas: "a:3025,b:3025"',
            )
        parsed = HostPort.parse(item, default_port)
        if parsed not in found:
            found.append(parsed)
    return found
