"""The lifecycle holes as they were found (issue 12), each replayed against a real auth
server (and its real proxy web API): a deleted thing re-created under the same name must
not bring the old credentials back, and refusing a ghost must not touch the living."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent import bot
from proto.client import ClientIdentity
from proto.errors import AccessDenied, NotAuthenticated
from proto.v1 import auth_pb2 as pb
from tests.integration.conftest import PASSWORD, add_user, login
from tests.integration.proxy_fixtures import proxy_for
from tests.integration.test_agent_identities import create, identities, pin
from tests.servers import RunningAuth

NEW_PASSWORD = "a brand new password"


def test_a_deleted_users_session_does_not_come_back_as_the_new_account(
    auth: RunningAuth, tmp_path: Path
) -> None:
    add_user(auth, "alice")
    old = login(auth, "alice")
    with auth.admin() as admin:
        admin.rpc.DeleteUser(pb.DeleteUserRequest(name="alice"))
    add_user(auth, "alice", roles=("admin",))
    with old:
        with pytest.raises(NotAuthenticated):
            old.rpc.GetCurrentUser(pb.GetCurrentUserRequest())
        with pytest.raises(NotAuthenticated):
            old.rpc.ListUsers(pb.ListUsersRequest())
    session_id = old.identity.session_id
    assert session_id is not None
    with proxy_for(auth, tmp_path / "proxy") as proxy, proxy.client() as web:
        reply = web.get("/v1/webapi/me", headers={"Authorization": f"Bearer {session_id}"})
        assert reply.status_code == 401, reply.text
    # The new account's own login is unaffected.
    with login(auth, "alice") as fresh:
        assert fresh.rpc.GetCurrentUser(pb.GetCurrentUserRequest()).roles == ["admin"]


def _invite(auth: RunningAuth, method: str, name: str, **kw: object) -> str:
    with auth.admin() as admin:
        if method == "CreateUser":
            reply = admin.rpc.CreateUser(pb.CreateUserRequest(name=name, **kw))  # type: ignore[arg-type]
        else:
            reply = admin.rpc.ResetUser(pb.ResetUserRequest(name=name))
    return str(reply.invite_token)


def _accept(auth: RunningAuth, token: str, password: str) -> pb.AcceptInviteResponse:
    with auth.client() as anon:
        return anon.rpc.AcceptInvite(pb.AcceptInviteRequest(token=token, password=password))


def _can_log_in(auth: RunningAuth, name: str, password: str) -> bool:
    try:
        login(auth, name, password).close()
    except NotAuthenticated:
        return False
    return True


def test_an_invite_is_void_once_reset_issued_a_new_one(auth: RunningAuth) -> None:
    first = _invite(auth, "CreateUser", "dora", roles=["access"], logins=["dora"])
    second = _invite(auth, "ResetUser", "dora")
    with pytest.raises(NotAuthenticated):
        _accept(auth, first, NEW_PASSWORD)
    assert not _can_log_in(auth, "dora", NEW_PASSWORD)
    assert _accept(auth, second, PASSWORD).username == "dora"
    assert _can_log_in(auth, "dora", PASSWORD)


def test_a_deleted_accounts_invite_cannot_set_the_new_accounts_password(
    auth: RunningAuth,
) -> None:
    old = _invite(auth, "CreateUser", "dora", roles=["access"], logins=["dora"])
    with auth.admin() as admin:
        admin.rpc.DeleteUser(pb.DeleteUserRequest(name="dora"))
    new = _invite(auth, "CreateUser", "dora", roles=["admin"], logins=["dora"])
    with pytest.raises(NotAuthenticated):
        _accept(auth, old, NEW_PASSWORD)
    assert not _can_log_in(auth, "dora", NEW_PASSWORD)
    # Refusing the ghost left the new account's invite alone.
    assert _accept(auth, new, PASSWORD).username == "dora"


def test_a_deleted_agent_identitys_certificate_stays_dead_when_the_name_is_reused(
    auth: RunningAuth, tmp_path: Path
) -> None:
    first = bot.bootstrap(tmp_path / "first", create(auth, "ci"), auth.addr, pin(auth))
    with auth.admin() as admin:
        admin.rpc.DeleteAgentIdentity(pb.DeleteAgentIdentityRequest(name="ci"))
    second = bot.bootstrap(tmp_path / "second", create(auth, "ci"), auth.addr, pin(auth))

    with auth.client(first.identity()) as ghost, pytest.raises(NotAuthenticated):
        ghost.rpc.ListNodes(pb.ListNodesRequest())
    # The same certificate, claiming the new incarnation's agent id, is no better.
    forged = ClientIdentity(
        agent_id=second.identity().agent_id,
        cert_pem=first.identity().cert_pem,
        key_pem=first.identity().key_pem,
    )
    with auth.client(forged) as ghost, pytest.raises(NotAuthenticated):
        ghost.rpc.ListNodes(pb.ListNodesRequest())
    with pytest.raises((NotAuthenticated, AccessDenied)):
        bot.renew(tmp_path / "first", first)

    # The ghost's renewal attempt did not lock the living identity.
    assert not identities(auth)["ci"].locked
    renewed = bot.renew(tmp_path / "second", second)
    assert renewed.generation == second.generation + 1


# --- the same shape, elsewhere ------------------------------------------------------


def test_a_deleted_identitys_bootstrap_token_cannot_bootstrap_the_new_one(
    auth: RunningAuth, tmp_path: Path
) -> None:
    old_token = create(auth, "ci")
    with auth.admin() as admin:
        admin.rpc.DeleteAgentIdentity(pb.DeleteAgentIdentityRequest(name="ci"))
    new_token = create(auth, "ci")
    with pytest.raises(NotAuthenticated):
        bot.bootstrap(tmp_path / "ghost", old_token, auth.addr, pin(auth))
    assert identities(auth)["ci"].generation == 0  # untouched by the ghost
    assert bot.bootstrap(tmp_path / "real", new_token, auth.addr, pin(auth)).generation == 1


def test_unlocking_an_identity_keeps_its_deleted_namesakes_certificates_dead(
    auth: RunningAuth, tmp_path: Path
) -> None:
    first = bot.bootstrap(tmp_path / "first", create(auth, "ci"), auth.addr, pin(auth))
    with auth.admin() as admin:
        admin.rpc.DeleteAgentIdentity(pb.DeleteAgentIdentityRequest(name="ci"))
    bot.bootstrap(tmp_path / "second", create(auth, "ci"), auth.addr, pin(auth))
    with auth.admin() as admin:
        admin.rpc.SetAgentIdentityLock(pb.SetAgentIdentityLockRequest(name="ci", locked=True))
        assert identities(auth)["ci"].locked
        admin.rpc.SetAgentIdentityLock(pb.SetAgentIdentityLockRequest(name="ci", locked=False))
        remaining = admin.rpc.ListLocks(pb.ListLocksRequest()).locks
    assert not identities(auth)["ci"].locked
    # The lock on the first incarnation (its SSH certificate) is still there.
    (kept,) = remaining
    assert kept.target.agent_identity == "ci" and kept.target.incarnation
    first_cert_incarnation = first.agent_id.rsplit(".", 1)[1]
    assert kept.target.incarnation == first_cert_incarnation


def test_a_node_joined_again_under_a_removed_nodes_name_is_not_locked(
    auth: RunningAuth, tmp_path: Path
) -> None:
    from tests.integration.test_agent_removal import identity, renew_request
    from tests.integration.test_nodes import join_node

    old = join_node(auth, tmp_path / "old", "web-1")
    with auth.admin() as admin:
        admin.rpc.DeleteAgent(pb.DeleteAgentRequest(id_or_name="web-1", kind="node"))
    new = join_node(auth, tmp_path / "new", "web-1")
    assert new.agent_id != old.agent_id
    with auth.client(identity(new)) as node:
        node.rpc.RenewHostCerts(renew_request())
    with auth.client(identity(old)) as ghost, pytest.raises(NotAuthenticated):
        ghost.rpc.RenewHostCerts(renew_request())
