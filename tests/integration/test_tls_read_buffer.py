"""The server-side TLS protocol (proto.connlimit.CountedTLS) reads every connection's
ciphertext into one buffer per thread instead of asyncio's 256 KiB per connection: many
connections moving data at once, in both directions, each get back exactly their own
bytes."""

from __future__ import annotations

import asyncio
import hashlib
import os
import ssl
import subprocess
from pathlib import Path

from proto.connlimit import AddressLimiter, Admission, CountedTLS, Gate

CLIENTS = 12
PER_CLIENT = 3 * 1024 * 1024  # more than the read buffer, so every client needs many reads


class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[attr-defined]

    def eof_received(self) -> bool:
        return False


def server_context(tmp: Path) -> ssl.SSLContext:
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-subj", "/CN=echo", "-days", "1", "-keyout", key, "-out", cert],
        check=True, capture_output=True,
    )  # fmt: skip
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


async def exchange(port: int, payload: bytes) -> bytes:
    """Send ``payload`` while reading the echo back: TLS records both ways at once."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)

    async def send() -> None:
        view = memoryview(payload)
        for at in range(0, len(view), 50_000):  # uneven chunks: records of every size
            writer.write(view[at : at + 50_000])
            await writer.drain()

    sending = asyncio.create_task(send())
    got = await reader.readexactly(len(payload))
    await sending
    writer.close()
    return got


async def test_concurrent_connections_get_their_own_bytes(tmp_path: Path) -> None:
    ctx = server_context(tmp_path)
    limiter = AddressLimiter(CLIENTS * 2, what="test echo")
    loop = asyncio.get_running_loop()
    protocols: list[CountedTLS] = []

    def make(admission: Admission) -> CountedTLS:
        tls = CountedTLS(Echo(), ctx, admission, handshake_timeout=30)
        protocols.append(tls)
        return tls

    server = await loop.create_server(lambda: Gate(limiter, make), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    payloads = [os.urandom(PER_CLIENT) for _ in range(CLIENTS)]
    try:
        got = await asyncio.gather(*(exchange(port, p) for p in payloads))
    finally:
        server.close()
        await server.wait_closed()
    for i, payload in enumerate(payloads):
        assert hashlib.sha256(got[i]).digest() == hashlib.sha256(payload).digest(), i
    # One read buffer for all of them, not one each.
    assert len({id(p.get_buffer(-1).obj) for p in protocols}) == 1
    assert len(protocols) == CLIENTS
