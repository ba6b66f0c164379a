"""A real proxy web API for tests: uvicorn over TLS on 127.0.0.1:0, with a certificate
from the cluster's host X.509 CA, talking to a real auth server through
GrpcAuthGateway. The proxy runs in its own loop thread (like the auth server), so tests
can use blocking HTTP clients, hypothesis and schemathesis."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from proto.addr import HostPort
from proto.files import ensure_private_dir, write_private
from proto.trust import spki_pin
from server.auth.crypto.x509 import issue_server_cert
from server.diagnostics import DiagnosticsServer, serve_metrics
from server.proxy import (
    AuthGateway,
    GrpcAuthGateway,
    ProxyMetrics,
    ProxySettings,
    WebServerHandle,
    create_app,
    serve_web,
)
from tests.servers import LoopThread, RunningAuth

PUBLIC_ORIGIN = "https://proxy.test.example:3080"
CSRF = {"X-Mezite-CSRF": "1"}


@dataclass(frozen=True)
class ProxyTLS:
    cert_file: Path
    key_file: Path
    ca_file: Path


def issue_proxy_tls(
    auth: RunningAuth, directory: Path, names: tuple[str, ...] = ("localhost", "127.0.0.1")
) -> ProxyTLS:
    """A server certificate for 127.0.0.1 and localhost from the cluster's host CA, as
    auth writes its own (the chain carries the CA)."""
    cas = auth.server.cas
    assert cas is not None
    key = ec.generate_private_key(ec.SECP256R1())
    cert = issue_server_cert(
        cas.host_x509,
        key.public_key(),
        common_name="proxy",
        names=names,
        now=time.time(),
        ttl=3600,
    )
    directory = ensure_private_dir(directory)
    tls = ProxyTLS(directory / "proxy.pem", directory / "proxy.key", directory / "ca.pem")
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    write_private(tls.cert_file, cert_pem + cas.host_x509.cert_pem.encode())
    write_private(
        tls.key_file,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    write_private(tls.ca_file, cas.host_x509.cert_pem)
    return tls


def proxy_settings(auth: RunningAuth, **overrides: Any) -> ProxySettings:
    values: dict[str, Any] = {
        "cluster_name": "test-cluster",
        "auth_addr": auth.addr,
        "proxy_ssh_addr": "",
        "ca_pins": [spki_pin(auth.ca_pem.decode())],
        "ca_pem": auth.ca_pem.decode(),
        "server_version": "0.1.0",
        "public_origin": PUBLIC_ORIGIN,
        **overrides,
    }
    return ProxySettings(**values)


@dataclass
class RunningProxy:
    handle: WebServerHandle
    gateway: AuthGateway
    settings: ProxySettings
    metrics: ProxyMetrics
    tls: ProxyTLS
    loop: LoopThread
    diag: DiagnosticsServer

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.handle.port}"

    def metrics_text(self) -> str:
        """What the diagnostics address serves (the metrics are not on the web port)."""
        reply = httpx.get(f"http://127.0.0.1:{self.diag.port}/metrics", timeout=10)
        reply.raise_for_status()
        return reply.text

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.tls.ca_file))

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, verify=self.ssl_context(), timeout=20, **kwargs)


@contextmanager
def running_proxy(
    make_gateway: Callable[[], AuthGateway], settings: ProxySettings, tls: ProxyTLS
) -> Iterator[RunningProxy]:
    loop = LoopThread()
    gateway = make_gateway()
    metrics = ProxyMetrics()

    async def start() -> WebServerHandle:
        app = create_app(settings, gateway, metrics=metrics)
        return await serve_web(app, "127.0.0.1", 0, tls.cert_file, tls.key_file)

    async def stop(handle: WebServerHandle) -> None:
        await handle.stop()
        close = getattr(gateway, "close", None)
        if close is not None:
            await close()

    try:
        handle = loop.run(start())
        diag = serve_metrics(metrics.registry, HostPort("127.0.0.1", 0), "proxy")
        try:
            yield RunningProxy(handle, gateway, settings, metrics, tls, loop, diag)
        finally:
            diag.close()
            loop.run(stop(handle))
    finally:
        loop.close()


@contextmanager
def proxy_for(auth: RunningAuth, directory: Path, **overrides: Any) -> Iterator[RunningProxy]:
    """The proxy in front of ``auth``, through the production gateway."""
    tls = issue_proxy_tls(auth, directory)
    settings = proxy_settings(auth, **overrides)
    with running_proxy(lambda: GrpcAuthGateway(auth.addr, auth.ca_pem), settings, tls) as proxy:
        yield proxy


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def metric_value(text: str, name: str, **labels: str) -> float:
    """One sample of the Prometheus exposition ``text`` (0.0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0
