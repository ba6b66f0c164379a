"""The proxy role of `mezctl start`: the web API (and SSH routing) beside auth in one
process, talking to auth over gRPC with its own client identity (kind proxy)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from pathlib import Path
from typing import TYPE_CHECKING

from proto import __version__
from proto.addr import HostPort, listen_errors
from proto.audit_forwarder import AuditForwarder
from proto.client import AsyncAuthClient
from proto.clock import SystemClock
from proto.files import write_private
from proto.lockwatch import LockView, watch_locks
from server.config import ServerConfig
from server.diagnostics import DiagnosticsServer, serve_metrics
from server.proxy.app import create_app
from server.proxy.gateway import RELOAD_GRACE, GrpcAuthGateway
from server.proxy.metrics import ProxyMetrics
from server.proxy.settings import ProxySettings
from server.proxy.terminal import WebTerminals
from server.proxy.webserver import WebLimits, WebServerHandle, serve_web
from server.proxy_files import ProxyCredentials

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from server.proxy.ssh_router import ProxySSHRouter, RoutedNode

log = logging.getLogger(__name__)

RUNTIME_FILE = "proxy.json"
LOCKS_FILE = "proxy-locks.json"
OPERATOR_CERT_POLL = 60.0  # seconds between looks at an operator's certificate files


def _stamp(*paths: Path) -> tuple[object, ...]:
    """What changes when a file is rewritten or replaced."""
    stats = [path.stat() for path in paths]
    return tuple((st.st_ino, st.st_mtime_ns, st.st_size) for st in stats)


def _dial(host: str, port: int) -> str:
    host = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host  # noqa: S104
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _list_nodes(client: AsyncAuthClient) -> list[RoutedNode]:
    from proto.v1 import auth_pb2 as pb
    from server.proxy.ssh_router import RoutedNode

    nodes: list[RoutedNode] = []
    page = ""
    while True:
        reply = await client.rpc.ListNodes(pb.ListNodesRequest(page_token=page))
        nodes += [
            RoutedNode(n.id, n.name, n.addr, dict(n.labels), seen_from=n.seen_from)
            for n in reply.nodes
        ]
        page = reply.next_page_token
        if not page:
            return nodes


class ProxyService:
    def __init__(
        self, config: ServerConfig, auth_addr: str, creds: ProxyCredentials, cluster: str,
        ca_pin: str,
    ) -> None:  # fmt: skip
        self._config = config
        self._auth_addr = auth_addr
        self._creds = creds
        self._cluster = cluster
        self._pin = ca_pin
        self._gateway: GrpcAuthGateway | None = None
        self.web: WebServerHandle | None = None
        self.ssh: ProxySSHRouter | None = None
        self._audit: AuditForwarder | None = None
        self._audit_task: asyncio.Task[None] | None = None
        self._client: AsyncAuthClient | None = None
        self._operator_stamp: tuple[object, ...] = ()
        self._cert_watch: asyncio.Task[None] | None = None
        self.locks = LockView(SystemClock(), creds.agent_id, config.data_dir / LOCKS_FILE)
        self._lock_watch: asyncio.Task[None] | None = None
        self.metrics = ProxyMetrics()
        self.diag: DiagnosticsServer | None = None

    def public_origin(self, port: int) -> str:
        public = self._config.proxy.public_addr
        if public:
            return f"https://{public.lower()}"
        return f"https://{_dial(self._config.proxy.web_listen_addr.host, port)}"

    async def start(self) -> None:
        proxy = self._config.proxy
        cert_file = proxy.cert_file or self._creds.web_cert_file
        key_file = proxy.key_file or self._creds.web_key_file
        self._gateway = GrpcAuthGateway(self._auth_addr, self._creds.ca_pem, self._creds.identity())
        with listen_errors(proxy.ssh_listen_addr):
            await self._start_ssh()
        listen = proxy.web_listen_addr
        # The origin needs the bound port, which port 0 only reveals after binding; the app
        # reads its settings per request, so it is built once the port is known.
        holder: dict[str, ASGIApp] = {}

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            await holder["app"](scope, receive, send)

        with listen_errors(listen):
            limits = WebLimits(proxy.request_head_timeout, proxy.max_connections_per_address)
            self.web = await serve_web(app, listen.host, listen.port, cert_file, key_file, limits)
        if proxy.cert_file is not None:
            self._operator_stamp = _stamp(cert_file, key_file)
            self._cert_watch = asyncio.create_task(self._watch_operator_cert())
        settings = ProxySettings(
            cluster_name=self._cluster,
            auth_addr=self._auth_addr,
            proxy_ssh_addr=self.advertised_ssh_addr,
            ca_pins=[self._pin],
            ca_pem=self._creds.ca_pem.decode(),
            server_version=__version__,
            public_origin=self.public_origin(self.web.port),
            request_body_timeout=proxy.request_body_timeout,
        )
        assert self.ssh is not None
        terminals = WebTerminals(
            settings, self._gateway, self.ssh, idle_timeout=proxy.web_idle_timeout
        )
        holder["app"] = create_app(
            settings, self._gateway, metrics=self.metrics, terminals=terminals
        )
        if proxy.diag_listen_addr is not None:
            self.diag = serve_metrics(self.metrics.registry, proxy.diag_listen_addr, "proxy")
        write_private(
            self._config.data_dir / RUNTIME_FILE,
            json.dumps(
                {
                    "web_addr": self.web_addr,
                    "ssh_addr": self.ssh_addr,
                    "public_origin": settings.public_origin,
                }
            ),
        )
        log.info("proxy web API for %s at %s", self._cluster, settings.public_origin)

    async def _start_ssh(self) -> None:
        from server.proxy.node_dial import NodeDialPolicy
        from server.proxy.ssh_router import NodeDirectory, ProxySSHRouter

        self._audit = AuditForwarder(self.auth_client)
        self._audit_task = asyncio.create_task(self._audit.run())
        nodes = NodeDirectory(lambda: _list_nodes(self.auth_client()), self._cluster)
        host_key, host_cert = self._creds.ssh_host()
        self.ssh = ProxySSHRouter(
            host_key=host_key,
            host_cert=host_cert,
            user_ca_keys=self._creds.user_ca_keys(),
            directory=nodes,
            audit=self._audit.emit,
            locks=self.locks,
            dial=NodeDialPolicy(self._config.proxy.node_dial_allow),
        )
        self._lock_watch = asyncio.create_task(watch_locks(self.auth_client, self.locks))
        listen = self._config.proxy.ssh_listen_addr
        await self.ssh.start(listen.host, listen.port)

    async def _watch_operator_cert(self) -> None:
        while True:
            await asyncio.sleep(OPERATOR_CERT_POLL)
            self.reload_operator_cert()

    def reload_operator_cert(self) -> bool:
        """Serve the operator's certificate files again if they changed (an ACME client
        replaces them in place). A pair that does not load, half written or mismatched,
        is logged and the served one kept; it is tried again once the files change."""
        proxy = self._config.proxy
        assert proxy.cert_file is not None and proxy.key_file is not None
        assert self.web is not None
        try:
            stamp = _stamp(proxy.cert_file, proxy.key_file)
        except OSError as exc:
            log.warning("cannot read the proxy certificate files: %s", exc)
            return False
        if stamp == self._operator_stamp:
            return False
        self._operator_stamp = stamp
        try:
            self.web.load_cert_chain(proxy.cert_file, proxy.key_file)
        except (OSError, ssl.SSLError) as exc:
            log.warning(
                "%s and %s do not load (%s); still serving the previous certificate",
                proxy.cert_file,
                proxy.key_file,
                exc,
            )
            return False
        log.info("proxy HTTPS certificate reloaded from %s", proxy.cert_file)
        return True

    def auth_client(self) -> AsyncAuthClient:
        """The proxy's own channel to auth (its certificate identity), made on first use
        and again after ``reload``."""
        if self._client is None:
            creds = self._creds
            self._client = AsyncAuthClient(self._auth_addr, creds.ca_pem, creds.identity())
        return self._client

    async def reload(self, creds: ProxyCredentials) -> None:
        """Serve renewed credentials: new HTTPS and SSH handshakes and new calls to auth
        use them; connections already open keep theirs."""
        host_key, host_cert = creds.ssh_host()
        user_ca = creds.user_ca_keys()
        self._creds = creds
        if self.web is not None and self._config.proxy.cert_file is None:
            self.web.load_cert_chain(creds.web_cert_file, creds.web_key_file)
        if self.ssh is not None:
            self.ssh.set_host_credentials(host_key, host_cert)
            self.ssh.trusted.replace(user_ca)
        if self._gateway is not None:
            await self._gateway.set_identity(creds.ca_pem, creds.identity())
        old, self._client = self._client, None
        if old is not None:
            await old.close(grace=RELOAD_GRACE)
        log.info("proxy credentials reloaded from %s", creds.directory)

    @property
    def ssh_addr(self) -> str:
        assert self.ssh is not None
        return _dial(self._config.proxy.ssh_listen_addr.host, self.ssh.port)

    @property
    def advertised_ssh_addr(self) -> str:
        """The SSH hop as ping tells clients: on the host of ``proxy.public_addr`` (the
        name users reach this proxy by, maybe one of several behind it), else the
        listener's own address."""
        public = self._config.proxy.public_addr
        if not public:
            return self.ssh_addr
        assert self.ssh is not None
        return str(HostPort(HostPort.parse(public, 443).host, self.ssh.port))

    @property
    def web_addr(self) -> str:
        assert self.web is not None
        return _dial(self._config.proxy.web_listen_addr.host, self.web.port)

    async def stop(self) -> None:
        (self._config.data_dir / RUNTIME_FILE).unlink(missing_ok=True)
        for task in (self._cert_watch, self._lock_watch):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.web is not None:
            await self.web.stop()
            self.web = None
        if self.diag is not None:
            self.diag.close()
            self.diag = None
        if self.ssh is not None:
            await self.ssh.stop()
            self.ssh = None
        if self._audit_task is not None and self._audit is not None:
            self._audit_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._audit_task
            await self._audit.flush()
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._gateway is not None:
            await self._gateway.close()
            self._gateway = None
