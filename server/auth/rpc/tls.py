"""The auth listener's TLS: TLS 1.3 only, ALPN h2, and client certificates verified
against the host X.509 CA when presented but not required (joins come before a client
has one), and only the key-exchange groups of ``server.tls``. See
docs/rfd/0001-grpclib-auth-listener.md for why this is Python's ssl."""

from __future__ import annotations

import ssl
from pathlib import Path

from server.tls import restrict_groups


def server_context(cert_chain: Path, key: Path, client_ca_pem: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.load_verify_locations(cadata=client_ca_pem)
    ctx.load_cert_chain(cert_chain, key)
    ctx.set_alpn_protocols(["h2"])
    restrict_groups(ctx)
    return ctx
