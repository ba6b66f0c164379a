"""How the proxy reaches the auth service.

``AuthGateway`` is the one seam between the web API and auth: the routes see only the
typed stub and the metadata a call carries. ``GrpcAuthGateway`` is the production
implementation on top of ``proto.client``: one ``AsyncAuthClient`` (so one channel and
one TLS connection, shared by every browser session) with the credentials chosen per
call in the metadata, because a channel per session would mean a TLS handshake per user
and an unbounded pool of connections.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Protocol

from proto.client import ANONYMOUS, DEFAULT_TIMEOUT, AsyncAuthClient, ClientIdentity, Metadata

if TYPE_CHECKING:
    from proto.v1.auth_pb2_grpc import AuthServiceAsyncStub

RELOAD_GRACE = 5.0  # seconds calls in flight on the old channel may take


class AuthGateway(Protocol):
    def stub(self) -> AuthServiceAsyncStub:
        """AuthService's typed stub; failures are raised as the error vocabulary."""
        ...

    def metadata(self, session_id: str | None, client_ip: str) -> Metadata:
        """What a call made for ``session_id`` (None: as the proxy) from a browser at
        ``client_ip`` carries."""
        ...


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

    ``identity`` is the channel's own TLS identity (the proxy's client certificate, or
    anonymous in tests). A call made for a session sends only ``authorization: Bearer
    <session>`` (the channel's interceptor then adds no agent id): auth refuses a call
    that names a session and an agent at once. ``x-forwarded-for`` carries the browser's
    address so that auth's rate limits and audit see the user rather than the proxy;
    auth honours it only from proxy identities.
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
        self._client: AsyncAuthClient | None = None

    def _channel_client(self) -> AsyncAuthClient:
        # Created on first use: a grpc.aio channel belongs to the loop that first uses it.
        if self._client is None:
            self._client = AsyncAuthClient(self.addr, self._ca_pem, self._identity, self._timeout)
        return self._client

    def stub(self) -> AuthServiceAsyncStub:
        return self._channel_client().rpc

    def metadata(self, session_id: str | None, client_ip: str) -> Metadata:
        entries = [("authorization", f"Bearer {session_id}")] if session_id else []
        forwarded = _forwarded_for(client_ip) if client_ip else None
        if forwarded is not None:
            entries.append(("x-forwarded-for", forwarded))
        return tuple(entries)

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
