"""How the proxy reaches the auth service.

``AuthGateway`` is the one seam between the web API and auth: the routes never see gRPC.
``GrpcAuthGateway`` is the production implementation on top of ``proto.client``: one
``AsyncAuthClient`` (so one channel and one TLS connection, shared by every browser
session) with the credentials chosen per call in the metadata, because a channel per
session would mean a TLS handshake per user and an unbounded pool of connections.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any, Protocol

from proto.client import ANONYMOUS, DEFAULT_TIMEOUT, AsyncAuthClient, ClientIdentity, translate
from proto.errors import Internal

if TYPE_CHECKING:
    from google.protobuf.message import Message

RELOAD_GRACE = 5.0  # seconds calls in flight on the old channel may take


class AuthGateway(Protocol):
    async def call(
        self,
        method: str,
        request: Message,
        *,
        session_id: str | None = None,
        client_ip: str = "",
    ) -> Any:
        """Call ``method`` of AuthService as the session (or anonymously) and return the
        response message; failures are raised as the error vocabulary."""
        ...


def _unary_methods() -> frozenset[str]:
    from proto.v1 import auth_pb2

    service = auth_pb2.DESCRIPTOR.services_by_name["AuthService"]
    return frozenset(
        m.name for m in service.methods if not (m.client_streaming or m.server_streaming)
    )


def _forwarded_for(client_ip: str) -> str | None:
    """The client address in canonical form, or None when it is not an IP address (a
    metadata value must never carry whatever a transport happened to report)."""
    try:
        addr = ipaddress.ip_address(client_ip)
    except ValueError:
        return None
    # A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d; auth should see one
    # spelling per client, whatever socket the proxy happened to accept it on.
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


class GrpcAuthGateway:
    """``AuthGateway`` over a grpc.aio channel to auth.

    ``identity`` is the channel's own TLS identity (anonymous now; the proxy's client
    certificate once proxies join). A call made for a session sends only
    ``authorization: Bearer <session>``: auth refuses a call that names a session and an
    agent at once. ``x-forwarded-for`` carries the browser's address so that auth's rate
    limits and audit see the user rather than the proxy; auth honours it only from proxy
    identities.
    """

    def __init__(
        self,
        addr: str,
        ca_pem: bytes,
        identity: ClientIdentity = ANONYMOUS,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.addr = addr
        self._ca_pem = ca_pem
        self._identity = identity
        self._timeout = timeout
        self._methods = _unary_methods()
        self._client: AsyncAuthClient | None = None

    def _channel_client(self) -> AsyncAuthClient:
        # Created on first use: a grpc.aio channel belongs to the loop that first uses it.
        if self._client is None:
            self._client = AsyncAuthClient(self.addr, self._ca_pem, self._identity, self._timeout)
        return self._client

    def metadata(self, session_id: str | None, client_ip: str) -> tuple[tuple[str, str], ...]:
        if session_id:
            entries = [("authorization", f"Bearer {session_id}")]
        else:
            entries = list(self._identity.metadata())
        forwarded = _forwarded_for(client_ip) if client_ip else None
        if forwarded is not None:
            entries.append(("x-forwarded-for", forwarded))
        return tuple(entries)

    async def call(
        self,
        method: str,
        request: Message,
        *,
        session_id: str | None = None,
        client_ip: str = "",
    ) -> Any:
        import grpc

        if method not in self._methods:
            # A programming error in the proxy, not something a client can cause.
            raise Internal(f"the proxy has no unary auth method {method!r}")
        rpc = getattr(self._channel_client().stub, method)
        try:
            return await rpc(
                request, metadata=self.metadata(session_id, client_ip), timeout=self._timeout
            )
        except grpc.RpcError as err:
            raise translate(err, self.addr) from err

    async def set_identity(self, ca_pem: bytes, identity: ClientIdentity) -> None:
        """Renewed credentials: the next call dials with them; calls in flight on the old
        channel get a few seconds to finish."""
        old, self._client = self._client, None
        self._ca_pem, self._identity = ca_pem, identity
        if old is not None:
            await old.close(grace=RELOAD_GRACE)

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()
