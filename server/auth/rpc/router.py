"""Turns a service object into grpclib's method mapping, with the guard in front of every
method and the error vocabulary behind it.

Handlers are plain coroutines named after the RPC in snake case:
- unary: ``async def ping(self, request, ctx) -> response``
- streaming: ``async def heartbeat(self, stream, ctx) -> None`` (reads with ``ctx.recv``)
An RPC of the contract with no handler answers UNIMPLEMENTED, after authentication, so
even unimplemented methods are default-deny.
"""

from __future__ import annotations

import binascii
import logging
import re
import secrets
import ssl
import struct
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpclib.const
import grpclib.server
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError, Message
from grpclib.exceptions import GRPCError
from grpclib.metadata import decode_bin_value

from proto.connlimit import AddressLimiter, Admission, CountedTLS, Gate
from proto.errors import BadParameter, LimitExceeded, MeziteError, NotImplementedYet
from server.auth.rpc.guard import Guard, PeerCertificate, Principal

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
HANDSHAKE_TIMEOUT = 10.0  # seconds from accept to the first call's headers
HANDSHAKES_PER_ADDRESS = 64


@dataclass(frozen=True)
class CallContext:
    method: str
    principal: Principal
    peer_addr: str
    request_id: str
    stream: grpclib.server.Stream[Any, Any]

    async def recv(self) -> Any:
        """Next request message of a client stream, or None at its end; size-bounded."""
        return await bounded_recv(self.stream)

    async def send(self, message: Message) -> None:
        await self.stream.send_message(message)


def snake_case(name: str) -> str:
    """GetClusterCAs -> get_cluster_cas, RegisterUsingIAMMethod -> register_using_iam_method."""
    words = re.findall(r"[A-Z]+s(?![a-z])|[A-Z]+(?![a-z])|[A-Z][a-z0-9]*|[a-z0-9]+", name)
    return "_".join(word.lower() for word in words)


async def bounded_recv(stream: grpclib.server.Stream[Any, Any]) -> Any:
    """grpclib's receive, with a size cap checked before the body is buffered.

    grpclib reads a whole message of whatever length its 5-byte prefix claims; this reads
    the prefix first and refuses anything over MAX_MESSAGE_BYTES. It reaches into the
    stream's private parts (pinned grpclib 0.4.x), which a test covers end to end."""
    raw = stream._stream
    meta = await raw.recv_data(5)
    if not meta:
        return None
    compressed, length = struct.unpack(">?I", meta)
    if compressed:
        raise BadParameter("compressed messages are not accepted")
    if length > MAX_MESSAGE_BYTES:
        raise LimitExceeded(f"message of {length} bytes exceeds the {MAX_MESSAGE_BYTES} limit")
    body = await raw.recv_data(length)
    try:
        message = stream._codec.decode(body, stream._recv_type)
    except DecodeError as exc:
        raise BadParameter("malformed request message") from exc
    (message,) = await stream._dispatch.recv_message(message)
    return message


def _metadata(stream: grpclib.server.Stream[Any, Any]) -> dict[str, list[str | bytes]]:
    """Every value of every key: grpclib's MultiDict.get would hide duplicates."""
    md = stream.metadata
    if md is None:
        return {}
    return {key: list(md.getall(key)) for key in set(md.keys())}


def _peer(stream: grpclib.server.Stream[Any, Any]) -> tuple[str, PeerCertificate | None]:
    addr = stream.peer.addr()
    peer_addr = str(addr[0]) if addr else ""
    return peer_addr, PeerCertificate.from_ssl_dict(stream.peer.cert())


Impl = Callable[..., Awaitable[Any]]
# Called with (method, peer address, error) when the guard refuses a call.
DenialHook = Callable[[str, str, MeziteError], None]
# Called with (method name, status name, seconds) after every call.
TimingHook = Callable[[str, str, float], None]


def _require(impl: Impl | None, method: str) -> Impl:
    if impl is None:
        raise NotImplementedYet(f"{method.rsplit('/', 1)[-1]} is not implemented yet")
    return impl


def _handler(
    method: str,
    impl: Impl | None,
    unary: bool,
    guard: Guard,
    on_denied: DenialHook | None,
    on_timing: TimingHook | None = None,
) -> Callable[[grpclib.server.Stream[Any, Any]], Awaitable[None]]:
    name = method.rsplit("/", 1)[-1]

    async def handle(stream: grpclib.server.Stream[Any, Any]) -> None:
        started = time.perf_counter()
        status = "OK"
        try:
            await _serve(stream)
        except GRPCError as err:
            status = err.status.name
            raise
        finally:
            if on_timing is not None:
                on_timing(name, status, time.perf_counter() - started)

    async def _serve(stream: grpclib.server.Stream[Any, Any]) -> None:
        request_id = secrets.token_hex(8)
        peer_addr, cert = _peer(stream)
        try:
            try:
                principal = await guard.authenticate(method, _metadata(stream), cert, peer_addr)
            except MeziteError as err:
                if on_denied is not None:
                    on_denied(method, peer_addr, err)
                raise
            ctx = CallContext(method, principal, peer_addr, request_id, stream)
            if unary:
                request = await bounded_recv(stream)
                if request is None:
                    raise BadParameter("missing request message")
                await stream.send_message(await _require(impl, method)(request, ctx))
            else:
                await _require(impl, method)(stream, ctx)
        except GRPCError:
            raise
        except MeziteError as err:
            log.info("%s from %s: %s: %s", method, peer_addr, type(err).__name__, err.message)
            raise GRPCError(grpclib.const.Status[err.grpc_status], err.message) from err
        except Exception as exc:
            log.exception("%s failed (request id %s)", method, request_id)
            raise GRPCError(
                grpclib.const.Status.INTERNAL, f"internal error (request id {request_id})"
            ) from exc

    return handle


_CARDINALITY = {
    (False, False): grpclib.const.Cardinality.UNARY_UNARY,
    (False, True): grpclib.const.Cardinality.UNARY_STREAM,
    (True, False): grpclib.const.Cardinality.STREAM_UNARY,
    (True, True): grpclib.const.Cardinality.STREAM_STREAM,
}


def _find_impl(services: Sequence[object], name: str) -> Impl | None:
    found = [impl for svc in services if (impl := getattr(svc, name, None)) is not None]
    if len(found) > 1:
        raise RuntimeError(f"{name} is implemented by more than one service object")
    return found[0] if found else None


def build_mapping(
    services: Sequence[object],
    descriptor: ServiceDescriptor,
    message_types: Any,
    guard: Guard,
    on_denied: DenialHook | None = None,
    on_timing: TimingHook | None = None,
) -> dict[str, grpclib.const.Handler]:
    """grpclib's ``__mapping__`` for every method of ``descriptor``, each implemented by
    exactly one of ``services`` (or by none: UNIMPLEMENTED)."""
    mapping: dict[str, grpclib.const.Handler] = {}
    for method in descriptor.methods:
        path = f"/{descriptor.full_name}/{method.name}"
        impl = _find_impl(services, snake_case(method.name))
        cardinality = _CARDINALITY[(method.client_streaming, method.server_streaming)]
        mapping[path] = grpclib.const.Handler(
            _handler(
                path,
                impl,
                not (method.client_streaming or method.server_streaming),
                guard,
                on_denied,
                on_timing,
            ),
            cardinality,
            getattr(message_types, method.input_type.name),
            getattr(message_types, method.output_type.name),
        )
    return mapping


Headers = list[tuple[str, str]]


def decode_headers(raw: Sequence[tuple[bytes, bytes]]) -> Headers:
    """Request headers as grpclib expects them, without ever failing on their bytes.

    gRPC headers are ASCII; grpclib has h2 decode them as ASCII, and one byte outside it
    raised from the connection's data handler: a traceback, and every call on that
    connection reset. Here a byte outside ASCII becomes U+FFFD, which no name, path or
    credential accepts, so the call is refused the ordinary way (a bad ``authorization``
    is UNAUTHENTICATED). A ``-bin`` value that is not base64 is dropped: grpclib's
    decoder raises on it, and no ``-bin`` header means anything to this service."""
    headers: Headers = []
    for name_bytes, value_bytes in raw:
        name = name_bytes.decode("ascii", "replace")
        value = value_bytes.decode("ascii", "replace")
        if name.endswith("-bin") and not _decodes_as_bin(value):
            continue
        headers.append((name, value))
    return headers


def _decodes_as_bin(value: str) -> bool:
    try:
        decode_bin_value(value.encode("ascii"))
    except (UnicodeEncodeError, binascii.Error):
        return False
    return True


class Server(grpclib.server.Server):
    """grpclib's server, closing its accepted connections when it closes, decoding
    request headers itself (``decode_headers``), and bounding what a connection may do
    before its first call: the TLS handshake is done here (start with ``ssl=None``),
    behind a per-address gate (proto.connlimit), and a connection with no call's
    headers ``handshake_timeout`` seconds after it was accepted is aborted. Only such
    unfinished connections count against the address: nodes behind one NAT keep their
    streams.

    grpclib's ``close`` cancels the handlers but leaves every accepted connection open
    (asyncio's ``Server.close`` does not close them before Python 3.13), so a node's
    long-lived stream would keep its TLS transport until the garbage collector found
    it. The protocols are tracked here, weakly, and their transports aborted: a TLS
    close waits for the peer's close_notify, which a stopping server cannot wait for."""

    def __init__(
        self,
        handlers: Sequence[Any],
        tls: ssl.SSLContext,
        *,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
        handshakes_per_address: int = HANDSHAKES_PER_ADDRESS,
    ) -> None:
        super().__init__(handlers)
        self._protocols: weakref.WeakSet[Any] = weakref.WeakSet()
        self._h2_config.header_encoding = None  # bytes: decode_headers decodes them
        self._tls = tls
        self._handshake_timeout = handshake_timeout
        self._handshakes = AddressLimiter(handshakes_per_address, what="auth gRPC listener")

    def _protocol_factory(self) -> Any:
        return Gate(self._handshakes, self._admitted)

    def _admitted(self, admission: Admission) -> CountedTLS:
        protocol = super()._protocol_factory()
        handler = protocol.handler
        accept = handler.accept
        admission.abort_after(self._handshake_timeout)

        def accept_decoded(stream: Any, headers: Any, release_stream: Any) -> None:
            # The first call: the connection is set up, and no longer counted.
            admission.release()
            accept(stream, decode_headers(headers), release_stream)

        handler.accept = accept_decoded  # type: ignore[method-assign]  # one instance only
        self._protocols.add(protocol)
        return CountedTLS(protocol, self._tls, admission, handshake_timeout=self._handshake_timeout)

    def close(self) -> None:
        super().close()
        self._handshakes.abort_all()
        for protocol in list(self._protocols):
            transport = getattr(getattr(protocol, "connection", None), "_transport", None)
            if transport is not None:
                transport.abort()


class Router:
    """What grpclib's Server takes: an object with ``__mapping__``."""

    def __init__(self, mapping: dict[str, grpclib.const.Handler]) -> None:
        self._mapping = mapping

    def __mapping__(self) -> dict[str, grpclib.const.Handler]:
        return self._mapping
