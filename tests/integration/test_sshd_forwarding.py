"""Port, agent and X11 forwarding on the node SSH server: allowed only as the
certificate permits, every port-forward attempt audited."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest

from tests.integration.sshd_fixtures import (
    ALL_PERMITS,
    SSH_ADD_BIN,
    SSH_AGENT_BIN,
    SSH_BIN,
    RunningNode,
    run,
    running_node,
)

pytestmark = pytest.mark.skipif(SSH_BIN is None, reason="OpenSSH client `ssh` not installed")
NO_FORWARDING = ("permit-pty", "permit-agent-forwarding")


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[RunningNode]:
    async with running_node(tmp_path) as running:
        yield running


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    """A TCP echo server on 127.0.0.1: what the forwards reach."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def _round_trip(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    writer.write_eof()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    await writer.wait_closed()
    return data


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_local_forward_with_openssh(node: RunningNode, echo_port: int) -> None:
    assert SSH_BIN is not None
    cert = node.certs.issue("alice")
    local = _free_port()
    ssh = await asyncio.create_subprocess_exec(
        SSH_BIN,
        "-N",
        "-o",
        "ExitOnForwardFailure=yes",
        "-L",
        f"127.0.0.1:{local}:127.0.0.1:{echo_port}",
        *node.ssh_options(cert),
        "-p",
        str(node.port),
        "alice@127.0.0.1",
        env=node.client_env(),
        stdin=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                echoed = await _round_trip(local, b"through the tunnel")
                break
            except OSError:
                assert ssh.returncode is None, "ssh -L exited"
                assert time.monotonic() < deadline, "ssh -L never listened"
                await asyncio.sleep(0.01)
        assert echoed == b"through the tunnel"
    finally:
        ssh.terminate()
        await ssh.communicate()
    (event,) = await node.audit.wait_for("port_forward")
    assert event.success is True
    assert event.fields["allowed"] is True
    assert event.fields["direction"] == "local"
    assert event.fields["host"] == "127.0.0.1"
    assert event.fields["port"] == echo_port
    assert event.fields["login"] == "alice"


async def test_stdio_forward_with_openssh(node: RunningNode, echo_port: int) -> None:
    cert = node.certs.issue("alice")
    result = await node.ssh(
        cert, options=["-W", f"127.0.0.1:{echo_port}"], stdin=b"ping\n", env=node.client_env()
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"ping\n"


async def test_local_forward_refused_without_permit(node: RunningNode, echo_port: int) -> None:
    cert = node.certs.issue("alice", permits=NO_FORWARDING)
    result = await node.ssh(
        cert, options=["-W", f"127.0.0.1:{echo_port}"], stdin=b"ping\n", env=node.client_env()
    )
    assert result.returncode == 255
    assert "administratively prohibited" in result.stderr.decode()
    async with await node.connect(cert) as conn:
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.open_connection("127.0.0.1", echo_port)
    events = await node.audit.wait_for("port_forward", 2)
    assert [e.fields["allowed"] for e in events] == [False, False]
    assert events[0].success is False
    assert events[0].fields["reason"] == "certificate does not permit port forwarding"


async def test_remote_forward_with_asyncssh(node: RunningNode, echo_port: int) -> None:
    cert = node.certs.issue("nobody")
    async with await node.connect(cert, login="nobody") as conn:
        listener = await conn.forward_remote_port("localhost", 0, "127.0.0.1", echo_port)
        try:
            assert await _round_trip(listener.get_port(), b"back again") == b"back again"
        finally:
            listener.close()
            await listener.wait_closed()
    (event,) = await node.audit.wait_for("port_forward")
    assert event.fields["direction"] == "remote"
    assert event.fields["allowed"] is True


@pytest.mark.parametrize(
    ("permits", "host", "port", "reason"),
    [
        (NO_FORWARDING, "localhost", 0, "certificate does not permit port forwarding"),
        (None, "0.0.0.0", 0, "remote forwards listen on loopback only"),
        (None, "", 0, "remote forwards listen on loopback only"),
        (None, "localhost", 80, "privileged ports are reserved to root logins"),
    ],
)
async def test_remote_forward_refusals(
    node: RunningNode, permits: tuple[str, ...] | None, host: str, port: int, reason: str
) -> None:
    cert = node.certs.issue("nobody", permits=permits or ALL_PERMITS)
    async with await node.connect(cert, login="nobody") as conn:
        with pytest.raises(asyncssh.ChannelListenError):
            await conn.forward_remote_port(host, port, "127.0.0.1", 9)
    (event,) = await node.audit.wait_for("port_forward")
    assert event.fields["allowed"] is False
    assert event.fields["reason"] == reason


async def test_remote_forward_refused_with_openssh(node: RunningNode) -> None:
    cert = node.certs.issue("alice", permits=NO_FORWARDING)
    result = await node.ssh(
        cert,
        "true",
        options=["-o", "ExitOnForwardFailure=yes", "-R", "0:127.0.0.1:9"],
        env=node.client_env(),
    )
    assert result.returncode == 255
    assert "remote port forwarding failed" in result.stderr.decode()
    (event,) = await node.audit.wait_for("port_forward")
    assert event.fields["direction"] == "remote"
    assert event.fields["allowed"] is False


@contextlib.asynccontextmanager
async def _ssh_agent(directory: Path, key: Path) -> AsyncIterator[dict[str, str]]:
    assert SSH_AGENT_BIN is not None and SSH_ADD_BIN is not None
    sock = directory / "agent.sock"
    agent = await asyncio.create_subprocess_exec(
        SSH_AGENT_BIN, "-D", "-a", str(sock), stdout=asyncio.subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert time.monotonic() < deadline, "ssh-agent did not start"
            await asyncio.sleep(0.01)
        env = {"SSH_AUTH_SOCK": str(sock)}
        added = await run(SSH_ADD_BIN, str(key), env=env)
        assert added.returncode == 0, added.stderr
        yield env
    finally:
        agent.terminate()
        await agent.wait()


@pytest.mark.skipif(SSH_AGENT_BIN is None or SSH_ADD_BIN is None, reason="no ssh-agent")
async def test_agent_forwarding_reaches_an_unprivileged_session(node: RunningNode) -> None:
    cert = node.certs.issue("nobody")
    async with _ssh_agent(node.client_dir, cert.key_path) as agent_env:
        result = await node.ssh(
            cert,
            'ssh-add -l; echo "owner=$(stat -c %U "$SSH_AUTH_SOCK")"',
            login="nobody",
            options=["-A"],
            env=node.client_env(**agent_env),
        )
    assert result.returncode == 0, result.stderr
    assert "ED25519" in result.out
    assert "owner=nobody" in result.out


@pytest.mark.skipif(SSH_AGENT_BIN is None or SSH_ADD_BIN is None, reason="no ssh-agent")
async def test_agent_forwarding_refused_without_permit(node: RunningNode) -> None:
    cert = node.certs.issue("nobody", permits=("permit-pty", "permit-port-forwarding"))
    async with _ssh_agent(node.client_dir, cert.key_path) as agent_env:
        result = await node.ssh(
            cert,
            'echo "${SSH_AUTH_SOCK:-none}"',
            login="nobody",
            options=["-A"],
            env=node.client_env(**agent_env),
        )
    assert result.returncode == 0, result.stderr
    assert result.out.strip() == "none"


async def test_x11_forwarding_is_always_refused(node: RunningNode) -> None:
    cert = node.certs.issue("alice")
    result = await node.ssh(
        cert,
        'echo "${DISPLAY:-none}"',
        options=["-o", "ForwardX11=yes", "-o", "ForwardX11Trusted=yes"],
        env=node.client_env(DISPLAY=":99"),
    )
    assert result.returncode == 0, result.stderr
    assert result.out.strip() == "none"
    assert "X11 forwarding request failed" in result.stderr.decode()
