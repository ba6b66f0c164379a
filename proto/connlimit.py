"""Connections counted per client address, at accept time, on every listener.

A slowloris holds connections that never finish their first phase (a TLS handshake,
an HTTP request head, an SSH login). Each listener bounds that phase in time; this
module bounds how many of them one address may hold: ``Gate`` is the protocol an
accepted socket starts with, it asks an ``AddressLimiter`` for an ``Admission`` and
either aborts the connection at once (over the cap: nothing is read, no handshake is
computed) or hands the transport to the listener's real protocol. The listener
releases the admission when the connection closes or, where only the unfinished
phase is capped (SSH, gRPC), as soon as that phase is over.

IPv6 peers are counted by their /64: one host usually holds a whole one."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
import threading
from asyncio import sslproto
from collections.abc import Callable
from typing import Any, cast

log = logging.getLogger(__name__)

REFUSAL_LOG_INTERVAL = 60.0  # seconds between warnings about refused connections
IPV6_PREFIX = 64


def address_key(host: str) -> str:
    """What one client is counted as: its IPv4 address, or its IPv6 /64."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_PREFIX), strict=False))
    return str(ip)


class Admission:
    """One accepted connection's place in its address's count; ``release`` is idempotent."""

    def __init__(self, limiter: AddressLimiter, key: str, transport: asyncio.Transport):
        self.key = key
        self.transport = transport
        self._limiter = limiter
        self._held = True
        self._deadline: asyncio.TimerHandle | None = None

    def abort_after(self, seconds: float) -> None:
        """Abort the connection unless this admission is released within ``seconds``."""
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(seconds, self.transport.abort)

    def release(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if self._held:
            self._held = False
            self._limiter._release(self)


class AddressLimiter:
    """At most ``cap`` admissions at once per client address."""

    def __init__(self, cap: int, *, what: str) -> None:
        if cap < 1:
            raise ValueError("cap must be at least 1")
        self.cap = cap
        self._what = what
        self._counts: dict[str, int] = {}
        self._live: set[Admission] = set()
        self._refused = 0
        self._last_warning: float | None = None

    def count(self, host: str) -> int:
        return self._counts.get(address_key(host), 0)

    def admit(self, transport: asyncio.BaseTransport) -> Admission | None:
        peer = transport.get_extra_info("peername")
        key = address_key(str(peer[0])) if peer else ""
        if self._counts.get(key, 0) >= self.cap:
            self._note_refusal(key)
            return None
        self._counts[key] = self._counts.get(key, 0) + 1
        admission = Admission(self, key, cast(asyncio.Transport, transport))
        self._live.add(admission)
        return admission

    def abort_all(self) -> None:
        """Abort every connection still admitted (a stopping listener's stragglers)."""
        for admission in list(self._live):
            admission.transport.abort()
            admission.release()

    def _release(self, admission: Admission) -> None:
        self._live.discard(admission)
        left = self._counts.get(admission.key, 0) - 1
        if left > 0:
            self._counts[admission.key] = left
        else:
            self._counts.pop(admission.key, None)

    def _note_refusal(self, key: str) -> None:
        # A flood must not become a flood of log lines: one warning per interval.
        self._refused += 1
        now = asyncio.get_running_loop().time()
        if self._last_warning is None or now - self._last_warning >= REFUSAL_LOG_INTERVAL:
            log.warning(
                "%s: refused %d connection(s) over the cap of %d per client address "
                "(the last from %s)", self._what, self._refused, self.cap, key or "unknown",
            )  # fmt: skip
            self._refused = 0
            self._last_warning = now


class Gate(asyncio.Protocol):
    """The first protocol of an accepted connection: admit it or abort it, then hand
    the transport to ``make(admission)``'s protocol."""

    def __init__(
        self, limiter: AddressLimiter, make: Callable[[Admission], asyncio.BaseProtocol]
    ) -> None:
        self._limiter = limiter
        self._make = make

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        admission = self._limiter.admit(transport)
        if admission is None:
            cast(asyncio.Transport, transport).abort()
            return
        protocol = self._make(admission)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        """Only refused connections end here; admitted ones belong to their protocol."""


_scratch = threading.local()
_WRAPPED = sslproto.SSLProtocolState.WRAPPED


def _state(protocol: sslproto.SSLProtocol) -> sslproto.SSLProtocolState:
    return cast(sslproto.SSLProtocolState, cast(Any, protocol)._state)  # not in the stubs


def _read_scratch(size: int) -> memoryview:
    """This thread's buffer for the ciphertext read off a socket: one per event loop."""
    view: memoryview | None = getattr(_scratch, "view", None)
    if view is None or len(view) < size:
        view = _scratch.view = memoryview(bytearray(size))
    return view


class CountedTLS(sslproto.SSLProtocol):
    """Server-side TLS in front of ``app`` (what ``create_server(ssl=...)`` builds, from
    the same asyncio class), releasing ``admission`` when the connection closes,
    whether or not the handshake finished within ``handshake_timeout``.

    asyncio gives every TLS connection its own zero-filled 256 KiB buffer to read
    ciphertext into, and keeps it for the connection's life: 256 KiB resident per node
    agent holding a stream to auth, most of auth's memory in a large fleet. The buffer
    is only scratch: the transport fills it and, in the same callback, ``buffer_updated``
    copies what was read into the connection's own ``MemoryBIO``. So one buffer per
    thread serves every connection of that thread's loop, at the same read size.

    asyncio also encrypts and sends each ``write`` at once: a gRPC answer is three
    writes (headers, message, trailers), so three TLS records and three ``send`` calls
    (a fifth of auth's CPU under IssueUserCerts load went to them). Writes made in the
    same loop iteration are sent together at its end: the same records in one ``send``."""

    def __init__(
        self,
        app: asyncio.BaseProtocol,
        context: ssl.SSLContext,
        admission: Admission,
        *,
        handshake_timeout: float,
    ) -> None:
        # No waiter: nobody awaits the handshake (its failure is the connection's end).
        waiter: Any = None
        timeout: Any = handshake_timeout  # the stubs say int; asyncio takes any number
        super().__init__(
            asyncio.get_running_loop(), app, context, waiter, server_side=True,
            ssl_handshake_timeout=timeout,
        )  # fmt: skip
        self.admission = admission
        self._ssl_buffer_view = _read_scratch(self.max_size)
        self._ssl_buffer = bytearray()  # asyncio's own buffer, freed here
        self._flush_pending = False

    def get_buffer(self, n: int) -> memoryview:
        # Filled and consumed (buffer_updated) within one callback of this thread's loop.
        self._ssl_buffer_view = _read_scratch(self.max_size)
        return self._ssl_buffer_view

    def _write_appdata(self, list_of_data: Any) -> None:
        if _state(self) is not _WRAPPED:
            super()._write_appdata(list_of_data)  # refused, or kept until the handshake
            return
        for data in list_of_data:
            self._write_backlog.append(data)
            self._write_buffer_size += len(data)
        if not self._flush_pending:
            self._flush_pending = True
            self._loop.call_soon(self._flush_writes)

    def _flush_writes(self) -> None:
        self._flush_pending = False
        if _state(self) is _WRAPPED and self._write_backlog:
            try:
                cast(Any, self)._do_write()  # asyncio's, absent from the stubs
            except Exception as exc:  # as asyncio's own write path does
                self._fatal_error(exc, "Fatal error on SSL protocol")

    def _start_shutdown(self) -> None:
        self._flush_writes()  # what was written before close() goes before close_notify
        super()._start_shutdown()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.admission.release()
        super().connection_lost(exc)
