"""The auth service process: backend, CAs, TLS 1.3 grpclib listener, local admin identity.

On start it writes two things into the data dir for tools on the same host:
``auth.json`` (the address it really listens on, useful when the port was 0) and
``admin/`` (the local admin identity's client certificate and key, 0600) that mezctl
uses to administer the cluster. That identity is new at every start and lasts hours;
the running server renews it (see local_identity.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

from proto.clock import Clock, SystemClock
from proto.errors import MeziteError
from proto.files import ensure_private_dir, write_private
from proto.kinds import AgentKind
from proto.lifecycle import Renewer
from proto.trust import AUTH_SERVER_NAME
from proto.v1 import auth_pb2
from server.audit import AuditLog
from server.auth.auditing import Auditor
from server.auth.crypto.ca import Authorities, load_or_create_authorities
from server.auth.crypto.issuer import AgentIssuer
from server.auth.crypto.local_identity import LocalIdentity, write_local_proxy_files
from server.auth.crypto.sshcert import SerialAllocator
from server.auth.rpc.guard import ADMIN_AGENT_KIND, Guard
from server.auth.rpc.metrics import AuthMetrics
from server.auth.rpc.ratelimit import RateLimiter
from server.auth.rpc.router import Router, Server, build_mapping
from server.auth.rpc.tls import server_context
from server.auth.services.agent_identities import AgentIdentityService
from server.auth.services.audit import AuditService
from server.auth.services.certs import CertService, UserCertSigner
from server.auth.services.cluster import ClusterService
from server.auth.services.iam_join import IAMJoinService
from server.auth.services.locks import LockService
from server.auth.services.login import Invites, LoginService
from server.auth.services.nodes import NodeService
from server.auth.services.recordings import RecordingService
from server.auth.services.resources import RoleAdminService, TokenAdminService
from server.auth.services.spiffe import SPIFFEService
from server.auth.services.users import UserAdminService
from server.auth.services.workloads import WorkloadService
from server.auth.stores.agent_identities import AgentIdentityStore, migrate_legacy_locks
from server.auth.stores.agents import AGENTS_PREFIX, AgentStore
from server.auth.stores.iam_tokens import IAMTokens
from server.auth.stores.join_tokens import JoinTokens
from server.auth.stores.lockout import LockoutPolicy, LoginLockout
from server.auth.stores.locks import LockCache, LockStore
from server.auth.stores.nodes import NodeCatalog
from server.auth.stores.presence import PresenceTable, PresenceView
from server.auth.stores.recordings import Recordings, recording_data
from server.auth.stores.roles import ROLE_PREFIX, RoleStore
from server.auth.stores.sessions import SESSIONS_PREFIX, SessionStore
from server.auth.stores.shared_presence import SharedPresence
from server.auth.stores.spiffe_trust import SPIFFETrustStore
from server.auth.stores.users import USERS_PREFIX, UserStore
from server.auth.stores.workload_rules import WorkloadRules
from server.auth.sts import STSClient
from server.backend import Backend
from server.backend.mirror import Mirror
from server.config import ServerConfig
from server.diagnostics import DiagnosticsServer, serve_metrics
from server.tls import reload_cert_chain

log = logging.getLogger(__name__)

_CERT_METHODS = {
    "IssueUserCerts": "user",
    "BootstrapAgentIdentity": "agent_identity",
    "RenewAgentIdentity": "agent_identity",
    "RegisterAgent": "host",
    "RegisterUsingIAMMethod": "host",
    "AuthenticateSPIFFE": "spiffe",
    "RenewHostCerts": "host",
}
LOCAL_ADMIN_PREFIX = "local-admin"
LOCAL_PROXY_PREFIX = "local-proxy"
PROXY_DIR = "proxy"
RUNTIME_FILE = "auth.json"
ADMIN_DIR = "admin"


class AuthServer:
    def __init__(
        self,
        config: ServerConfig,
        backend: Backend,
        audit_log: AuditLog,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.backend = backend
        self.audit_log = audit_log
        self.clock = clock or SystemClock()
        self.auditor = Auditor(audit_log, self.clock)
        # What every call reads (its session or agent, then user and roles) is kept in
        # memory (RFD 0014).
        self.mirror = Mirror(backend, (SESSIONS_PREFIX, AGENTS_PREFIX, USERS_PREFIX, ROLE_PREFIX))
        self.agents = AgentStore(backend, self.mirror)
        self.users = UserStore(backend, self.mirror)
        self.roles = RoleStore(backend, self.mirror)
        self.sessions = SessionStore(
            backend, self.users, self.clock, config.auth.session_ttl, self.mirror
        )
        self.tokens = JoinTokens(backend, self.clock)
        self.iam_tokens = IAMTokens(backend, self.clock)
        self.recordings = Recordings(backend, recording_data(config))
        self.invites = Invites(backend, self.users, self.clock, config.auth.invite_ttl)
        self.lockout = LoginLockout(
            backend,
            self.clock,
            LockoutPolicy(
                attempts=config.auth.lockout_attempts,
                window=config.auth.lockout_window,
                duration=config.auth.lockout_duration,
            ),
        )
        self.serials = SerialAllocator(backend)
        self.locks = LockStore(backend)
        self.lock_cache = LockCache(backend, self.clock)
        self.admin_identity: LocalIdentity | None = None
        self.local_proxy: LocalIdentity | None = None
        # Called after the in-process proxy's identity is renewed (it reloads it).
        self.on_local_proxy_renewed: Callable[[], Awaitable[None]] | None = None
        self._renewer: asyncio.Task[object] | None = None
        local = PresenceTable(self.clock)
        # With several auth servers on one store, presence is shared through it.
        self.shared_presence = (
            SharedPresence(backend, local, self.clock)
            if config.backend.type == "postgres"
            else None
        )
        self.presence: PresenceView = self.shared_presence or local
        self.metrics = AuthMetrics()
        self.metrics.online_nodes.set_function(lambda: len(self.presence.online()))
        self._diag: DiagnosticsServer | None = None
        self.catalog = NodeCatalog(backend, self.agents, self.presence)
        self._server: Server | None = None
        self._tls: ssl.SSLContext | None = None
        self._local_proxy_names: tuple[str, ...] = ()
        self.cas: Authorities | None = None
        self.signer: UserCertSigner | None = None
        self.issuer: AgentIssuer | None = None
        self.addr = ""

    def _write_server_tls(self, issuer: AgentIssuer) -> tuple[Path, Path]:
        """A new TLS server certificate (and key) for the listener, in ``<data dir>/tls``."""
        tls_dir = ensure_private_dir(self.config.data_dir / "tls")
        tls = issuer.new_server_tls(AUTH_SERVER_NAME, self.config.auth.tls_names)
        chain, key = tls_dir / "server.pem", tls_dir / "server.key"
        write_private(chain, tls.cert)
        write_private(key, tls.key_pem)
        return chain, key

    def _local(
        self, issuer: AgentIssuer, directory: Path, prefix: str, kind: AgentKind
    ) -> LocalIdentity:
        return LocalIdentity(self.agents, issuer, self.clock, directory, prefix=prefix, kind=kind)

    async def local_proxy_credentials(self, names: tuple[str, ...]) -> Path:
        """For a proxy running in this process: a client identity (kind proxy) and its
        listeners' certificates, in ``<data dir>/proxy``."""
        assert self.issuer is not None, "start() first"
        directory = ensure_private_dir(self.config.data_dir / PROXY_DIR)
        self.local_proxy = self._local(self.issuer, directory, LOCAL_PROXY_PREFIX, AgentKind.PROXY)
        await self.local_proxy.issue()
        await write_local_proxy_files(self.issuer, directory, names)
        self._local_proxy_names = names
        return directory

    async def _renew_local(self, admin: LocalIdentity) -> LocalIdentity:
        await self.renew_local_identities()
        return admin

    async def _adopted_in_place(self, _: LocalIdentity) -> None:
        """Local identities are renewed in place (same key, same files)."""

    async def renew_local_identities(self) -> None:
        """Renew what this host's own components hold: the listeners' server certificates
        (served from the next handshake on) and the local client identities."""
        await self.renew_server_certificates()
        for identity in (self.admin_identity, self.local_proxy):
            if identity is not None:
                await identity.renew()
        if self.local_proxy is not None and self.on_local_proxy_renewed is not None:
            await self.on_local_proxy_renewed()

    async def renew_server_certificates(self) -> None:
        """New certificates for auth's listener, in place in its SSLContext, and for the
        in-process proxy's listeners (it reloads them in ``on_local_proxy_renewed``)."""
        assert self.issuer is not None, "start() first"
        chain, key = self._write_server_tls(self.issuer)
        if self._tls is not None:
            reload_cert_chain(self._tls, chain, key)
        if self.local_proxy is not None:
            await write_local_proxy_files(
                self.issuer, self.local_proxy.directory, self._local_proxy_names
            )

    def services(self, cas: Authorities) -> list[object]:
        assert self.issuer is not None and self.signer is not None
        issuer, signer = self.issuer, self.signer
        nodes = NodeService(
            issuer=issuer,
            agents=self.agents,
            catalog=self.catalog,
            tokens=self.tokens,
            users=self.users,
            roles=self.roles,
            locks=self.lock_cache,
            auditor=self.auditor,
            clock=self.clock,
        )
        return [
            ClusterService(cas),
            LoginService(
                users=self.users,
                roles=self.roles,
                sessions=self.sessions,
                lockout=self.lockout,
                invites=self.invites,
                locks=self.lock_cache,
                auditor=self.auditor,
            ),
            UserAdminService(
                users=self.users,
                roles=self.roles,
                invites=self.invites,
                auditor=self.auditor,
                clock=self.clock,
            ),
            RoleAdminService(self.roles, self.auditor),
            TokenAdminService(self.tokens, self.iam_tokens, self.auditor),
            CertService(cas=cas, users=self.users, roles=self.roles, signer=signer),
            AuditService(self.audit_log, self.clock),
            AgentIdentityService(
                issuer=issuer,
                store=AgentIdentityStore(self.backend),
                roles=self.roles,
                locks=self.locks,
                lock_cache=self.lock_cache,
                auditor=self.auditor,
                clock=self.clock,
            ),
            LockService(
                store=self.locks,
                cache=self.lock_cache,
                agents=self.agents,
                catalog=self.catalog,
                audit_log=self.audit_log,
                cas=cas,
                auditor=self.auditor,
                clock=self.clock,
                locking_mode=self.config.auth.locking_mode,
                max_staleness=self.config.auth.lock_max_staleness,
            ),
            SPIFFEService(
                cas=cas,
                trust=SPIFFETrustStore(self.backend, self.clock, cas.trust_domain),
                roles=self.roles,
                signer=signer,
                auditor=self.auditor,
                clock=self.clock,
                cert_ttl=self.config.auth.spiffe_cert_ttl,
            ),
            WorkloadService(
                cas=cas,
                rules=WorkloadRules(self.backend),
                roles=self.roles,
                catalog=self.catalog,
                auditor=self.auditor,
                clock=self.clock,
            ),
            RecordingService(self.recordings, self.catalog, self.auditor),
            nodes,
            IAMJoinService(
                nodes,
                self.iam_tokens,
                STSClient(self.clock, self.config.auth.sts_endpoint_override),
                self.auditor,
            ),
        ]

    def _observe(self, method: str, status: str, seconds: float) -> None:
        """Metrics from each call's outcome, so services need not know about them."""
        metrics = self.metrics
        metrics.rpc_seconds.labels(method, status).observe(seconds)
        ok = status == "OK"
        if method == "AuthenticateLocal":
            metrics.logins.labels("success" if ok else "failure").inc()
            if ok:
                metrics.sessions.inc()
        elif method == "Logout" and ok:
            metrics.sessions.dec()
        elif ok and method in _CERT_METHODS:
            metrics.certificates.labels(_CERT_METHODS[method]).inc()

    def _audit_denial(self, method: str, peer: str, err: MeziteError) -> None:
        self.auditor.emit(
            "access.denied",
            success=False,
            method=method.rsplit("/", 1)[-1],
            reason=err.message,
            error=type(err).__name__,
            peer=peer,
        )

    async def start(self) -> None:
        data_dir = ensure_private_dir(self.config.data_dir)
        cas = await load_or_create_authorities(
            self.backend, self.config.cluster_name, self.clock, self.config.auth.spiffe_trust_domain
        )
        self.cas = cas
        await self.roles.ensure_presets()
        if self.shared_presence is not None:
            await self.shared_presence.start()
        await self.catalog.start()
        await migrate_legacy_locks(self.backend, self.clock)
        await self.lock_cache.start()
        await self.mirror.start()
        self.signer = UserCertSigner(cas, self.serials, self.auditor, self.clock)
        self.issuer = issuer = AgentIssuer(cas, self.serials, self.signer, self.clock)
        chain, key = self._write_server_tls(issuer)
        admin_dir = ensure_private_dir(data_dir / ADMIN_DIR)
        admin = self._local(issuer, admin_dir, LOCAL_ADMIN_PREFIX, ADMIN_AGENT_KIND)
        await admin.issue()
        self.admin_identity = admin
        renewer = Renewer(
            "the local identities", admin, renew=self._renew_local,
            adopt=self._adopted_in_place, clock=self.clock,
        )  # fmt: skip
        self._renewer = asyncio.create_task(renewer.run(), name="local-renew")
        limiter = RateLimiter(self.clock, self.config.auth.rate_limit_per_minute)
        guard = Guard(
            sessions=self.sessions, agents=self.agents, limiter=limiter, locks=self.lock_cache
        )
        descriptor = auth_pb2.DESCRIPTOR.services_by_name["AuthService"]
        mapping = build_mapping(
            self.services(cas),
            descriptor,
            auth_pb2,
            guard,
            on_denied=self._audit_denial,
            on_timing=self._observe,
        )
        sock = self._bind()  # a port in use fails here, before anything needs stopping
        self._tls = server_context(chain, key, cas.host_x509.cert_pem)
        auth = self.config.auth
        server = Server(
            [Router(mapping)], self._tls, handshake_timeout=auth.handshake_timeout,
            handshakes_per_address=auth.max_handshakes_per_address,
        )  # fmt: skip
        await server.start(sock=sock)
        self._server = server
        host, port = sock.getsockname()[:2]
        self.addr = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._write_runtime_file(port)
        diag = self.config.auth.diag_addr
        if diag is not None:
            self._diag = serve_metrics(self.metrics.registry, diag, "auth")
        log.info("auth service for cluster %s listening on %s", cas.cluster_name, self.addr)
        log.info("CA pin: %s", cas.host_x509.pin)

    def _bind(self) -> socket.socket:
        host, port = self.config.auth.listen_addr.host, self.config.auth.listen_addr.port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # IPPROTO_TCP explicitly: asyncio disables Nagle only for sockets created with it,
        # and with Nagle on every small reply waits ~40 ms for a delayed ACK.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
        return sock

    def _write_runtime_file(self, port: int) -> None:
        host = self.config.auth.listen_addr.host
        if host in ("0.0.0.0", ""):  # noqa: S104 - a wildcard bind is reached on loopback
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        dial = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        doc = {"addr": dial, "pid": os.getpid(), "cluster_name": self.config.cluster_name}
        write_private(self.config.data_dir / RUNTIME_FILE, json.dumps(doc))

    async def stop(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for identity in (self.admin_identity, self.local_proxy):
            if identity is not None:
                with contextlib.suppress(MeziteError):
                    await identity.retire()
        await self.lock_cache.stop()
        await self.mirror.stop()
        await self.catalog.stop()
        await self.recordings.data.close()
        if self.shared_presence is not None:
            await self.shared_presence.stop()
        if self._diag is not None:
            self._diag.close()
            self._diag = None
        (self.config.data_dir / RUNTIME_FILE).unlink(missing_ok=True)
