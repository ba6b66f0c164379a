"""Agent identities: bootstrap, renewal with theft detection, locks, and their separation
from node joins — against a real auth server, with mezd's own bootstrap/renew code."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import SSHCertificate, load_ssh_public_identity

from agent import bot
from proto.errors import AccessDenied, BadParameter, NotAuthenticated
from proto.keys import new_node_keys
from proto.v1 import auth_pb2 as pb
from tests.integration.conftest import audit_events
from tests.integration.test_nodes import new_token, register
from tests.servers import RunningAuth


def create(auth: RunningAuth, name: str = "ci", ttl: int = 600, **kw: object) -> str:
    request = pb.CreateAgentIdentityRequest(
        name=name,
        roles=["access"],
        logins=["ci"],
        ttl_seconds=ttl,
        **kw,  # type: ignore[arg-type]
    )
    with auth.admin() as admin:
        return str(admin.rpc.CreateAgentIdentity(request).bootstrap_token)


def pin(auth: RunningAuth) -> str:
    assert auth.server.cas is not None
    return auth.server.cas.host_x509.pin


def identities(auth: RunningAuth) -> dict[str, pb.AgentIdentity]:
    with auth.admin() as admin:
        found = admin.rpc.ListAgentIdentities(pb.ListAgentIdentitiesRequest()).identities
    return {i.name: i for i in found}


def test_bootstrap_and_renewals(auth: RunningAuth, tmp_path: Path) -> None:
    token = create(auth, ttl=600)
    state = bot.bootstrap(tmp_path / "state", token, auth.addr, pin(auth))
    assert state.generation == 1 and state.name == "ci"
    cert = load_ssh_public_identity(state.ssh_cert.encode())
    assert isinstance(cert, SSHCertificate) and cert.valid_principals == [b"ci"]
    first_ttl = cert.valid_before - time.time()
    for generation in (2, 3, 4):
        state = bot.renew(tmp_path / "state", state)
        assert state.generation == generation
        cert = load_ssh_public_identity(state.ssh_cert.encode())
        assert isinstance(cert, SSHCertificate)
        assert cert.valid_before - time.time() <= 600 + 1  # never beyond the identity's TTL
    assert first_ttl <= 601
    listed = identities(auth)["ci"]
    assert (listed.generation, listed.locked, list(listed.roles)) == (4, False, ["access"])
    types = [e.type for e in audit_events(auth) if e.type.startswith("agent_identity")]
    assert (
        types
        == ["agent_identity.create", "agent_identity.bootstrap"] + ["agent_identity.renew"] * 3
    )


def test_bootstrap_token_race_has_one_winner(auth: RunningAuth) -> None:
    token = create(auth)

    def attempt(_: int) -> str:
        keys = new_node_keys()
        try:
            with auth.client() as anon:
                anon.rpc.BootstrapAgentIdentity(pb.BootstrapAgentIdentityRequest(
                        token=token, ssh_public_key=keys.ssh_public_line,
                        tls_public_key_pem=keys.tls_public_pem,
                    ),
                )  # fmt: skip
        except NotAuthenticated:
            return "refused"
        return "won"

    with ThreadPoolExecutor(max_workers=50) as pool:
        outcomes = list(pool.map(attempt, range(50)))
    assert outcomes.count("won") == 1 and outcomes.count("refused") == 49
    assert identities(auth)["ci"].generation == 1


def test_replaying_an_old_renewal_token_locks_the_identity(
    auth: RunningAuth, tmp_path: Path
) -> None:
    old = bot.bootstrap(tmp_path / "s", create(auth), auth.addr, pin(auth))
    current = bot.renew(tmp_path / "s", old)
    # A thief replays the first generation's credentials (its TLS cert is still valid).
    with pytest.raises(NotAuthenticated):
        bot.renew(tmp_path / "thief", old)
    assert identities(auth)["ci"].locked
    (event,) = audit_events(auth, "agent_identity.generation_mismatch")
    assert json.loads(event.fields_json)["expected_generation"] == 2
    # Now the rightful holder is refused too, on every call, until an admin unlocks.
    with pytest.raises(AccessDenied, match="generation mismatch"):
        bot.renew(tmp_path / "s", current)
    with auth.client(current.identity()) as client, pytest.raises(AccessDenied):
        client.rpc.ListNodes(pb.ListNodesRequest())
    with auth.admin() as admin:
        admin.rpc.SetAgentIdentityLock(pb.SetAgentIdentityLockRequest(name="ci", locked=False))
    assert bot.renew(tmp_path / "s", current).generation == 3


def test_two_concurrent_renewals_end_with_one_success_and_a_lock(
    auth: RunningAuth, tmp_path: Path
) -> None:
    state = bot.bootstrap(tmp_path / "s", create(auth), auth.addr, pin(auth))

    def attempt(i: int) -> str:
        try:
            bot.renew(tmp_path / f"copy{i}", state)
        except NotAuthenticated:
            return "refused"
        return "renewed"

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = sorted(pool.map(attempt, range(2)))
    assert outcomes == ["refused", "renewed"]
    assert identities(auth)["ci"].locked
    assert len(audit_events(auth, "agent_identity.generation_mismatch")) == 1


def test_deleted_identity_is_refused(auth: RunningAuth, tmp_path: Path) -> None:
    state = bot.bootstrap(tmp_path / "s", create(auth), auth.addr, pin(auth))
    with auth.admin() as admin:
        admin.rpc.DeleteAgentIdentity(pb.DeleteAgentIdentityRequest(name="ci"))
    with pytest.raises(NotAuthenticated):
        bot.renew(tmp_path / "s", state)
    with auth.client(state.identity()) as client, pytest.raises(NotAuthenticated):
        client.rpc.ListNodes(pb.ListNodesRequest())
    assert "ci" not in identities(auth)


def test_tokens_do_not_cross_flows(auth: RunningAuth, tmp_path: Path) -> None:
    bootstrap_token = create(auth)
    with pytest.raises(NotAuthenticated):
        register(auth, bootstrap_token, "node-x")
    node_token = new_token(auth)
    with pytest.raises(NotAuthenticated):
        bot.bootstrap(tmp_path / "s", node_token, auth.addr, pin(auth))
    # Both still work in their own flow: neither failed attempt spent them.
    assert register(auth, node_token, "node-x").credentials.agent_id
    assert bot.bootstrap(tmp_path / "s2", bootstrap_token, auth.addr, pin(auth)).generation == 1


def test_identities_cannot_do_user_or_admin_things(auth: RunningAuth, tmp_path: Path) -> None:
    state = bot.bootstrap(tmp_path / "s", create(auth), auth.addr, pin(auth))
    with auth.client(state.identity()) as client:
        with pytest.raises(AccessDenied):
            client.rpc.ListUsers(pb.ListUsersRequest())
        with pytest.raises(AccessDenied):
            client.rpc.IssueUserCerts(pb.IssueUserCertsRequest(ssh_public_key="x"))
        assert client.rpc.ListNodes(pb.ListNodesRequest()).nodes == []


def test_create_refuses_identities_without_logins(auth: RunningAuth) -> None:
    with auth.admin() as admin, pytest.raises(BadParameter, match="no logins"):
        admin.rpc.CreateAgentIdentity(
            pb.CreateAgentIdentityRequest(name="nologin", roles=["access"])
        )
    assert "nologin" not in identities(auth)


def test_exclusive_state_lock(tmp_path: Path) -> None:
    with (
        bot.exclusive(tmp_path / "s"),
        pytest.raises(AccessDenied, match="another"),
        bot.exclusive(tmp_path / "s"),
    ):
        pass


def test_a_bootstrap_whose_reply_was_lost_is_answered_again(
    auth: RunningAuth, tmp_path: Path
) -> None:
    """auth committed the bootstrap, the reply never arrived: the same command, which
    kept its keys, is answered again (a new renewal token) instead of refused; other keys,
    or the same bootstrap after a renewal, are refused."""
    from dataclasses import asdict

    from proto.keys import NodeKeys, TLSKey, new_tls_key
    from proto.lifecycle import JoinKeys

    token = create(auth)
    state_dir = tmp_path / "state"
    kept = JoinKeys(state_dir, "bootstrap").get(
        lambda: {"node": asdict(new_node_keys()), "svid": asdict(new_tls_key())}
    )
    keys, svid = NodeKeys(**kept["node"]), TLSKey(**kept["svid"])
    with auth.client() as anon:
        anon.rpc.BootstrapAgentIdentity(pb.BootstrapAgentIdentityRequest(
            token=token, ssh_public_key=keys.ssh_public_line,
            tls_public_key_pem=keys.tls_public_pem, svid_public_key_pem=svid.public_pem,
        ))  # the reply is lost  # fmt: skip
        other = new_node_keys()
        with pytest.raises(NotAuthenticated):
            anon.rpc.BootstrapAgentIdentity(pb.BootstrapAgentIdentityRequest(
                token=token, ssh_public_key=other.ssh_public_line,
                tls_public_key_pem=other.tls_public_pem))  # fmt: skip
    state = bot.bootstrap(state_dir, token, auth.addr, pin(auth))
    assert state.generation == 1 and not (state_dir / "join-keys.json").exists()
    renewed = bot.renew(state_dir, state)  # the answer's renewal token is the live one
    assert renewed.generation == 2 and not identities(auth)["ci"].locked
    with pytest.raises(NotAuthenticated):
        bot.bootstrap(tmp_path / "again", token, auth.addr, pin(auth))
    retried = [json.loads(e.fields_json).get("retry") for e in audit_events(auth)
               if e.type == "agent_identity.bootstrap" and e.success]  # fmt: skip
    assert sorted(retried) == [False, True]
