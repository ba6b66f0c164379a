"""Locks against a real auth server: the admin RPCs, what auth refuses, the stream that
carries them to nodes and proxies (followed by the production client code), and the
automatic locks that deletions and resets make."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.identity import NodeIdentity
from proto.client import AsyncAuthClient
from proto.clock import FakeClock, SystemClock
from proto.errors import AccessDenied, BadParameter, NotAuthenticated, NotFound
from proto.locks import Subject
from proto.lockwatch import LockView, watch_locks
from proto.v1 import auth_pb2 as pb
from tests.integration.conftest import add_user, audit_events, keys_under, login
from tests.integration.proxy_fixtures import proxy_for
from tests.integration.test_agent_removal import identity, renew_request
from tests.integration.test_nodes import join_node
from tests.servers import LoopThread, RunningAuth


def lock(auth: RunningAuth, ttl: int = 0, reason: str = "", **target: str) -> pb.Lock:
    with auth.admin() as admin:
        request = pb.CreateLockRequest(
            target=pb.LockTarget(**target), reason=reason, ttl_seconds=ttl
        )
        return admin.rpc.CreateLock(request).lock


def unlock(auth: RunningAuth, name: str) -> None:
    with auth.admin() as admin:
        admin.rpc.DeleteLock(pb.DeleteLockRequest(name=name))


def locks(auth: RunningAuth) -> list[pb.Lock]:
    with auth.admin() as admin:
        return list(admin.rpc.ListLocks(pb.ListLocksRequest()).locks)


def settle(auth: RunningAuth) -> None:
    """Wait until the server's lock cache (fed by a watch, on the server's loop) holds
    what the backend holds."""
    cache = auth.server.lock_cache

    def same() -> bool:
        stored = {lk.name for lk in auth.call(auth.server.locks.list)}
        return {lk.name for lk in cache.snapshot().locks} == stored

    wait_for(same, "the lock cache to catch up")


def wait_for(predicate: Callable[[], bool], what: str, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_a_user_lock_refuses_every_call_until_it_is_removed(
    auth: RunningAuth, tmp_path: Path
) -> None:
    add_user(auth, "alice")
    add_user(auth, "bob")
    alice, bob = login(auth, "alice"), login(auth, "bob")
    made = lock(auth, user="alice", reason="investigating")
    settle(auth)
    with alice, bob:
        for method, request in (
            ("GetCurrentUser", pb.GetCurrentUserRequest()),
            ("IssueUserCerts", pb.IssueUserCertsRequest(ssh_public_key="x")),
            ("ListNodes", pb.ListNodesRequest()),
        ):
            with pytest.raises(AccessDenied, match="investigating"):
                getattr(alice.rpc, method)(request)
        assert bob.rpc.GetCurrentUser(pb.GetCurrentUserRequest()).username == "bob"
        # The right password gets the lock's message; a wrong one the generic error.
        with pytest.raises(AccessDenied, match="investigating"):
            login(auth, "alice")
        with pytest.raises(NotAuthenticated, match="invalid username or password"):
            login(auth, "alice", "wrong password!!")
        session_id = alice.identity.session_id
        with proxy_for(auth, tmp_path / "proxy") as proxy, proxy.client() as web:
            me = web.get("/v1/webapi/me", headers={"Authorization": f"Bearer {session_id}"})
            assert me.status_code == 403 and "investigating" in me.text
        unlock(auth, made.name)
        settle(auth)
        assert alice.rpc.GetCurrentUser(pb.GetCurrentUserRequest()).username == "alice"
    types = [e.type for e in audit_events(auth, "lock.create", "lock.delete")]
    assert types == ["lock.create", "lock.delete"]


def test_a_locked_user_may_still_log_out(auth: RunningAuth) -> None:
    add_user(auth, "alice")
    alice = login(auth, "alice")
    lock(auth, user="alice")
    settle(auth)
    with alice:
        alice.rpc.Logout(pb.LogoutRequest())
        with pytest.raises(NotAuthenticated):
            alice.rpc.Logout(pb.LogoutRequest())


def test_a_role_lock_refuses_its_holders_only(auth: RunningAuth) -> None:
    add_user(auth, "alice", roles=("access", "auditor"))
    add_user(auth, "bob")
    lock(auth, role="auditor")
    settle(auth)
    with login(auth, "bob") as bob:
        bob.rpc.GetCurrentUser(pb.GetCurrentUserRequest())
    with pytest.raises(AccessDenied, match="role=auditor"):
        login(auth, "alice")


def test_a_lock_with_a_ttl_lapses(auth: RunningAuth, clock: FakeClock) -> None:
    add_user(auth, "alice")
    made = lock(auth, ttl=60, user="alice")
    assert made.expires == pytest.approx(clock.now() + 60, abs=1)
    settle(auth)
    with pytest.raises(AccessDenied):
        login(auth, "alice")
    clock.advance(61)
    login(auth, "alice").close()
    assert locks(auth) == []


@pytest.mark.parametrize(
    ("target", "error"),
    [
        ({}, BadParameter),
        ({"user": "alice", "role": "access"}, BadParameter),
        ({"user": "Not A Name"}, BadParameter),
        ({"login": "bad,login"}, BadParameter),
        ({"role": "../x"}, BadParameter),
        ({"agent_identity": "a b"}, BadParameter),
        ({"node": "no-such-node"}, NotFound),
        ({"login": "root", "incarnation": "ab" * 16}, BadParameter),
    ],
)
def test_bad_lock_requests_change_nothing(
    auth: RunningAuth, target: dict[str, str], error: type[Exception]
) -> None:
    before = keys_under(auth, "locks/")
    with auth.admin() as admin, pytest.raises(error):
        admin.rpc.CreateLock(pb.CreateLockRequest(target=pb.LockTarget(**target)))
    assert keys_under(auth, "locks/") == before
    assert audit_events(auth, "lock.create") == []


def test_lock_reasons_ttls_and_callers_are_checked(auth: RunningAuth, tmp_path: Path) -> None:
    add_user(auth, "alice")
    node = join_node(auth, tmp_path / "n", "web-1")
    with auth.admin() as admin:
        for request in (
            pb.CreateLockRequest(target=pb.LockTarget(user="bob"), reason="x" * 257),
            pb.CreateLockRequest(target=pb.LockTarget(user="bob"), reason="line\nbreak"),
            pb.CreateLockRequest(target=pb.LockTarget(user="bob"), ttl_seconds=-1),
            pb.CreateLockRequest(target=pb.LockTarget(user="bob"), ttl_seconds=10**9),
        ):
            with pytest.raises(BadParameter):
                admin.rpc.CreateLock(request)
        with pytest.raises(NotFound):
            admin.rpc.DeleteLock(pb.DeleteLockRequest(name="no-such-lock"))
    request = pb.CreateLockRequest(target=pb.LockTarget(user="bob"))
    with login(auth, "alice") as alice, pytest.raises(AccessDenied):
        alice.rpc.CreateLock(request)
    with auth.client(identity(node)) as agent, pytest.raises(AccessDenied):
        agent.rpc.CreateLock(request)
    assert keys_under(auth, "locks/") == []


def test_a_node_lock_names_the_node_by_id_and_hides_it(auth: RunningAuth, tmp_path: Path) -> None:
    node = join_node(auth, tmp_path / "n", "web-1")
    made = lock(auth, node="web-1")
    assert made.target.node == node.agent_id
    settle(auth)
    with auth.client(identity(node)) as agent, pytest.raises(AccessDenied, match="locked"):
        agent.rpc.RenewHostCerts(renew_request())


def test_deleting_a_user_locks_that_incarnation_only(auth: RunningAuth, clock: FakeClock) -> None:
    add_user(auth, "alice")
    with auth.admin() as admin:
        admin.rpc.DeleteUser(pb.DeleteUserRequest(name="alice"))
    (made,) = locks(auth)
    assert made.target.user == "alice" and len(made.target.incarnation) == 32
    assert made.created_by == "system"
    # As long as any certificate of hers may live: 30h, plus clock skew.
    assert made.expires == pytest.approx(clock.now() + 30 * 3600 + 300, abs=2)
    add_user(auth, "alice")
    settle(auth)
    with login(auth, "alice") as fresh:
        fresh.rpc.GetCurrentUser(pb.GetCurrentUserRequest())
    view = auth.server.lock_cache
    assert view.find(Subject("user", "alice", made.target.incarnation)) is not None


def test_a_reset_ends_the_old_incarnation_and_locks_it(auth: RunningAuth) -> None:
    add_user(auth, "alice")
    old = login(auth, "alice")
    with auth.admin() as admin:
        token = admin.rpc.ResetUser(pb.ResetUserRequest(name="alice")).invite_token
    with old, pytest.raises(NotAuthenticated):
        old.rpc.GetCurrentUser(pb.GetCurrentUserRequest())
    assert keys_under(auth, "sessions/") == []
    (made,) = locks(auth)
    assert made.target.user == "alice"
    with auth.client() as anon:
        anon.rpc.AcceptInvite(pb.AcceptInviteRequest(token=token, password="new password!!"))
    settle(auth)
    with login(auth, "alice", "new password!!") as fresh:  # the new incarnation is free
        assert fresh.rpc.GetCurrentUser(pb.GetCurrentUserRequest()).username == "alice"


def test_deleting_a_user_removes_its_sessions_and_invite_in_one_write(
    auth: RunningAuth,
) -> None:
    with auth.admin() as admin:
        admin.rpc.CreateUser(pb.CreateUserRequest(name="dora", roles=["access"]))
    add_user(auth, "alice")
    for _ in range(3):
        login(auth, "alice").close()
    assert len(keys_under(auth, "sessions/")) == 3 and len(keys_under(auth, "invites/")) == 1
    with auth.admin() as admin:
        admin.rpc.DeleteUser(pb.DeleteUserRequest(name="alice"))
        admin.rpc.DeleteUser(pb.DeleteUserRequest(name="dora"))
    assert keys_under(auth, "sessions/") == [] and keys_under(auth, "invites/") == []


# --- the stream to nodes and proxies -------------------------------------------------


class Watching:
    """The production lock stream client (proto.lockwatch), on a loop of its own."""

    def __init__(self, auth: RunningAuth, node: NodeIdentity) -> None:
        self.loop = LoopThread()
        self.view = LockView(SystemClock(), node.agent_id)

        async def start() -> tuple[asyncio.Task[None], AsyncAuthClient]:
            client = AsyncAuthClient(auth.addr, node.tls_ca_pem.encode(), identity(node))
            return asyncio.create_task(watch_locks(lambda: client, self.view)), client

        self._task, self._client = self.loop.run(start())

    def close(self) -> None:
        async def stop() -> None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            await self._client.close()

        self.loop.run(stop())
        self.loop.close()


@pytest.fixture
def watching(auth: RunningAuth, tmp_path: Path) -> Iterator[Callable[[NodeIdentity], Watching]]:
    opened: list[Watching] = []

    def open_one(node: NodeIdentity) -> Watching:
        opened.append(Watching(auth, node))
        return opened[-1]

    yield open_one
    for one in opened:
        one.close()


def test_nodes_hear_of_locks_within_seconds(
    auth: RunningAuth, tmp_path: Path, watching: Callable[[NodeIdentity], Watching]
) -> None:
    node = join_node(auth, tmp_path / "n", "web-1")
    view = watching(node).view
    wait_for(lambda: view.heard > 0, "the first lock set")
    assert view.locks.locks == () and view.locks.locking_mode == "best_effort"
    made = lock(auth, user="alice", reason="gone")
    alice = Subject("user", "alice", "ab" * 16, login="alice", node=node.agent_id)
    wait_for(lambda: view.refusal(alice) is not None, "the lock to arrive")
    assert "gone" in (view.refusal(alice) or "")
    unlock(auth, made.name)
    wait_for(lambda: view.refusal(alice) is None, "the unlock to arrive")


def test_a_locked_node_learns_of_its_own_lock(
    auth: RunningAuth, tmp_path: Path, watching: Callable[[NodeIdentity], Watching]
) -> None:
    node = join_node(auth, tmp_path / "n", "web-1")
    lock(auth, node="web-1", reason="compromised")
    settle(auth)
    view = watching(node).view
    anyone = Subject("user", "bob", "cd" * 16, login="bob", node=node.agent_id)
    wait_for(lambda: view.refusal(anyone) is not None, "the node's own lock")
    assert "compromised" in (view.refusal(anyone) or "")


def test_a_removed_node_learns_it_was_removed(
    auth: RunningAuth, tmp_path: Path, watching: Callable[[NodeIdentity], Watching]
) -> None:
    node = join_node(auth, tmp_path / "n", "web-1")
    view = watching(node).view
    wait_for(lambda: view.heard > 0, "the first lock set")
    with auth.admin() as admin:
        admin.rpc.DeleteAgent(pb.DeleteAgentRequest(id_or_name="web-1", kind="node"))
    anyone = Subject("user", "bob", "cd" * 16, login="bob", node=node.agent_id)
    wait_for(lambda: view.refusal(anyone) is not None, "the removal to reach the node")
    # The stream ended, and its reconnect is refused: auth no longer knows the node.
    wait_for(lambda: bool(view.refused), "the refused reconnect")
    assert view.refusal(anyone) == "this server has been removed from the cluster"
    (made,) = [lk for lk in locks(auth) if lk.target.node == node.agent_id]
    assert made.expires == pytest.approx(time.time() + 24 * 3600 + 300, abs=5)


def test_only_nodes_and_proxies_watch_locks(auth: RunningAuth, tmp_path: Path) -> None:
    from agent import bot
    from tests.integration.test_agent_identities import create, pin

    add_user(auth, "alice")
    ci = bot.bootstrap(tmp_path / "ci", create(auth, "ci"), auth.addr, pin(auth))
    for client in (login(auth, "alice"), auth.admin(), auth.client(ci.identity())):
        with client, pytest.raises(AccessDenied):  # PERMISSION_DENIED, as the vocabulary
            list(client.rpc.WatchLocks(pb.WatchLocksRequest()))


def test_lock_events_are_audited_with_their_target(auth: RunningAuth) -> None:
    made = lock(auth, login="root", reason="no root logins", ttl=3600)
    unlock(auth, made.name)
    created, deleted = audit_events(auth, "lock.create", "lock.delete")
    fields = json.loads(created.fields_json)
    assert fields["target"] == "login=root" and fields["reason"] == "no root logins"
    assert json.loads(deleted.fields_json)["lock"] == made.name
    assert created.user == deleted.user == auth.admin_identity().agent_id
