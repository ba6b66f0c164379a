"""Header bytes that are not ASCII, sent with h2 directly (grpcio refuses to put them on
the wire): each call is answered UNAUTHENTICATED (or refused as grpc refuses any bad
request), with one log line and no traceback, and the connection keeps serving."""

from __future__ import annotations

import logging
import socket
import ssl
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import pytest

from proto.trust import AUTH_SERVER_NAME
from proto.v1 import auth_pb2 as pb
from tests.servers import RunningAuth

SERVICE = "/mezite.v1.AuthService/"
UNAUTHENTICATED = "16"


@dataclass
class RawConnection:
    """One HTTP/2 connection to auth; ``call`` sends one unary request with exactly the
    header bytes given and returns the grpc-status it got."""

    sock: ssl.SSLSocket
    conn: h2.connection.H2Connection = field(init=False)

    def __post_init__(self) -> None:
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.conn = h2.connection.H2Connection(config=config)
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())

    def call(self, method: str, extra: list[tuple[bytes, bytes]], body: bytes = b"") -> str:
        stream = self.conn.get_next_available_stream_id()
        headers = [
            (b":method", b"POST"),
            (b":scheme", b"https"),
            (b":path", (SERVICE + method).encode()),
            (b":authority", AUTH_SERVER_NAME.encode()),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
            *extra,
        ]
        self.conn.send_headers(stream, headers)
        self.conn.send_data(stream, struct.pack(">?I", False, len(body)) + body, end_stream=True)
        self.sock.sendall(self.conn.data_to_send())
        status: str | None = None
        while status is None:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("auth closed the connection")
            for event in self.conn.receive_data(data):
                if isinstance(event, h2.events.StreamReset) and event.stream_id == stream:
                    raise ConnectionError(f"stream reset ({event.error_code!r})")
                if isinstance(event, h2.events.ConnectionTerminated):
                    raise ConnectionError("auth ended the connection")
                if isinstance(event, h2.events.DataReceived):
                    self.conn.acknowledge_received_data(event.flow_controlled_length, stream)
                if (
                    isinstance(event, (h2.events.ResponseReceived, h2.events.TrailersReceived))
                    and event.stream_id == stream
                ):
                    found = dict(event.headers).get(b"grpc-status")
                    status = found.decode() if found is not None else None
            self.sock.sendall(self.conn.data_to_send())
        return status


@contextmanager
def raw_connection(auth: RunningAuth) -> Iterator[RawConnection]:
    ctx = ssl.create_default_context(cadata=auth.ca_pem.decode())
    ctx.set_alpn_protocols(["h2"])
    host, port = auth.addr.rsplit(":", 1)
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname=AUTH_SERVER_NAME) as sock,
    ):
        yield RawConnection(sock)


PING = pb.PingRequest().SerializeToString()
BAD_VALUES = [b"Bearer \xff\xfe" + b"a" * 30, "Bearer caf\u00e9".encode() + b"a" * 30, b"\x80"]


@pytest.mark.parametrize("value", BAD_VALUES, ids=["binary", "utf8", "lone-byte"])
@pytest.mark.parametrize("header", [b"authorization", b"x-agent-id"])
@pytest.mark.parametrize("method", ["Ping", "ListUsers"])
def test_non_ascii_credentials_are_unauthenticated_and_the_connection_lives(
    auth: RunningAuth,
    caplog: pytest.LogCaptureFixture,
    header: bytes,
    value: bytes,
    method: str,
) -> None:
    with caplog.at_level(logging.DEBUG), raw_connection(auth) as conn:
        assert conn.call(method, [(header, value)], PING) == UNAUTHENTICATED
        assert conn.call("Ping", [], PING) == "0"  # same connection, still serving
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING]
    refusals = [r for r in caplog.records if "NotAuthenticated" in r.getMessage()]
    assert len(refusals) == 1, [r.getMessage() for r in caplog.records]
    assert b"\xff" not in refusals[0].getMessage().encode("utf-8", "replace")


@pytest.mark.parametrize(
    "extra",
    [
        [(b"x-other", b"\xff\xfe")],
        [(b"x-\xffname", b"v")],
        [(b"x-trace-bin", b"\xff\xfe")],
        [(b"x-trace-bin", b"a")],  # not base64: grpclib's decoder raises on it
        [(b"user-agent", b"\xc3\xa9t\xc3\xa9")],
    ],
    ids=["other-value", "name", "bin-bytes", "bin-not-base64", "user-agent"],
)
def test_other_headers_of_that_shape_do_not_break_the_call(
    auth: RunningAuth, caplog: pytest.LogCaptureFixture, extra: list[tuple[bytes, bytes]]
) -> None:
    with caplog.at_level(logging.DEBUG), raw_connection(auth) as conn:
        assert conn.call("Ping", extra, PING) == "0"
        assert conn.call("ListUsers", extra, PING) == UNAUTHENTICATED
        assert conn.call("Ping", [], PING) == "0"
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING]


def test_a_non_ascii_method_path_is_unimplemented(auth: RunningAuth) -> None:
    with raw_connection(auth) as conn:
        assert conn.call("P\xefng", [], PING) == "12"
        assert conn.call("Ping", [], PING) == "0"
