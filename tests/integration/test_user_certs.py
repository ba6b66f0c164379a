"""IssueUserCerts and the admin surface, against a real server."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    SSHCertificate,
    SSHCertificateType,
    load_ssh_public_identity,
)

from proto.clock import FakeClock
from proto.errors import AccessDenied, BadParameter, NotAuthenticated, NotFound
from proto.v1 import auth_pb2 as pb
from tests.integration.conftest import add_user, audit_events, keys_under, login
from tests.servers import RunningAuth, running_auth


def ssh_public(key: object) -> str:
    return (
        key.public_key()
        .public_bytes(  # type: ignore[attr-defined, no-any-return]
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        .decode()
    )


ED25519 = ssh_public(ed25519.Ed25519PrivateKey.generate())


def issue(auth: RunningAuth, user: str, key: str = ED25519, ttl: int = 0) -> SSHCertificate:
    with login(auth, user) as client:
        reply = client.rpc.IssueUserCerts(
            pb.IssueUserCertsRequest(ssh_public_key=key, ttl_seconds=ttl)
        )
    cert = load_ssh_public_identity(reply.ssh_certificate.encode())
    assert isinstance(cert, SSHCertificate)
    assert reply.host_ca_keys == [auth.server.cas.host_ssh.public_line]  # type: ignore[union-attr]
    assert reply.tls_ca_pem.encode() == auth.ca_pem
    assert reply.valid_before == cert.valid_before
    return cert


def test_certificate_for_the_roles_logins(auth: RunningAuth, clock: FakeClock) -> None:
    add_user(auth, "alice", logins=("alice", "deploy"))
    cert = issue(auth, "alice", ttl=3600)
    assert cert.type is SSHCertificateType.USER
    assert sorted(cert.valid_principals) == [b"alice", b"deploy"]
    now = int(clock.now())
    assert cert.valid_after in (now - 60, now - 61)
    assert cert.valid_before - cert.valid_after == pytest.approx(3660, abs=1)
    assert cert.critical_options == {}
    assert set(cert.extensions) == {
        b"permit-pty", b"permit-port-forwarding", b"permit-agent-forwarding",
        b"mezite-user@mezite.dev", b"mezite-roles@mezite.dev", b"mezite-node-access@mezite.dev",
        b"mezite-kind@mezite.dev", b"mezite-incarnation@mezite.dev",
    }  # fmt: skip
    assert cert.extensions[b"mezite-kind@mezite.dev"] == b"user"
    incarnation = cert.extensions[b"mezite-incarnation@mezite.dev"].decode()
    assert re.fullmatch(r"[0-9a-f]{32}", incarnation)
    assert cert.key_id == f"user=alice serial={cert.serial}".encode()
    cert.verify_cert_signature()
    ca_key = auth.server.cas.user_ssh.private_key.public_key()  # type: ignore[union-attr]
    assert cert.signature_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    ) == ca_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    event = [e for e in audit_events(auth, "cert.create") if e.user == "alice"][-1]
    fields = json.loads(event.fields_json)
    assert fields["serial"] == cert.serial and fields["principals"] == ["alice", "deploy"]
    assert fields["incarnation"] == incarnation and fields["valid_before"] == cert.valid_before
    assert "PRIVATE" not in event.fields_json


@pytest.fixture
def long_sessions(tmp_path: Path, clock: FakeClock) -> Iterator[RunningAuth]:
    """Sessions as long as certificates may be, so that only the other limits show."""
    with running_auth(tmp_path / "long", clock=clock, **{"auth.session_ttl": "30h"}) as auth:
        yield auth


def test_a_certificate_never_outlives_its_session(tmp_path: Path, clock: FakeClock) -> None:
    with running_auth(tmp_path / "short", clock=clock, **{"auth.session_ttl": "1h"}) as auth:
        add_user(auth, "alice")
        client = login(auth, "alice")
        with client:
            session_end = client.rpc.GetCurrentUser(pb.GetCurrentUserRequest()).session_expires
            for _ in range(2):
                reply = client.rpc.IssueUserCerts(
                    pb.IssueUserCertsRequest(ssh_public_key=ED25519, ttl_seconds=0),
                )
                assert reply.valid_before == int(session_end)
                clock.advance(50 * 60)  # ten minutes of the session left, then none
            with pytest.raises(NotAuthenticated):
                client.rpc.IssueUserCerts(pb.IssueUserCertsRequest(ssh_public_key=ED25519))


def _role(name: str, max_ttl: int, **options: bool) -> pb.Role:
    return pb.Role(
        name=name,
        allow=pb.RoleConditions(
            logins=["{{internal.logins}}"], node_labels={"*": pb.LabelValues(values=["*"])}
        ),
        options=pb.RoleOptions(max_session_ttl=max_ttl, **options),
    )


@pytest.mark.parametrize(
    ("role_ttl", "requested", "expected"),
    [
        (0, 0, 12 * 3600),  # default
        (0, 3600, 3600),  # the request
        (2 * 3600, 5 * 3600, 2 * 3600),  # the role
        (30 * 3600, 100 * 3600, 30 * 3600),  # the hard cap
    ],
)
def test_ttl_is_clamped(
    long_sessions: RunningAuth, role_ttl: int, requested: int, expected: int
) -> None:
    auth = long_sessions
    with auth.admin() as admin:
        admin.rpc.UpsertRole(pb.UpsertRoleRequest(role=_role("timed", role_ttl)))
    add_user(auth, "alice", roles=("timed",))
    cert = issue(auth, "alice", ttl=requested)
    assert cert.valid_before - cert.valid_after - 60 == pytest.approx(expected, abs=1)


def test_extensions_come_from_role_options_only(auth: RunningAuth) -> None:
    with auth.admin() as admin:
        admin.rpc.UpsertRole(pb.UpsertRoleRequest(role=_role("pty-only", 0, permit_pty=True)))
    add_user(auth, "alice", roles=("pty-only",))
    cert = issue(auth, "alice")
    assert set(cert.extensions) == {
        b"permit-pty", b"mezite-user@mezite.dev", b"mezite-roles@mezite.dev",
        b"mezite-node-access@mezite.dev", b"mezite-kind@mezite.dev",
        b"mezite-incarnation@mezite.dev",
    }  # fmt: skip


def test_empty_principals_are_refused(auth: RunningAuth) -> None:
    add_user(auth, "audrey", roles=("auditor",), logins=())
    before = keys_under(auth, "counters/")
    with pytest.raises(BadParameter, match="no principals"):
        issue(auth, "audrey")
    assert keys_under(auth, "counters/") == before  # no serial consumed
    failed = audit_events(auth, "cert.create.failed")
    assert [e.user for e in failed] == ["audrey"] and not failed[0].success


def test_deny_rules_remove_logins(auth: RunningAuth) -> None:
    role = _role("no-root", 0)
    role.deny.logins.append("root")
    with auth.admin() as admin:
        admin.rpc.UpsertRole(pb.UpsertRoleRequest(role=role))
    add_user(auth, "alice", roles=("no-root",), logins=("alice", "root"))
    assert issue(auth, "alice").valid_principals == [b"alice"]


def _dsa_public() -> str:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ssh_public(dsa.generate_private_key(1024))


def _bad_keys() -> dict[str, str]:
    return {
        "rsa-1024": ssh_public(rsa.generate_private_key(65537, 1024)),
        "ecdsa-p521": ssh_public(ec.generate_private_key(ec.SECP521R1())),
        "dsa": _dsa_public(),
        "garbage": "ssh-ed25519 AAAAnotbase64",
        "empty": "",
        "huge": "ssh-ed25519 " + "A" * 20000,
    }


@pytest.mark.parametrize("kind", list(_bad_keys()))
def test_rejected_key_types(auth: RunningAuth, kind: str) -> None:
    add_user(auth, "alice")
    with pytest.raises(BadParameter):
        issue(auth, "alice", key=_bad_keys()[kind])
    assert audit_events(auth, "cert.create") == []
    assert len(audit_events(auth, "cert.create.failed")) == 1


@pytest.mark.parametrize(
    "key",
    [
        ssh_public(rsa.generate_private_key(65537, 2048)),
        ssh_public(ec.generate_private_key(ec.SECP256R1())),
        ssh_public(ec.generate_private_key(ec.SECP384R1())),
    ],
    ids=["rsa-2048", "ecdsa-p256", "ecdsa-p384"],
)
def test_accepted_key_types(auth: RunningAuth, key: str) -> None:
    add_user(auth, "alice")
    assert issue(auth, "alice", key=key).valid_principals == [b"alice"]


def test_a_certificate_line_cannot_be_certified(auth: RunningAuth) -> None:
    add_user(auth, "alice")
    with login(auth, "alice") as client:
        cert_line = client.rpc.IssueUserCerts(
            pb.IssueUserCertsRequest(ssh_public_key=ED25519)
        ).ssh_certificate
        with pytest.raises(BadParameter, match="certificate"):
            client.rpc.IssueUserCerts(pb.IssueUserCertsRequest(ssh_public_key=cert_line))


def test_serials_stay_unique_across_restarts(tmp_path: Path, clock: FakeClock) -> None:
    serials: list[int] = []
    for _ in range(2):
        with running_auth(tmp_path / "data", clock=clock) as auth:
            if not keys_under(auth, "users/"):
                add_user(auth, "alice")
            serials += [issue(auth, "alice").serial for _ in range(3)]
    assert len(set(serials)) == 6


@pytest.mark.parametrize(
    ("method", "request_msg"),
    [
        ("CreateUser", pb.CreateUserRequest(name="eve2", roles=["admin"], password="p" * 12)),
        ("ListUsers", pb.ListUsersRequest()),
        ("ResetUser", pb.ResetUserRequest(name="alice")),
        ("DeleteUser", pb.DeleteUserRequest(name="alice")),
        ("UpsertRole", pb.UpsertRoleRequest(role=pb.Role(name="evil"))),
        ("CreateToken", pb.CreateTokenRequest(type="node")),
        ("GetClusterStatus", pb.GetClusterStatusRequest()),
    ],
)
def test_admin_only_rpcs_refuse_non_admins(
    auth: RunningAuth, method: str, request_msg: object
) -> None:
    add_user(auth, "alice")
    add_user(auth, "eve")
    users_before = keys_under(auth, "users/")
    roles_before = keys_under(auth, "roles/")
    with login(auth, "eve") as client, pytest.raises(AccessDenied):
        getattr(client.rpc, method)(request_msg)
    assert keys_under(auth, "users/") == users_before
    assert keys_under(auth, "roles/") == roles_before
    assert keys_under(auth, "tokens/") == []
    denied = audit_events(auth, "access.denied")
    assert [json.loads(e.fields_json)["method"] for e in denied] == [method]
    with login(auth, "alice") as still_alive:
        assert still_alive.rpc.GetCurrentUser(pb.GetCurrentUserRequest()).username == "alice"


def test_an_admin_user_administers(auth: RunningAuth) -> None:
    add_user(auth, "root-admin", roles=("admin",), logins=("ops",))
    with login(auth, "root-admin") as client:
        client.rpc.CreateUser(pb.CreateUserRequest(name="bob", roles=["access"]))
        assert {u.name for u in client.rpc.ListUsers(pb.ListUsersRequest()).users} == {
            "root-admin",
            "bob",
        }


def test_audit_search_needs_admin_or_auditor(auth: RunningAuth) -> None:
    add_user(auth, "alice")
    add_user(auth, "audrey", roles=("auditor",), logins=())
    with login(auth, "alice") as client, pytest.raises(AccessDenied):
        client.rpc.SearchAuditEvents(pb.SearchAuditEventsRequest())
    with login(auth, "audrey") as client:
        events = client.rpc.SearchAuditEvents(pb.SearchAuditEventsRequest()).events
    assert {"user.create", "user.login"} <= {e.type for e in events}


def test_users_need_existing_roles_and_valid_names(auth: RunningAuth) -> None:
    with auth.admin() as admin:
        with pytest.raises(NotFound, match="role"):
            admin.rpc.CreateUser(pb.CreateUserRequest(name="x", roles=["nope"]))
        for bad in ("", "UPPER", "a/b", "a" * 65, "-x"):
            with pytest.raises(BadParameter):
                admin.rpc.CreateUser(pb.CreateUserRequest(name=bad, roles=["access"]))
        with pytest.raises(BadParameter):
            admin.rpc.CreateUser(pb.CreateUserRequest(name="x", roles=["access"], logins=["a,b"]))
    assert keys_under(auth, "users/") == []


def test_tokens_are_stored_hashed_and_listed_without_secrets(auth: RunningAuth) -> None:
    with auth.admin() as admin:
        made = admin.rpc.CreateToken(pb.CreateTokenRequest(type="node", labels={"env": "prod"}))
        listed = admin.rpc.ListTokens(pb.ListTokensRequest()).tokens
        secret = made.token.split(".")[1]
        assert [(t.name, t.type, dict(t.labels)) for t in listed] == [
            (made.name, "node", {"env": "prod"})
        ]
        assert secret not in str(listed)
        items = auth.backend_call(lambda b: b.get_range("tokens/", "tokens0"))
        assert secret.encode() not in items[0].value
        for bad in (
            pb.CreateTokenRequest(type="root"),
            pb.CreateTokenRequest(type="node", ttl_seconds=5),
        ):
            with pytest.raises(BadParameter):
                admin.rpc.CreateToken(bad)
        admin.rpc.DeleteToken(pb.DeleteTokenRequest(name=made.name))
        with pytest.raises(NotFound):
            admin.rpc.DeleteToken(pb.DeleteTokenRequest(name=made.name))
    assert [e.type for e in audit_events(auth, "token.create", "token.delete")] == [
        "token.create",
        "token.delete",
    ]
