"""Slowloris floods against a real `mezctl start`: connections from one address that
stop half way through a TLS handshake, an HTTP request head or an HTTP/2 preface are
capped per address and closed after the configured timeouts, and `mez login` from
another address keeps working while they are held."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.procs import AuthProcess, cli, cluster_pin, mez_env, mezctl_start
from tests.flood import flooded, silent, tls_then

pytestmark = pytest.mark.e2e
PASSWORD = "a long enough password"
WEB_CAP = 40
AUTH_CAP = 20
# More than uvicorn's limit_concurrency (1000): uncapped, they make every request a 503.
WEB_FLOOD = 1000
HALF_HEAD = b"POST /v1/webapi/login HTTP/1.1\r\nHost: proxy\r\nContent-Type: appl"
LIMITS = {
    "MEZITE_PROXY_REQUEST_HEAD_TIMEOUT": "4",
    "MEZITE_PROXY_REQUEST_BODY_TIMEOUT": "2",
    "MEZITE_PROXY_MAX_CONNECTIONS_PER_ADDRESS": str(WEB_CAP),
    "MEZITE_AUTH_HANDSHAKE_TIMEOUT": "10",
    "MEZITE_AUTH_MAX_HANDSHAKES_PER_ADDRESS": str(AUTH_CAP),
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthProcess]:
    with mezctl_start(tmp_path_factory.mktemp("flood") / "data", env=LIMITS) as auth:
        done = cli("mezctl", "users", "add", "alice", "--roles", "access", "--logins",
                   "alice", "--password-stdin", "--data-dir", str(auth.data_dir),
                   stdin=PASSWORD + "\n")  # fmt: skip
        assert done.returncode == 0, done.stderr
        yield auth


def port_of(addr: str) -> int:
    return int(addr.rsplit(":", 1)[1])


def login(cluster: AuthProcess, tmp_path: Path, *via: str) -> None:
    done = cli("mez", "login", *via, "--user", "alice", "--password-stdin", "--ca-pin",
               cluster_pin(cluster.data_dir), stdin=PASSWORD + "\n",
               env=mez_env(tmp_path), timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    assert "Logged in to e2e as alice" in done.stdout


def test_web_half_heads_capped_and_closed(cluster: AuthProcess, tmp_path: Path) -> None:
    web = port_of(cluster.web_addr)
    with flooded(web, WEB_FLOOD, tls_then(HALF_HEAD)) as flood:
        # The cap holds per address: the rest were closed at accept.
        assert len(flood.held) == WEB_CAP
        assert flood.refused == WEB_FLOOD - WEB_CAP
        login(cluster, tmp_path, "--proxy", cluster.web_addr)
        # The half heads are closed once the head timeout has passed.
        assert flood.wait_all_closed(within=60) == WEB_CAP
    # And the address may connect again.
    with flooded(web, 1, tls_then(b"")) as again:
        assert len(again.held) == 1


def test_web_slow_body_gets_408(cluster: AuthProcess) -> None:
    web = port_of(cluster.web_addr)
    head = (b"POST /v1/webapi/login HTTP/1.1\r\nHost: proxy\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user")  # fmt: skip
    with flooded(web, 1, tls_then(head)) as slow:
        (sock,) = slow.held
        sock.settimeout(30)
        reply = b""
        while chunk := sock.recv(65536):  # the server closes after its answer
            reply += chunk
    status, _, rest = reply.partition(b"\r\n")
    assert status == b"HTTP/1.1 408 Request Timeout", reply
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert b"connection: close" in headers.lower()
    assert json.loads(body)["error"]["type"] == "LimitExceeded"


@pytest.mark.parametrize("phase", ["tls-handshake", "http2-preface"])
def test_auth_unfinished_connections_capped_and_closed(
    cluster: AuthProcess, tmp_path: Path, phase: str
) -> None:
    auth = port_of(cluster.addr)
    start = silent if phase == "tls-handshake" else tls_then(b"", alpn=["h2"])
    with flooded(auth, AUTH_CAP + 30, start) as flood:
        assert len(flood.held) == AUTH_CAP
        assert flood.refused == 30
        login(cluster, tmp_path, "--auth", cluster.addr)
        assert flood.wait_all_closed(within=60) == AUTH_CAP
