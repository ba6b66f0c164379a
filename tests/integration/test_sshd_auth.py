"""Certificate-only authentication on the node SSH server: every refusal, each audited
without key material, against the real OpenSSH client and asyncssh."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from asyncssh.public_key import CERT_TYPE_USER, SSHOpenSSHCertificate
from cryptography.hazmat.primitives.serialization import SSHCertificateType

from agent.sshd.users import OSUser, login_refusal
from tests.integration.sshd_fixtures import (
    SSH_BIN,
    CertFactory,
    Recorded,
    RunningNode,
    node_access,
    public_line,
    running_node,
)

pytestmark = pytest.mark.skipif(SSH_BIN is None, reason="OpenSSH client `ssh` not installed")


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[RunningNode]:
    async with running_node(tmp_path) as running:
        yield running


def _issue(**kwargs: Any) -> Callable[[CertFactory], Any]:
    return lambda certs: certs.issue("user", **kwargs)


REFUSALS: dict[str, tuple[Callable[[CertFactory], Any], str]] = {
    "expired": (
        lambda certs: certs.issue(
            "user", valid_after=certs.clock.now() - 7200, valid_before=certs.clock.now() - 60
        ),
        "certificate expired",
    ),
    "not yet valid": (
        lambda certs: certs.issue(
            "user", valid_after=certs.clock.now() + 600, valid_before=certs.clock.now() + 7200
        ),
        "certificate not yet valid",
    ),
    "wrong CA": (
        lambda certs: certs.issue("user", signer=certs.authorities.rogue_ca),
        "certificate not signed by a trusted user CA",
    ),
    "host certificate": (_issue(cert_type=SSHCertificateType.HOST), "not a user certificate"),
    "no principals": (_issue(principals=None), "certificate has no principals"),
    "login not a principal": (
        _issue(principals=("bob", "nobody")),
        "login not among the certificate's principals",
    ),
    "node labels not allowed": (
        _issue(access=node_access([{"env": ["prod"]}])),
        "node access denied by the user's roles",
    ),
    "node labels denied": (
        _issue(access=node_access([{"*": ["*"]}], [{"team": ["blue"]}])),
        "node access denied by the user's roles",
    ),
    "no node access at all": (_issue(access=""), "node access denied by the user's roles"),
    "force-command": (
        _issue(critical_options={"force-command": "/bin/true"}),
        "critical options not supported: force-command",
    ),
    "source-address": (
        _issue(critical_options={"source-address": "127.0.0.1/32"}),
        "critical options not supported: source-address",
    ),
    "no Mezite user": (_issue(user=None), "certificate names no Mezite user"),
    "unknown critical option": (
        _issue(critical_options={"verify-required": ""}),
        "critical options not supported: verify-required",
    ),
}


def test_asyncssh_alone_would_accept_what_the_node_refuses(tmp_path: Path) -> None:
    """Why the node reads certificates itself: asyncssh takes a certificate without
    principals as valid for every login, and drops extensions it does not know."""
    from proto.clock import FakeClock
    from tests.integration.sshd_fixtures import Authorities

    certs = CertFactory(Authorities(), tmp_path, FakeClock(time.time()))
    anyone = asyncssh.read_certificate(str(certs.issue("anyone", principals=None).cert_path))
    assert isinstance(anyone, SSHOpenSSHCertificate)
    anyone.validate(CERT_TYPE_USER, "root")  # no error: any login goes
    regular = asyncssh.read_certificate(str(certs.issue("regular").cert_path))
    assert isinstance(regular, SSHOpenSSHCertificate)
    assert "permit-pty" in regular.options
    assert not any(name.startswith("mezite-") for name in regular.options)
    # Unknown critical options, at least, asyncssh refuses on its own.
    with pytest.raises(asyncssh.KeyImportError):
        asyncssh.read_certificate(
            str(certs.issue("crit", critical_options={"verify-required": ""}).cert_path)
        )


def _assert_no_key_material(event: Recorded, *secrets: bytes) -> None:
    text = repr(event.fields)
    for secret in secrets:
        assert base64.b64encode(secret).decode()[:40] not in text


# OpenSSH does not offer a host certificate as a user identity (it falls back to the
# bare key); asyncssh does, so that case is covered with asyncssh below.
@pytest.mark.parametrize("case", [c for c in REFUSALS if c != "host certificate"])
async def test_openssh_refusals_are_audited(node: RunningNode, case: str) -> None:
    make, reason = REFUSALS[case]
    cert = make(node.certs)
    result = await node.ssh(cert, "true", env=node.client_env())
    assert result.returncode == 255
    assert "Permission denied" in result.stderr.decode()
    assert node.audit.of("session.start") == []
    events = await node.audit.wait_for("auth.failed")
    # OpenSSH offers the certificate, then the bare key behind it.
    assert [e.fields["reason"] for e in events][:1] == [reason]
    first = events[0]
    assert first.success is False
    assert first.fields["login"] == "alice"
    assert first.fields["remote_addr"] == "127.0.0.1"
    assert first.fields["serial"] == 101
    assert str(first.fields["key_id"]).startswith("user=")
    _assert_no_key_material(first, cert.cert_path.read_bytes().split()[1])


@pytest.mark.parametrize(
    "case", ["host certificate", "expired", "wrong CA", "no principals", "node labels denied"]
)
async def test_asyncssh_refusals(node: RunningNode, case: str) -> None:
    make, reason = REFUSALS[case]
    with pytest.raises(asyncssh.PermissionDenied):
        await node.connect(make(node.certs))
    (event, *_) = await node.audit.wait_for("auth.failed")
    assert event.fields["reason"] == reason


async def test_the_node_clock_decides_expiry(node: RunningNode) -> None:
    cert = node.certs.issue("alice")  # valid for an hour by the real clock
    assert (await node.ssh(cert, "true", env=node.client_env())).returncode == 0
    node.clock.advance(7200)
    result = await node.ssh(cert, "true", env=node.client_env())
    assert result.returncode == 255
    (event, *_) = await node.audit.wait_for("auth.failed")
    assert event.fields["reason"] == "certificate expired"


async def test_plain_public_key_is_refused(node: RunningNode) -> None:
    key = node.certs.plain_key("plain")
    result = await node.ssh(None, "true", key=key, env=node.client_env())
    assert result.returncode == 255
    (event,) = await node.audit.wait_for("auth.failed")
    assert event.fields["reason"].startswith("plain public keys are not accepted")
    assert event.fields["key_id"] == ""
    assert event.fields["serial"] is None


async def test_password_auth_is_never_offered(node: RunningNode) -> None:
    result = await node.ssh(
        None,
        "true",
        key=Path("/dev/null"),
        options=[
            "-o",
            "PreferredAuthentications=password,keyboard-interactive",
            "-o",
            "PubkeyAuthentication=no",
        ],
        env=node.client_env(),
    )
    assert result.returncode == 255
    assert "Permission denied (publickey)" in result.stderr.decode()
    (event,) = await node.audit.wait_for("auth.failed")
    assert event.fields["reason"].startswith("no certificate offered")

    with pytest.raises(asyncssh.PermissionDenied):
        await asyncssh.connect(
            "127.0.0.1",
            node.port,
            username="alice",
            password="hunter2",
            client_keys=None,
            known_hosts=None,
            agent_path=None,
            config=None,
        )
    await node.audit.wait_for("auth.failed", 2)


async def test_login_without_os_account_is_refused(node: RunningNode) -> None:
    cert = node.certs.issue("carol", principals=("carol",))
    result = await node.ssh(cert, "true", login="carol", env=node.client_env())
    assert result.returncode == 255
    (event, *_) = await node.audit.wait_for("auth.failed")
    assert event.fields["reason"] == "no OS account for this login"
    assert event.fields["login"] == "carol"


async def test_repeated_failures_close_the_connection(node: RunningNode) -> None:
    bad = node.certs.issue("bad", signer=node.authorities.rogue_ca)
    keys = bad.asyncssh_keys() * 8
    with pytest.raises((asyncssh.PermissionDenied, asyncssh.DisconnectError)):
        await asyncssh.connect(
            "127.0.0.1",
            node.port,
            username="alice",
            client_keys=keys,
            known_hosts=None,
            agent_path=None,
            config=None,
        )
    events = await node.audit.wait_for("auth.failed", 6)
    assert len(events) == 6


def test_a_daemon_not_running_as_root_only_logs_in_its_own_user() -> None:
    me = OSUser("svc", 1000, 1000, "/home/svc", "/bin/sh", (1000,))
    other = OSUser("bob", 1001, 1001, "/home/bob", "/bin/sh", (1001,))
    assert login_refusal(me, daemon_uid=1000) is None
    assert login_refusal(other, daemon_uid=1000) is not None
    assert login_refusal(other, daemon_uid=0) is None


async def test_host_certificate_is_checked_by_the_client(node: RunningNode) -> None:
    cert = node.certs.issue("alice")
    rogue_hosts = node.client_dir / "rogue_known_hosts"
    rogue_hosts.write_text(f"@cert-authority * {public_line(node.authorities.rogue_ca)}\n")
    result = await node.ssh(cert, "true", known_hosts=rogue_hosts, env=node.client_env())
    assert result.returncode == 255
    assert "Host key verification failed" in result.stderr.decode()


async def test_host_credentials_and_user_cas_renew_in_place(node: RunningNode) -> None:
    old_cert = node.certs.issue("alice")
    key, host_cert = node.authorities.host_credentials(node.clock.now())
    node.server.set_host_credentials(key, host_cert)
    async with await node.connect(old_cert) as conn:
        served = conn.get_server_host_key()
        assert served is not None
        assert served.public_data == key.convert_to_public().public_data
    assert (await node.ssh(old_cert, "true", env=node.client_env())).returncode == 0

    # The cluster rotates its user CA: the old CA's certificates stop working.
    from cryptography.hazmat.primitives.asymmetric import ed25519

    node.authorities.user_ca = ed25519.Ed25519PrivateKey.generate()
    node.server.set_user_ca_keys([public_line(node.authorities.user_ca)])
    new_cert = node.certs.issue("alice2")
    assert (await node.ssh(new_cert, "true", env=node.client_env())).returncode == 0
    result = await node.ssh(old_cert, "true", env=node.client_env())
    assert result.returncode == 255
    (event, *_) = await node.audit.wait_for("auth.failed")
    assert event.fields["reason"] == "certificate not signed by a trusted user CA"
