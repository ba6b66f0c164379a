"""The gRPC client layer: the one place that knows channels, TLS trust, metadata and how
gRPC failures map back onto the error vocabulary. mezctl, mezd, mez and the proxy all
talk to auth through ``AuthClient``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from proto.errors import ConnectionProblem, MeziteError, from_grpc_status
from proto.trust import AUTH_SERVER_NAME

if TYPE_CHECKING:
    import grpc
    from google.protobuf.message import Message

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
DEFAULT_TIMEOUT = 15.0


@dataclass(frozen=True)
class ClientIdentity:
    """How a client proves who it is: a session, an agent certificate, or nothing."""

    session_id: str | None = field(default=None, repr=False)
    agent_id: str | None = None
    cert_pem: bytes | None = None
    key_pem: bytes | None = field(default=None, repr=False)

    def metadata(self) -> tuple[tuple[str, str], ...]:
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
    ]
    return creds, options


def secure_channel(addr: str, ca_pem: bytes, identity: ClientIdentity) -> grpc.Channel:
    import grpc

    creds, options = _channel_args(ca_pem, identity)
    return grpc.secure_channel(addr, creds, options=options)


class AuthClient:
    """A synchronous client of the auth service.

    ``client.call("Ping", PingRequest())`` sends the identity's metadata and raises the
    error vocabulary instead of grpc.RpcError."""

    def __init__(
        self,
        addr: str,
        ca_pem: bytes,
        identity: ClientIdentity = ANONYMOUS,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        from proto.v1 import auth_pb2_grpc

        self.addr = addr
        self.identity = identity
        self._timeout = timeout
        self._channel = secure_channel(addr, ca_pem, identity)
        self._stub = auth_pb2_grpc.AuthServiceStub(self._channel)

    def call(self, method: str, request: Message, *, timeout: float | None = None) -> Any:
        rpc = getattr(self._stub, method)
        try:
            return rpc(request, metadata=self.identity.metadata(), timeout=timeout or self._timeout)
        except Exception as err:
            raise translate(err, self.addr) from err

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> AuthClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def aio_secure_channel(addr: str, ca_pem: bytes, identity: ClientIdentity) -> grpc.aio.Channel:
    import grpc

    creds, options = _channel_args(ca_pem, identity)
    return grpc.aio.secure_channel(addr, creds, options=options)


class AsyncAuthClient:
    """The asyncio twin of AuthClient, for long-running agents."""

    def __init__(
        self,
        addr: str,
        ca_pem: bytes,
        identity: ClientIdentity = ANONYMOUS,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        from proto.v1 import auth_pb2_grpc

        self.addr = addr
        self.identity = identity
        self._timeout = timeout
        self._channel = aio_secure_channel(addr, ca_pem, identity)
        self.stub = auth_pb2_grpc.AuthServiceStub(self._channel)

    async def call(self, method: str, request: Message, *, deadline: float | None = None) -> Any:
        rpc = getattr(self.stub, method)
        try:
            return await rpc(
                request, metadata=self.identity.metadata(), timeout=deadline or self._timeout
            )
        except Exception as err:
            raise translate(err, self.addr) from err

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return self.identity.metadata()

    async def close(self, grace: float | None = None) -> None:
        """Close the channel; with ``grace``, calls in flight get that many seconds."""
        await self._channel.close(grace)
