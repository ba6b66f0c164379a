"""Who gets into a node, and what they may do there: every refused certificate is refused
by the real OpenSSH client's attempt and audited; forwarding and SFTP follow the
certificate and the OS user."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest
from cryptography.hazmat.primitives.serialization import SSHCertificateType

from tests.integration.sshd_fixtures import (
    ALL_PERMITS,
    SSH_BIN,
    RunningNode,
    node_access,
    running_node,
)

pytestmark = pytest.mark.skipif(SSH_BIN is None, reason="OpenSSH client `ssh` not installed")


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[RunningNode]:
    async with running_node(tmp_path) as running:
        yield running


async def _refused(node: RunningNode, cert: object, reason: str, login: str = "alice") -> None:
    result = await node.ssh(cert, "true", login=login)  # type: ignore[arg-type]
    assert result.returncode == 255, result.stderr
    # OpenSSH offers the certificate, then the bare key: each refusal is audited.
    events = await node.audit.wait_for("auth.failed")
    assert any(reason in str(e.fields["reason"]) for e in events), [e.fields for e in events]
    assert not any(e.success for e in events)
    assert all("PRIVATE" not in str(e.fields) and "BEGIN" not in str(e.fields) for e in events)
    assert node.audit.of("session.start") == []


async def test_a_valid_certificate_gets_in(node: RunningNode) -> None:
    result = await node.ssh(node.certs.issue("ok"), "true")
    assert result.returncode == 0, result.stderr


async def test_expired_certificate(node: RunningNode) -> None:
    now = node.clock.now()
    cert = node.certs.issue("old", valid_after=now - 7200, valid_before=now - 3600)
    await _refused(node, cert, "expired")


async def test_not_yet_valid_by_the_injected_clock(node: RunningNode) -> None:
    cert = node.certs.issue("soon")
    node.clock.advance(-7200)
    await _refused(node, cert, "not yet valid")


async def test_certificate_from_another_ca(node: RunningNode) -> None:
    cert = node.certs.issue("rogue", signer=node.authorities.rogue_ca)
    await _refused(node, cert, "not signed by a trusted user CA")


async def test_host_certificate_as_a_user(node: RunningNode) -> None:
    # OpenSSH's client will not even offer a host certificate for user auth; asyncssh's
    # will, so that is the client that tries.
    cert = node.certs.issue("host", cert_type=SSHCertificateType.HOST)
    with pytest.raises(asyncssh.PermissionDenied):
        await node.connect(cert)
    events = await node.audit.wait_for("auth.failed")
    assert "not a user certificate" in str(events[0].fields["reason"])
    assert node.audit.of("session.start") == []


async def test_certificate_without_principals(node: RunningNode) -> None:
    cert = node.certs.issue("any", principals=None)
    await _refused(node, cert, "no principals")


async def test_login_not_among_the_principals(node: RunningNode) -> None:
    cert = node.certs.issue("bob", principals=["bob"])
    await _refused(node, cert, "not among the certificate's principals", login="alice")


async def test_roles_that_do_not_allow_the_nodes_labels(node: RunningNode) -> None:
    cert = node.certs.issue("prod-only", access=node_access([{"env": ["prod"]}]))
    await _refused(node, cert, "node access denied")
    denied = node.certs.issue("denied", access=node_access([{"*": ["*"]}], [{"team": ["blue"]}]))
    node.audit.events.clear()
    await _refused(node, denied, "node access denied")


async def test_unknown_critical_options(node: RunningNode) -> None:
    cert = node.certs.issue("forced", critical_options={"force-command": "/bin/true"})
    await _refused(node, cert, "critical options")


async def test_plain_keys_and_passwords_are_refused(node: RunningNode) -> None:
    plain = node.certs.plain_key("plain")
    result = await node.ssh(None, "true", key=plain)
    assert result.returncode == 255
    events = await node.audit.wait_for("auth.failed")
    assert "plain public keys" in str(events[0].fields["reason"])
    password = await node.ssh(
        node.certs.issue("pw"), "true",
        options=["-o", "PreferredAuthentications=password,keyboard-interactive"],
    )  # fmt: skip
    assert password.returncode == 255


async def _echo_server() -> tuple[asyncio.AbstractServer, int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.read(100))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_port_forwarding_follows_the_certificate(node: RunningNode) -> None:
    server, port = await _echo_server()
    try:
        allowed = node.certs.issue("fwd")
        async with await node.connect(allowed) as conn:
            reader, writer = await conn.open_connection("127.0.0.1", port)
            writer.write(b"ping")
            assert await reader.read(100) == b"ping"
            writer.close()
        no_permit = tuple(p for p in ALL_PERMITS if p != "permit-port-forwarding")
        refused = node.certs.issue("nofwd", permits=no_permit)
        async with await node.connect(refused) as conn:
            with pytest.raises(asyncssh.ChannelOpenError):
                await conn.open_connection("127.0.0.1", port)
        events = await node.audit.wait_for("port_forward", count=2)
        assert [e.fields["allowed"] for e in events] == [True, False]
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another user needs root")
async def test_sftp_runs_with_the_login_users_permissions(node: RunningNode) -> None:
    root_only = node.nobody_home.parent / "root-only"
    root_only.mkdir(mode=0o755)
    cert = node.certs.issue("files")
    async with await node.connect(cert, login="nobody") as conn, conn.start_sftp_client() as sftp:
        with pytest.raises(asyncssh.SFTPPermissionDenied):
            async with sftp.open(str(root_only / "x"), "w") as f:
                await f.write("nope")
        mine = node.nobody_home / "mine.txt"
        async with sftp.open(str(mine), "w") as f:
            await f.write("hello")
    assert not (root_only / "x").exists()
    assert mine.read_text() == "hello"
    assert mine.stat().st_uid == 65534  # written by nobody, not by the root daemon
    assert await node.audit.wait_for("sftp")
