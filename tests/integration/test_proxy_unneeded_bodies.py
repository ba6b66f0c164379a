"""Answers that come before the client has sent its whole body (a 413 from the declared
length, a 401 before the body is read): the client reads the answer, not a reset, and
the proxy bounds how much of the unneeded rest it reads (server/proxy/h11_limits.py).

A raw TLS socket plays the client so that the tests control when the body is written
relative to reading the answer, as ``requests`` does (it writes the whole body first)."""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.proxy import h11_limits
from tests.integration.proxy_fixtures import RunningProxy, proxy_for
from tests.servers import running_auth

LOGIN_HEAD = (
    b"POST /v1/webapi/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
)


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProxy]:
    root: Path = tmp_path_factory.mktemp("bodies")
    with running_auth(root / "data") as auth, proxy_for(auth, root / "tls") as proxy:
        yield proxy


def connect(proxy: RunningProxy) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", proxy.handle.port), timeout=20)
    return proxy.ssl_context().wrap_socket(raw, server_hostname="127.0.0.1")


def read_answer(tls: ssl.SSLSocket) -> tuple[int, dict[str, str], bytes]:
    """One response (status, lower-cased headers, body) read off ``tls``."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = tls.recv(65536)
        assert chunk, f"the proxy closed before its answer: {received!r}"
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    length = int(headers["content-length"])
    while len(body) < length:
        chunk = tls.recv(65536)
        assert chunk, "the proxy closed in the middle of its answer"
        body += chunk
    return int(status_line.split()[1]), headers, body


def closed_by_the_proxy(tls: ssl.SSLSocket) -> bool:
    try:
        return tls.recv(1) == b""
    except (ConnectionResetError, ssl.SSLError):
        return True


@pytest.mark.parametrize("size", [70_000, 1_000_000, 8_000_000])
def test_a_client_that_writes_its_whole_oversize_body_first_reads_the_413(
    proxy: RunningProxy, size: int
) -> None:
    # Before the bounded read of the rest, 5 MB gave a TLS EOF in 40 runs out of 40.
    body = json.dumps({"username": "x", "password": "y" * size}).encode()
    for _ in range(3):
        with connect(proxy) as tls:
            tls.sendall(LOGIN_HEAD + b"Content-Length: %d\r\n\r\n" % len(body) + body)
            status, headers, answer = read_answer(tls)
            assert status == 413
            assert headers["connection"] == "close"
            assert json.loads(answer)["error"]["type"] == "LimitExceeded"
            assert closed_by_the_proxy(tls)


def test_a_chunked_oversize_body_gets_its_413_too(proxy: RunningProxy) -> None:
    piece = b"y" * 65536
    chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
    with connect(proxy) as tls:
        tls.sendall(LOGIN_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + b'6\r\n{"a":"\r\n')
        tls.sendall(chunk * 32 + b"0\r\n\r\n")  # 2 MiB, well over the 64 KiB cap
        status, headers, _ = read_answer(tls)
        assert (status, headers["connection"]) == (413, "close")
        assert closed_by_the_proxy(tls)


def test_an_early_refusal_keeps_the_connection_for_the_next_request(proxy: RunningProxy) -> None:
    body = b"k" * 1_000_000  # many reads: the 401 is sent before the body is all in
    with connect(proxy) as tls:
        tls.sendall(
            b"POST /v1/webapi/certs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer nope\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        )
        status, headers, _ = read_answer(tls)
        assert status == 401 and "connection" not in headers
        tls.sendall(b"GET /v1/webapi/ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_answer(tls)[0] == 200


def test_an_unneeded_body_is_read_only_up_to_the_bound(proxy: RunningProxy) -> None:
    """A client streaming a body no one reads: the proxy drops the connection after
    DISCARD_BYTES rather than decrypting it for as long as the client sends (as
    uvicorn alone would after a keep-alive 401)."""
    piece = b"k" * 65536
    chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
    sent = 0
    with connect(proxy) as tls:
        tls.sendall(
            b"POST /v1/webapi/certs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer nope\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        with pytest.raises(OSError):  # a reset, a broken pipe or a TLS EOF
            while sent < 8 * h11_limits.DISCARD_BYTES:
                tls.sendall(chunk)
                sent += len(chunk)
    assert h11_limits.DISCARD_BYTES < sent < 2 * h11_limits.DISCARD_BYTES + 8 * 1024 * 1024


def test_a_client_that_stops_in_the_middle_of_an_unneeded_body_is_closed(
    proxy: RunningProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(h11_limits, "DISCARD_SECONDS", 0.5)
    with connect(proxy) as tls:
        tls.sendall(LOGIN_HEAD + b"Content-Length: 1000000\r\n\r\n" + b"y" * 100_000)
        status, _, _ = read_answer(tls)
        assert status == 413
        assert closed_by_the_proxy(tls)  # without the bound: the 20 s socket timeout
