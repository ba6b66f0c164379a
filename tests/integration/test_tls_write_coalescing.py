"""The server-side TLS protocol (proto.connlimit.CountedTLS) sends what the application
wrote in one loop iteration together: a gRPC answer's headers, message and trailers leave
in one TCP segment, where asyncio's own TLS sends one each. Counted by the kernel
(TCP_INFO's data segments out) on a real loopback connection; and what was written
arrives whole and in order, also when the writer closes at once or writes more than the
transport's high-water mark."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import ssl
import struct
from pathlib import Path

import pytest

from proto.connlimit import AddressLimiter, Admission, CountedTLS, Gate
from tests.integration.test_tls_read_buffer import server_context

TCPI_DATA_SEGS_OUT = 156  # offset of tcpi_data_segs_out in struct tcp_info (Linux >= 4.6)
PIECES = (b"h" * 120, b"m" * 900, b"t" * 40)  # what a gRPC answer writes


def data_segments_out(sock: socket.socket) -> int:
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return int(struct.unpack_from("I", info, TCPI_DATA_SEGS_OUT)[0])


class Answer(asyncio.Protocol):
    """Writes ``pieces`` in one callback for every request line; closes after them if
    ``close``."""

    def __init__(self, pieces: tuple[bytes, ...], *, close: bool = False) -> None:
        self.pieces, self.close = pieces, close
        self.sock: socket.socket | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.sock = transport.get_extra_info("socket")

    def data_received(self, data: bytes) -> None:
        for piece in self.pieces:
            self.transport.write(piece)  # type: ignore[attr-defined]
        if self.close:
            self.transport.close()


async def serve(ctx: ssl.SSLContext, app: Answer, *, counted: bool = True) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    if not counted:  # asyncio's own TLS, for comparison
        return await loop.create_server(lambda: app, "127.0.0.1", 0, ssl=ctx)
    limiter = AddressLimiter(8, what="test")

    def make(admission: Admission) -> CountedTLS:
        return CountedTLS(app, ctx, admission, handshake_timeout=30)

    return await loop.create_server(lambda: Gate(limiter, make), "127.0.0.1", 0)


async def connect(server: asyncio.Server) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    client = ssl.create_default_context()
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    port = server.sockets[0].getsockname()[1]
    return await asyncio.open_connection("127.0.0.1", port, ssl=client)


async def segments_for_one_answer(ctx: ssl.SSLContext, *, counted: bool) -> tuple[int, bytes]:
    app = Answer(PIECES)
    server = await serve(ctx, app, counted=counted)
    reader, writer = await connect(server)
    try:
        writer.write(b"ping\n")  # the handshake is over: the server has its socket
        await writer.drain()
        first = await reader.readexactly(sum(map(len, PIECES)))
        assert app.sock is not None
        before = data_segments_out(app.sock)
        writer.write(b"again\n")
        await writer.drain()
        second = await reader.readexactly(sum(map(len, PIECES)))
        assert first == second
        return data_segments_out(app.sock) - before, second
    finally:
        writer.close()
        server.close()
        await server.wait_closed()


@pytest.fixture
def ctx(tmp_path: Path) -> ssl.SSLContext:
    made = server_context(tmp_path)
    made.num_tickets = 0  # no session tickets: nothing else for the server to send
    return made


async def test_one_iterations_writes_leave_in_one_segment(ctx: ssl.SSLContext) -> None:
    stock, _ = await segments_for_one_answer(ctx, counted=False)
    ours, got = await segments_for_one_answer(ctx, counted=True)
    assert got == b"".join(PIECES)
    assert stock == len(PIECES)  # asyncio: a segment per write (TCP_NODELAY)
    assert ours == 1


async def test_writes_then_close_arrive_whole_before_the_end(ctx: ssl.SSLContext) -> None:
    app = Answer(PIECES, close=True)
    server = await serve(ctx, app)
    reader, writer = await connect(server)
    try:
        writer.write(b"ping\n")
        assert await asyncio.wait_for(reader.read(), 10) == b"".join(PIECES)  # then EOF
    finally:
        writer.close()
        server.close()
        await server.wait_closed()


async def test_more_than_the_high_water_mark_in_one_callback(ctx: ssl.SSLContext) -> None:
    pieces = tuple(os.urandom(64 * 1024) for _ in range(80))  # 5 MiB at once
    app = Answer(pieces)
    server = await serve(ctx, app)
    reader, writer = await connect(server)
    try:
        writer.write(b"ping\n")
        got = await asyncio.wait_for(reader.readexactly(sum(map(len, pieces))), 30)
    finally:
        writer.close()
        server.close()
        await server.wait_closed()
    assert hashlib.sha256(got).digest() == hashlib.sha256(b"".join(pieces)).digest()
