"""The gRPC client layer: the one place that knows channels, TLS trust, metadata and how
gRPC failures map back onto the error vocabulary. mezctl, mezd, mez and the proxy all
talk to auth through ``AuthClient`` (or its asyncio twin).

Calls go through the generated, typed stubs: ``client.rpc.Ping(pb.PingRequest())``
returns a ``pb.PingResponse`` that mypy checks. What every call needs is added by client
interceptors on the channel, never at a call site:

- the identity's credentials (``authorization`` or ``x-agent-id``) unless the call
  names credentials of its own (the proxy's gateway, acting for a browser's session);
- a default deadline for unary calls (streams live as long as they are consumed);
- ``grpc.RpcError`` raised as the error vocabulary (``translate``), also mid-stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from proto.errors import ConnectionProblem, MeziteError, from_grpc_status
from proto.trust import AUTH_SERVER_NAME

if TYPE_CHECKING:
    import grpc
    import grpc.aio

    from proto.v1.auth_pb2_grpc import AuthServiceAsyncStub, AuthServiceStub

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
DEFAULT_TIMEOUT = 15.0
CREDENTIAL_KEYS = frozenset({"authorization", "x-agent-id"})

Metadata = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ClientIdentity:
    """How a client proves who it is: a session, an agent certificate, or nothing."""

    session_id: str | None = field(default=None, repr=False)
    agent_id: str | None = None
    cert_pem: bytes | None = None
    key_pem: bytes | None = field(default=None, repr=False)

    def metadata(self) -> Metadata:
        if self.session_id:
            return (("authorization", f"Bearer {self.session_id}"),)
        if self.agent_id:
            return (("x-agent-id", self.agent_id),)
        return ()


ANONYMOUS = ClientIdentity()


def translate(err: Exception, addr: str) -> MeziteError:
    """A grpc.RpcError as the error the server raised (or a connection problem)."""
    import grpc

    if isinstance(err, grpc.RpcError):
        code: grpc.StatusCode = err.code()
        details: str = err.details() or code.name
        if code is grpc.StatusCode.UNAVAILABLE:
            return ConnectionProblem(
                f"cannot reach the auth service at {addr}: {details}",
                hint="check the address, that `mezctl start` is running, and the CA pin",
            )
        return from_grpc_status(code.name, details)
    return ConnectionProblem(f"call to {addr} failed: {err}")


class _Details(NamedTuple):
    """grpc's ClientCallDetails for the sync API (the abstract class has no fields)."""

    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: bool | None
    compression: Any


def _with_credentials(given: Any, identity: ClientIdentity) -> list[tuple[str, str]]:
    entries = [(str(k), str(v)) for k, v in (given or ())]
    if not any(key in CREDENTIAL_KEYS for key, _ in entries):
        entries += identity.metadata()
    return entries


class _Policy:
    """What the interceptors of one channel add: credentials, deadlines, translation."""

    def __init__(self, addr: str, identity: ClientIdentity, timeout: float) -> None:
        self.addr = addr
        self.identity = identity
        self.timeout = timeout

    def timeout_for(self, given: float | None, unary: bool) -> float | None:
        return given if given is not None or not unary else self.timeout

    def translated(self, err: Exception) -> MeziteError:
        return translate(err, self.addr)


def _sync_interceptor(policy: _Policy) -> Any:
    import grpc

    class SyncInterceptor(
        grpc.UnaryUnaryClientInterceptor,
        grpc.UnaryStreamClientInterceptor,
        grpc.StreamUnaryClientInterceptor,
        grpc.StreamStreamClientInterceptor,
    ):
        def _details(self, details: Any, unary: bool) -> _Details:
            return _Details(
                details.method,
                policy.timeout_for(details.timeout, unary),
                _with_credentials(details.metadata, policy.identity),
                details.credentials,
                details.wait_for_ready,
                getattr(details, "compression", None),
            )

        def _settled(self, outcome: Any) -> Any:
            try:
                outcome.result()
            except grpc.RpcError as err:
                raise policy.translated(err) from err
            return outcome

        def _stream(self, call: Any) -> Iterator[Any]:
            try:
                yield from call
            except grpc.RpcError as err:
                raise policy.translated(err) from err
            finally:
                call.cancel()

        def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
            return self._settled(continuation(self._details(details, True), request))

        def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
            return self._settled(continuation(self._details(details, True), requests))

        def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
            return self._stream(continuation(self._details(details, False), request))

        def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
            return self._stream(continuation(self._details(details, False), requests))

    return SyncInterceptor()


def _aio_interceptors(policy: _Policy) -> list[Any]:
    import grpc
    import grpc.aio

    def details_for(details: Any, unary: bool) -> grpc.aio.ClientCallDetails:
        return grpc.aio.ClientCallDetails(
            details.method,
            policy.timeout_for(details.timeout, unary),
            grpc.aio.Metadata(*_with_credentials(details.metadata, policy.identity)),
            details.credentials,
            details.wait_for_ready,
        )

    async def settled(call: Any) -> Any:
        try:
            return await call
        except grpc.RpcError as err:
            raise policy.translated(err) from err

    async def streamed(call: Any) -> AsyncIterator[Any]:
        try:
            async for message in call:
                yield message
        except grpc.RpcError as err:
            raise policy.translated(err) from err
        finally:
            call.cancel()

    class UnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):
        async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
            return await settled(await continuation(details_for(details, True), request))

    class StreamUnary(grpc.aio.StreamUnaryClientInterceptor):
        async def intercept_stream_unary(
            self, continuation: Any, details: Any, requests: Any
        ) -> Any:
            from grpc.aio._interceptor import UnaryUnaryCallResponse

            # grpc.aio wraps a bare response from a unary-unary interceptor, but not one
            # from a stream-unary interceptor: awaiting it would fail. Wrapped the same way.
            reply = await settled(await continuation(details_for(details, True), requests))
            return UnaryUnaryCallResponse(reply)

    class UnaryStream(grpc.aio.UnaryStreamClientInterceptor):
        async def intercept_unary_stream(
            self, continuation: Any, details: Any, request: Any
        ) -> Any:
            return streamed(await continuation(details_for(details, False), request))

    class StreamStream(grpc.aio.StreamStreamClientInterceptor):
        async def intercept_stream_stream(
            self, continuation: Any, details: Any, requests: Any
        ) -> Any:
            return streamed(await continuation(details_for(details, False), requests))

    return [UnaryUnary(), StreamUnary(), UnaryStream(), StreamStream()]


RECONNECT_BACKOFF_MS = 1000  # a dead server's address is tried again this often, at most


def grpc_target(addrs: str) -> str:
    """The gRPC target for one address or several (``a:3025,b:3025``). One address is
    dialled as given (a DNS name with several records gives grpc every record, tried in
    order). Several are resolved here and handed to grpc as one list: a call goes to the
    first that answers, so a dead server is passed over and a restarted one used again.
    TLS is unaffected: every auth certificate is verified against the cluster CA under
    ``AUTH_SERVER_NAME`` whichever address answered."""
    import socket

    from proto.addr import is_ipv6, parse_addr_list

    parsed = parse_addr_list(addrs)
    if len(parsed) == 1:
        return str(parsed[0])
    ips: list[tuple[str, int]] = []
    for hp in parsed:
        try:
            infos = socket.getaddrinfo(hp.host, hp.port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise ConnectionProblem(f"cannot resolve {hp.host}: {exc}") from exc
        for info in infos:
            entry = (str(info[4][0]), hp.port)
            if entry not in ips:
                ips.append(entry)
    if not any(is_ipv6(host) for host, _ in ips):
        return "ipv4:" + ",".join(f"{host}:{port}" for host, port in ips)
    # One scheme per target: IPv4 addresses join an IPv6 list as v4-mapped ones.
    mapped = [(host if is_ipv6(host) else f"::ffff:{host}", port) for host, port in ips]
    return "ipv6:" + ",".join(f"[{host}]:{port}" for host, port in mapped)


def _channel_args(
    ca_pem: bytes, identity: ClientIdentity
) -> tuple[grpc.ChannelCredentials, list[tuple[str, Any]]]:
    import grpc

    creds = grpc.ssl_channel_credentials(
        root_certificates=ca_pem,
        private_key=identity.key_pem,
        certificate_chain=identity.cert_pem,
    )
    options: list[tuple[str, Any]] = [
        ("grpc.ssl_target_name_override", AUTH_SERVER_NAME),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.lb_policy_name", "pick_first"),
        ("grpc.initial_reconnect_backoff_ms", RECONNECT_BACKOFF_MS),
        ("grpc.max_reconnect_backoff_ms", RECONNECT_BACKOFF_MS),
    ]
    return creds, options


def secure_channel(addr: str, ca_pem: bytes, identity: ClientIdentity) -> grpc.Channel:
    """A bare channel to auth: TLS and limits, but no interceptors (nothing added, nothing
    translated). For tests of the listener itself, which send metadata by hand."""
    import grpc

    creds, options = _channel_args(ca_pem, identity)
    return grpc.secure_channel(grpc_target(addr), creds, options=options)


class AuthClient:
    """A synchronous client of the auth service: ``client.rpc`` is the typed stub."""

    def __init__(
        self,
        addr: str,
        ca_pem: bytes,
        identity: ClientIdentity = ANONYMOUS,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        import grpc

        from proto.v1 import auth_pb2_grpc

        self.addr = addr
        self.identity = identity
        self._channel = secure_channel(addr, ca_pem, identity)
        policy = _Policy(addr, identity, timeout)
        intercepted = grpc.intercept_channel(self._channel, _sync_interceptor(policy))
        self.rpc: AuthServiceStub = auth_pb2_grpc.AuthServiceStub(intercepted)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> AuthClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncAuthClient:
    """The asyncio twin of AuthClient, for long-running agents and the proxy."""

    def __init__(
        self,
        addr: str,
        ca_pem: bytes,
        identity: ClientIdentity = ANONYMOUS,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        import grpc

        from proto.v1 import auth_pb2_grpc

        self.addr = addr
        self.identity = identity
        creds, options = _channel_args(ca_pem, identity)
        self._channel = grpc.aio.secure_channel(
            grpc_target(addr),
            creds,
            options=options,
            interceptors=_aio_interceptors(_Policy(addr, identity, timeout)),
        )
        self.rpc: AuthServiceAsyncStub = auth_pb2_grpc.AuthServiceStub(self._channel)

    async def close(self, grace: float | None = None) -> None:
        """Close the channel; with ``grace``, calls in flight get that many seconds."""
        await self._channel.close(grace)
