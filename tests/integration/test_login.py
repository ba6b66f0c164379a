"""AuthenticateLocal, sessions, lockout, invites and rate limits against a real server.

Every refusal is checked to change nothing and to be audited."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from proto.client import ClientIdentity
from proto.clock import FakeClock
from proto.errors import LimitExceeded, NotAuthenticated
from proto.v1 import auth_pb2 as pb
from tests.integration.conftest import (
    PASSWORD,
    add_user,
    audit_events,
    keys_under,
    login,
)
from tests.servers import RunningAuth, running_auth


def _auth_local(auth: RunningAuth, name: str, password: str) -> pb.AuthenticateLocalResponse:
    with auth.client() as anon:
        return anon.rpc.AuthenticateLocal(
            pb.AuthenticateLocalRequest(username=name, password=password)
        )


def test_login_returns_a_session_that_identifies_the_user(auth: RunningAuth) -> None:
    add_user(auth, "alice")
    reply = _auth_local(auth, "alice", PASSWORD)
    assert len(reply.session_id) >= 22  # >= 128 bits, url-safe base64
    assert reply.expires == pytest.approx(auth.server.clock.now() + 12 * 3600, abs=5)
    with auth.client(ClientIdentity(session_id=reply.session_id)) as client:
        me = client.rpc.GetCurrentUser(pb.GetCurrentUserRequest())
    assert (me.username, list(me.roles), list(me.logins)) == ("alice", ["access"], ["alice"])
    login_events = [e for e in audit_events(auth, "user.login") if e.user == "alice"]
    assert len(login_events) == 1


def test_session_ids_are_stored_only_as_hashes(auth: RunningAuth) -> None:
    add_user(auth, "alice")
    session_id = _auth_local(auth, "alice", PASSWORD).session_id
    items = auth.backend_call(lambda b: b.get_range("", "\U0010ffff"))
    assert items
    for item in items:
        assert session_id not in item.key and session_id.encode() not in item.value
    for event in audit_events(auth):
        assert session_id not in event.fields_json


def test_unknown_user_and_wrong_password_get_the_same_error(auth: RunningAuth) -> None:
    add_user(auth, "alice")
    with pytest.raises(NotAuthenticated) as unknown:
        _auth_local(auth, "mallory", PASSWORD)
    with pytest.raises(NotAuthenticated) as wrong:
        _auth_local(auth, "alice", "not the password")
    assert unknown.value.message == wrong.value.message == "invalid username or password"
    assert keys_under(auth, "sessions/") == []
    failed = audit_events(auth, "user.login.failed")
    assert [e.user for e in failed] == ["mallory", "alice"]
    assert all(not e.success for e in failed)
    assert all("not the password" not in e.fields_json for e in failed)


def test_unknown_user_is_verified_against_a_dummy_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from argon2 import PasswordHasher

    from server.auth.crypto import passwords

    seen: list[str] = []

    class Spy(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> bool:
            seen.append(str(hash))
            return super().verify(hash, password)

    monkeypatch.setattr(passwords, "_hasher", Spy())
    assert asyncio.run(passwords.verify_password(None, "whatever-password")) is False
    assert seen == [passwords._DUMMY_HASH]


def test_lockout_after_five_failures_and_its_end(auth: RunningAuth, clock: FakeClock) -> None:
    add_user(auth, "alice")
    for _ in range(5):
        with pytest.raises(NotAuthenticated):
            _auth_local(auth, "alice", "wrong password!")
    # Locked: the right password gets the same error, and no session is made.
    with pytest.raises(NotAuthenticated, match="invalid username or password"):
        _auth_local(auth, "alice", PASSWORD)
    assert keys_under(auth, "sessions/") == []
    reasons = [json.loads(e.fields_json)["reason"] for e in audit_events(auth, "user.login.failed")]
    assert reasons[4] == "bad credentials; account now locked"
    assert reasons[5] == "locked"
    clock.advance(29 * 60)
    with pytest.raises(NotAuthenticated):
        _auth_local(auth, "alice", PASSWORD)
    clock.advance(2 * 60)
    assert _auth_local(auth, "alice", PASSWORD).session_id


def test_failures_spread_beyond_the_window_do_not_lock(auth: RunningAuth, clock: FakeClock) -> None:
    add_user(auth, "alice")
    for _ in range(4):
        with pytest.raises(NotAuthenticated):
            _auth_local(auth, "alice", "wrong password!")
    clock.advance(31 * 60)
    with pytest.raises(NotAuthenticated):
        _auth_local(auth, "alice", "wrong password!")
    assert _auth_local(auth, "alice", PASSWORD).session_id


def test_lockout_is_configurable(tmp_path: Path, clock: FakeClock) -> None:
    with running_auth(tmp_path / "d", clock=clock, **{"auth.lockout_attempts": 2}) as auth:
        add_user(auth, "alice")
        for _ in range(2):
            with pytest.raises(NotAuthenticated):
                _auth_local(auth, "alice", "wrong password!")
        with pytest.raises(NotAuthenticated):
            _auth_local(auth, "alice", PASSWORD)


def test_unauthenticated_calls_are_rate_limited_per_peer(tmp_path: Path, clock: FakeClock) -> None:
    with running_auth(tmp_path / "d", clock=clock, **{"auth.rate_limit_per_minute": 5}) as auth:
        add_user(auth, "alice")
        with auth.client() as anon:
            for _ in range(5):
                anon.rpc.Ping(pb.PingRequest())
            with pytest.raises(LimitExceeded):
                anon.rpc.AuthenticateLocal(
                    pb.AuthenticateLocalRequest(username="alice", password=PASSWORD),
                )
        assert keys_under(auth, "sessions/") == []
        clock.advance(60)
        assert _auth_local(auth, "alice", PASSWORD).session_id
        # Authenticated calls are not limited by it.
        with auth.admin() as admin:
            for _ in range(10):
                admin.rpc.ListUsers(pb.ListUsersRequest())


def test_a_rate_limited_first_contact_says_so(tmp_path: Path, clock: FakeClock) -> None:
    # `mez login` / `mezd join` fetch the CA first (grpclib, before any trust): the
    # limit's refusal is named as one, not as "did not answer as a Mezite auth service".
    from proto.bootstrap import fetch_ca_by_pin, fetch_unverified_ca

    with running_auth(tmp_path / "d", clock=clock, **{"auth.rate_limit_per_minute": 3}) as auth:
        _, pin = fetch_unverified_ca(auth.addr)
        for _ in range(2):
            fetch_ca_by_pin(auth.addr, pin)
        with pytest.raises(LimitExceeded) as refused:
            fetch_ca_by_pin(auth.addr, pin)
        assert refused.value.message == (
            f"the auth service at {auth.addr} refused the call: too many requests from this address"
        )
        assert "wait a minute" in (refused.value.hint or "")
        clock.advance(60)
        assert fetch_ca_by_pin(auth.addr, pin).startswith("-----BEGIN CERTIFICATE-----")


def test_logout_kills_the_session(auth: RunningAuth) -> None:
    add_user(auth, "alice")
    client = login(auth, "alice")
    with client:
        client.rpc.Logout(pb.LogoutRequest())
        with pytest.raises(NotAuthenticated):
            client.rpc.GetCurrentUser(pb.GetCurrentUserRequest())
        with pytest.raises(NotAuthenticated):
            client.rpc.Logout(pb.LogoutRequest())
    assert keys_under(auth, "sessions/") == []
    assert [e.user for e in audit_events(auth, "session.logout")] == ["alice"]
    denied = audit_events(auth, "access.denied")
    assert [json.loads(e.fields_json)["method"] for e in denied] == ["GetCurrentUser", "Logout"]


def test_sessions_expire(auth: RunningAuth, clock: FakeClock) -> None:
    add_user(auth, "alice")
    with login(auth, "alice") as client:
        clock.advance(12 * 3600 + 1)
        with pytest.raises(NotAuthenticated, match="expired"):
            client.rpc.GetCurrentUser(pb.GetCurrentUserRequest())


@pytest.mark.parametrize("action", ["DeleteUser", "ResetUser"])
def test_deleting_or_resetting_a_user_kills_its_sessions(auth: RunningAuth, action: str) -> None:
    add_user(auth, "alice")
    add_user(auth, "bob")
    alice, bob = login(auth, "alice"), login(auth, "bob")
    request_cls = getattr(pb, f"{action}Request")
    with auth.admin() as admin:
        getattr(admin.rpc, action)(request_cls(name="alice"))
    with alice, pytest.raises(NotAuthenticated):
        alice.rpc.GetCurrentUser(pb.GetCurrentUserRequest())
    with bob:
        assert bob.rpc.GetCurrentUser(pb.GetCurrentUserRequest()).username == "bob"
    with pytest.raises(NotAuthenticated):
        _auth_local(auth, "alice", PASSWORD)


def test_invite_sets_the_password_once(auth: RunningAuth) -> None:
    with auth.admin() as admin:
        reply = admin.rpc.CreateUser(
            pb.CreateUserRequest(name="carol", roles=["access"], logins=["carol"])
        )
    token = reply.invite_token
    assert token and reply.invite_expires > auth.server.clock.now()
    with pytest.raises(NotAuthenticated):
        _auth_local(auth, "carol", PASSWORD)
    with auth.client() as anon:
        anon.rpc.AcceptInvite(pb.AcceptInviteRequest(token=token, password=PASSWORD))
        with pytest.raises(NotAuthenticated, match="invite"):
            anon.rpc.AcceptInvite(pb.AcceptInviteRequest(token=token, password="x" * 12))
    assert _auth_local(auth, "carol", PASSWORD).session_id
    assert keys_under(auth, "invites/") == []


def test_invites_expire_and_bad_ones_change_nothing(auth: RunningAuth, clock: FakeClock) -> None:
    with auth.admin() as admin:
        token = admin.rpc.CreateUser(
            pb.CreateUserRequest(name="dave", roles=["access"], logins=["dave"])
        ).invite_token
    name, secret = token.split(".")
    forged = f"{name}.{'A' * len(secret)}"
    with auth.client() as anon:
        for bad in (forged, "garbage", ""):
            with pytest.raises(NotAuthenticated):
                anon.rpc.AcceptInvite(pb.AcceptInviteRequest(token=bad, password=PASSWORD))
        assert keys_under(auth, "invites/") == [f"invites/{name}"]  # the forgery used nothing
        clock.advance(3601)
        with pytest.raises(NotAuthenticated):
            anon.rpc.AcceptInvite(pb.AcceptInviteRequest(token=token, password=PASSWORD))
    failures = [e for e in audit_events(auth, "user.password_change") if not e.success]
    assert len(failures) == 4


def test_passwords_are_bounded(auth: RunningAuth) -> None:
    from proto.errors import BadParameter

    with auth.admin() as admin:
        for bad in ("short", "x" * 257, "with\nnewline"):
            with pytest.raises(BadParameter):
                admin.rpc.CreateUser(
                    pb.CreateUserRequest(name="erin", roles=["access"], password=bad),
                )
    assert keys_under(auth, "users/") == []
    # An oversized login attempt is refused like any wrong password, cheaply.
    add_user(auth, "frank")
    with pytest.raises(NotAuthenticated):
        _auth_local(auth, "frank", PASSWORD + "x" * 100_000)


def _stored_hash(auth: RunningAuth, name: str) -> str:
    from server.auth.stores.users import UserStore

    user = auth.backend_call(lambda backend: UserStore(backend).get(name))
    assert user.password_hash is not None
    return user.password_hash


def test_a_hash_from_older_parameters_is_upgraded_by_the_login_that_proves_it(
    auth: RunningAuth,
) -> None:
    """Hashes made by an earlier release (argon2-cffi's RFC 9106 profile: 64 MiB, t=3,
    p=4) still verify; a right password stores it again under today's parameters, a
    wrong one changes nothing, and a password today's rules would refuse is kept."""
    from dataclasses import replace

    from argon2 import PasswordHasher

    from server.auth.crypto import passwords
    from server.auth.stores.users import UserStore

    add_user(auth, "olive")
    old = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=4).hash("short7!")

    async def seed(backend: object) -> None:
        store = UserStore(backend)  # type: ignore[arg-type]
        item, user = await store.get_item("olive")
        await store.replace(item, replace(user, password_hash=old))

    auth.backend_call(seed)
    with pytest.raises(NotAuthenticated):
        _auth_local(auth, "olive", "wrong password")
    assert _stored_hash(auth, "olive") == old
    assert _auth_local(auth, "olive", "short7!").session_id
    upgraded = _stored_hash(auth, "olive")
    assert upgraded != old and upgraded.startswith(
        f"$argon2id$v=19$m={passwords.MEMORY_KIB},t={passwords.TIME_COST},"
        f"p={passwords.PARALLELISM}$"
    )
    assert not passwords.needs_rehash(upgraded)
    assert _auth_local(auth, "olive", "short7!").session_id  # the same password, again
    assert _stored_hash(auth, "olive") == upgraded  # nothing more to do
    with pytest.raises(NotAuthenticated):
        _auth_local(auth, "olive", "wrong password")
