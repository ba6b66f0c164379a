"""What an open TLS connection costs a real `mezctl start`, on both of its TLS
listeners: auth's gRPC port (every node agent holds one connection there for its life)
and the proxy's web port. asyncio alone kept a 256 KiB read buffer per connection (most
of auth's memory in a large fleet); here a connection that finished its handshake and
sent its first bytes costs well under half of that."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.procs import AuthProcess, mezctl_start
from tests.flood import flooded, tls_then

pytestmark = pytest.mark.e2e
CONNECTIONS = 400
# 256 KiB was asyncio's read buffer alone; what is left is TLS and HTTP/2 state.
MAX_KIB_PER_CONNECTION = 128
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
LIMITS = {
    "MEZITE_AUTH_MAX_HANDSHAKES_PER_ADDRESS": str(CONNECTIONS + 10),
    "MEZITE_AUTH_HANDSHAKE_TIMEOUT": "120",
    "MEZITE_PROXY_MAX_CONNECTIONS_PER_ADDRESS": str(CONNECTIONS + 10),
    "MEZITE_PROXY_REQUEST_HEAD_TIMEOUT": "120",
}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[AuthProcess]:
    """One per test: memory another listener's connections freed would be reused."""
    with mezctl_start(tmp_path / "data", env=LIMITS) as auth:
        yield auth


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.mark.parametrize(
    ("listener", "payload", "alpn"),
    [("auth", H2_PREFACE, ["h2"]), ("web", b"GET /v1/webapi/ping HTTP/1.1\r\n", None)],
)
def test_an_open_tls_connection_costs_no_read_buffer_of_its_own(
    cluster: AuthProcess, listener: str, payload: bytes, alpn: list[str] | None
) -> None:
    addr = cluster.addr if listener == "auth" else cluster.web_addr
    port = int(addr.rsplit(":", 1)[1])
    with flooded(port, 20, tls_then(payload, alpn=alpn)):  # warm: first-use allocations
        pass
    before = rss_kib(cluster.proc.pid)
    with flooded(port, CONNECTIONS, tls_then(payload, alpn=alpn)) as flood:
        assert len(flood.held) == CONNECTIONS
        grown = rss_kib(cluster.proc.pid) - before
    assert grown / CONNECTIONS < MAX_KIB_PER_CONNECTION, f"{grown / CONNECTIONS:.0f} KiB each"
    assert cluster.proc.poll() is None
