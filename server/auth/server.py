"""The auth service process: backend, CAs, TLS 1.3 grpclib listener, local admin identity.

On start it writes two things into the data dir for tools on the same host:
``auth.json`` (the address it really listens on, useful when the port was 0) and
``admin/`` (the local admin identity's client certificate and key, 0600) that mezctl
uses to administer the cluster."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from grpclib.server import Server

from proto.clock import Clock, SystemClock
from proto.errors import NotAuthenticated
from proto.files import ensure_private_dir, write_private
from proto.trust import AUTH_SERVER_NAME
from proto.v1 import auth_pb2
from server.auth.agents import AgentRecord, AgentStore
from server.auth.ca import Authorities, load_or_create_authorities
from server.auth.cluster import ClusterService
from server.auth.grpc_auth import ADMIN_AGENT_KIND, Guard, Principal
from server.auth.router import Router, build_mapping
from server.auth.tls import server_context
from server.auth.x509 import issue_client_cert, issue_server_cert
from server.backend import Backend

log = logging.getLogger(__name__)

LOCAL_ADMIN_ID = "local-admin"
SERVER_CERT_TTL = 365 * 86400.0
ADMIN_CERT_TTL = 365 * 86400.0
RUNTIME_FILE = "auth.json"
ADMIN_DIR = "admin"


@dataclass(frozen=True)
class AuthSettings:
    data_dir: Path
    cluster_name: str
    listen_host: str
    listen_port: int
    tls_names: tuple[str, ...]


class _NoSessions:
    async def resolve_session(self, session_id: str) -> Principal:
        raise NotAuthenticated("invalid or expired session", hint="log in again with `mez login`")


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem_cert(cert: object) -> bytes:
    from cryptography import x509

    assert isinstance(cert, x509.Certificate)
    return cert.public_bytes(serialization.Encoding.PEM)


class AuthServer:
    def __init__(
        self, settings: AuthSettings, backend: Backend, clock: Clock | None = None
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.clock = clock or SystemClock()
        self.agents = AgentStore(backend)
        self._server: Server | None = None
        self.cas: Authorities | None = None
        self.addr = ""

    def _write_server_tls(self, cas: Authorities, tls_dir: Path) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = issue_server_cert(
            cas.host_x509,
            key.public_key(),
            common_name=AUTH_SERVER_NAME,
            names=(AUTH_SERVER_NAME, *self.settings.tls_names),
            now=self.clock.now(),
            ttl=SERVER_CERT_TTL,
        )
        # The chain carries the CA too: a client holding only the pin can find it there.
        chain, key_path = tls_dir / "server.pem", tls_dir / "server.key"
        write_private(chain, _pem_cert(cert) + cas.host_x509.cert_pem.encode())
        write_private(key_path, _pem_key(key))
        return chain, key_path

    async def _write_admin_identity(self, cas: Authorities, admin_dir: Path) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = issue_client_cert(
            cas.host_x509,
            key.public_key(),
            agent_id=LOCAL_ADMIN_ID,
            kind=ADMIN_AGENT_KIND,
            cluster_name=cas.cluster_name,
            now=self.clock.now(),
            ttl=ADMIN_CERT_TTL,
        )
        await self.agents.put(
            AgentRecord(
                id=LOCAL_ADMIN_ID,
                kind=ADMIN_AGENT_KIND,
                name=LOCAL_ADMIN_ID,
                created=self.clock.now(),
            )
        )
        write_private(admin_dir / "key.pem", _pem_key(key))
        write_private(admin_dir / "cert.pem", _pem_cert(cert))
        write_private(admin_dir / "ca.pem", cas.host_x509.cert_pem)

    def services(self, cas: Authorities) -> list[object]:
        return [ClusterService(cas)]

    async def start(self) -> None:
        data_dir = ensure_private_dir(self.settings.data_dir)
        cas = await load_or_create_authorities(self.backend, self.settings.cluster_name, self.clock)
        self.cas = cas
        chain, key = self._write_server_tls(cas, ensure_private_dir(data_dir / "tls"))
        await self._write_admin_identity(cas, ensure_private_dir(data_dir / ADMIN_DIR))
        guard = Guard(sessions=_NoSessions(), agents=self.agents)
        descriptor = auth_pb2.DESCRIPTOR.services_by_name["AuthService"]
        mapping = build_mapping(self.services(cas), descriptor, auth_pb2, guard)
        self._server = Server([Router(mapping)])
        sock = self._bind()
        await self._server.start(sock=sock, ssl=server_context(chain, key, cas.host_x509.cert_pem))
        host, port = sock.getsockname()[:2]
        self.addr = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._write_runtime_file(port)
        log.info("auth service for cluster %s listening on %s", cas.cluster_name, self.addr)
        log.info("CA pin: %s", cas.host_x509.pin)

    def _bind(self) -> socket.socket:
        host, port = self.settings.listen_host, self.settings.listen_port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
        return sock

    def _write_runtime_file(self, port: int) -> None:
        host = self.settings.listen_host
        if host in ("0.0.0.0", ""):  # noqa: S104 - a wildcard bind is reached on loopback
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        dial = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        doc = {"addr": dial, "pid": os.getpid(), "cluster_name": self.settings.cluster_name}
        write_private(self.settings.data_dir / RUNTIME_FILE, json.dumps(doc))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        (self.settings.data_dir / RUNTIME_FILE).unlink(missing_ok=True)

    async def serve_forever(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            log.info("shutting down")
            await self.stop()
