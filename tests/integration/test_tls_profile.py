"""The TLS profile of both HTTPS-ish listeners, auth (3025) and the in-process proxy
(3080): only X25519 and P-256 key shares (plus the hybrid when OpenSSL has it), short
server certificates that the running service renews in place, and the proxy's metrics
on its diagnostics address only."""

from __future__ import annotations

import datetime
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from proto.clock import FakeClock
from server.auth.crypto.issuer import SERVER_CERT_TTL
from server.proxy.service import ProxyService
from server.tls import CLASSICAL_GROUPS, HYBRID_GROUP, restrict_groups
from tests import servers
from tests.servers import RunningAuth, running_auth


@dataclass
class Stack:
    auth: RunningAuth
    proxy: ProxyService
    clock: FakeClock

    def port(self, listener: str) -> int:
        if listener == "auth":
            return int(self.auth.addr.rsplit(":", 1)[1])
        assert self.proxy.web is not None
        return self.proxy.web.port


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    from server.main import _start_proxy

    clock = FakeClock(time.time())
    flags = {
        "proxy.web_listen_addr": "127.0.0.1:0",
        "proxy.ssh_listen_addr": "127.0.0.1:0",
        "proxy.diag_listen_addr": "127.0.0.1:0",
    }
    config = servers.test_config(tmp_path / "data", **flags)
    with running_auth(tmp_path / "data", clock=clock, **flags) as auth:
        proxy = auth.loop.run(_start_proxy(config, auth.server))
        try:
            yield Stack(auth, proxy, clock)
        finally:
            auth.loop.run(proxy.stop())


LISTENERS = ["auth", "proxy"]


def s_client(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *args],
        input="",
        capture_output=True,
        text=True,
        errors="replace",  # auth answers with HTTP/2 frames once the handshake is done
        timeout=20,
        check=False,
    )


def test_the_group_list_is_the_modern_one_plus_the_hybrid_when_openssl_has_it() -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    hybrid = (HYBRID_GROUP,) if ssl.OPENSSL_VERSION_INFO >= (3, 5) else ()
    assert restrict_groups(ctx) == (*hybrid, *CLASSICAL_GROUPS)


@pytest.mark.parametrize("listener", LISTENERS)
@pytest.mark.parametrize("group", ["X448", "secp521r1", "secp384r1", "X448:secp521r1"])
def test_key_shares_outside_the_profile_are_refused(
    stack: Stack, listener: str, group: str
) -> None:
    done = s_client(stack.port(listener), "-tls1_3", "-groups", group)
    assert done.returncode != 0, done.stdout
    assert "Cipher is (NONE)" in done.stdout


@pytest.mark.parametrize("listener", LISTENERS)
@pytest.mark.parametrize(("group", "shown"), [("X25519", "X25519"), ("P-256", "prime256v1")])
def test_x25519_and_p256_are_accepted(stack: Stack, listener: str, group: str, shown: str) -> None:
    # A client offering the refused groups first still lands on the allowed one.
    done = s_client(stack.port(listener), "-tls1_3", "-groups", f"X448:secp521r1:{group}")
    assert done.returncode == 0, done.stderr
    assert "TLSv1.3" in done.stdout
    assert f"Server Temp Key: {'ECDH, ' if group == 'P-256' else ''}{shown}" in done.stdout


def served_cert(port: int) -> x509.Certificate:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # what is served, not whether it verifies now
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        ctx.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def _until(cert: x509.Certificate) -> float:
    return cert.not_valid_after_utc.timestamp()


@pytest.mark.parametrize("listener", LISTENERS)
def test_server_certificates_are_short_and_renewed_in_place(stack: Stack, listener: str) -> None:
    port = stack.port(listener)
    first = served_cert(port)
    life = first.not_valid_after_utc - first.not_valid_before_utc
    assert life <= datetime.timedelta(days=90)
    assert _until(first) == pytest.approx(stack.clock.now() + SERVER_CERT_TTL, abs=120)

    stack.clock.advance(SERVER_CERT_TTL * 0.7)
    stack.auth.call(stack.auth.server.renew_local_identities)
    renewed = served_cert(port)  # same listener, same socket: a new handshake
    assert renewed.serial_number != first.serial_number
    assert renewed.public_key() != first.public_key()
    assert _until(renewed) == pytest.approx(stack.clock.now() + SERVER_CERT_TTL, abs=120)
    assert _until(renewed) > _until(first)


def test_proxy_metrics_are_only_on_the_diagnostics_address(stack: Stack) -> None:
    assert stack.proxy.diag is not None
    web = f"https://127.0.0.1:{stack.port('proxy')}"
    verify = ssl.create_default_context(cadata=stack.auth.ca_pem.decode())
    with httpx.Client(verify=verify, timeout=10) as client:
        assert client.get(f"{web}/metrics").status_code == 404
        assert client.get(f"{web}/v1/webapi/ping").status_code == 200
    text = httpx.get(f"http://127.0.0.1:{stack.proxy.diag.port}/metrics", timeout=10).text
    assert "mezite_proxy_logins_total" in text
