"""Locks on the node SSH server, against the real OpenSSH client: new logins refused with
the reason shown, live sessions ended with a message, the node's own lock and removal,
the locking mode for a stale view, and the copy on disk that outlives a restart."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from proto.clock import FakeClock
from proto.locks import Lock, LockSet, LockTarget, Subject
from proto.lockwatch import LockView
from tests.integration.sshd_fixtures import (
    ALICE_INCARNATION,
    HOST_ID,
    SSH_BIN,
    RunningNode,
    running_node,
)

pytestmark = pytest.mark.skipif(SSH_BIN is None, reason="OpenSSH client `ssh` not installed")


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[RunningNode]:
    async with running_node(tmp_path) as running:
        yield running


def a_lock(reason: str = "under investigation", **target: str) -> Lock:
    return Lock(
        name=f"lock-{sorted(target.items())}",
        target=LockTarget(**target),
        reason=reason,
        created=time.time(),
        created_by="admin",
    )


def impose(node: RunningNode, *locks: Lock, mode: str = "best_effort", stale: float = 300) -> None:
    node.locks.update(LockSet(tuple(locks), locking_mode=mode, max_staleness=stale))


LOCKS_FOR_ALICE = {
    "user": {"user": "alice@example.com"},
    "that incarnation": {"user": "alice@example.com", "incarnation": ALICE_INCARNATION},
    "role": {"role": "access"},
    "login": {"login": "alice"},
    "this node": {"node": HOST_ID},
}


@pytest.mark.parametrize("target", LOCKS_FOR_ALICE.values(), ids=LOCKS_FOR_ALICE.keys())
async def test_a_lock_refuses_a_new_login_and_says_why(
    node: RunningNode, target: dict[str, str]
) -> None:
    cert = node.certs.issue("alice")
    impose(node, a_lock(**target))
    result = await node.ssh(cert, "true")
    assert result.returncode == 255
    assert "mezd: access denied: locked by admin" in result.stderr.decode()
    assert "under investigation" in result.stderr.decode()
    await node.audit.wait_for("auth.failed")
    reasons = [e.fields["reason"] for e in node.audit.of("auth.failed")]
    assert any(r.startswith("locked: locked by admin") for r in reasons), reasons
    assert node.audit.of("session.start") == []


UNRELATED = {
    "another user": {"user": "bob@example.com"},
    "another incarnation": {"user": "alice@example.com", "incarnation": "b2" * 16},
    "an agent identity of the name": {"agent_identity": "alice@example.com"},
    "another login": {"login": "root"},
    "another role": {"role": "auditor"},
    "another node": {"node": "some-other-node"},
}


@pytest.mark.parametrize("target", UNRELATED.values(), ids=UNRELATED.keys())
async def test_a_lock_on_someone_else_lets_alice_in(
    node: RunningNode, target: dict[str, str]
) -> None:
    impose(node, a_lock(**target))
    result = await node.ssh(node.certs.issue("alice"), "echo in")
    assert (result.returncode, result.out) == (0, "in\n"), result.stderr


async def test_an_agent_identity_lock_refuses_its_certificates_not_a_user_of_the_name(
    node: RunningNode,
) -> None:
    impose(node, a_lock(agent_identity="ci"))
    bot = node.certs.issue("bot", user="ci", kind="agent_identity")
    person = node.certs.issue("person", user="ci", kind="user")
    assert (await node.ssh(bot, "true")).returncode == 255
    assert (await node.ssh(person, "true")).returncode == 0


async def test_a_login_lock_refuses_that_login_only(node: RunningNode) -> None:
    cert = node.certs.issue("alice")
    impose(node, a_lock(login="nobody"))
    assert (await node.ssh(cert, "true", login="nobody")).returncode == 255
    assert (await node.ssh(cert, "true", login="alice")).returncode == 0


@pytest.mark.parametrize(
    ("kind", "incarnation", "reason"),
    [
        (None, ALICE_INCARNATION, "names no Mezite user kind"),
        ("robot", ALICE_INCARNATION, "names no Mezite user kind"),
        ("user", None, "names no incarnation"),
    ],
)
async def test_a_certificate_that_locks_cannot_place_is_refused(
    node: RunningNode, kind: str | None, incarnation: str | None, reason: str
) -> None:
    cert = node.certs.issue("old", kind=kind, incarnation=incarnation)
    assert (await node.ssh(cert, "true")).returncode == 255
    await node.audit.wait_for("auth.failed")
    reasons = [e.fields["reason"] for e in node.audit.of("auth.failed")]
    assert any(reason in r for r in reasons), reasons


async def _live_session(node: RunningNode) -> asyncio.subprocess.Process:
    """An interactive session (a PTY) that stays up until something ends it."""
    assert SSH_BIN is not None
    cert = node.certs.issue("live")
    proc = await asyncio.create_subprocess_exec(
        SSH_BIN, "-tt", *node.ssh_options(cert), "-p", str(node.port), "alice@127.0.0.1",
        "echo up; sleep 60",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 15)
    assert b"up" in line
    return proc


async def _ended(proc: asyncio.subprocess.Process, within: float = 5.0) -> tuple[int, str]:
    out, err = await asyncio.wait_for(proc.communicate(), within)
    assert proc.returncode is not None
    return proc.returncode, (out + err).decode(errors="replace")


async def test_a_new_lock_ends_a_live_session_with_a_message(node: RunningNode) -> None:
    proc = await _live_session(node)
    impose(node, a_lock(user="alice@example.com", reason="credentials leaked"))
    code, output = await _ended(proc)
    assert code == 255
    assert "mezd: session ended: locked by admin" in output and "credentials leaked" in output
    (ended,) = await node.audit.wait_for("session.terminated")
    assert ended.user == "alice@example.com" and not ended.success
    assert "credentials leaked" in ended.fields["reason"]
    # Other connections of other users are untouched: a fresh login of bob still works.
    bob = node.certs.issue("bob", user="bob@example.com")
    assert (await node.ssh(bob, "true")).returncode == 0


async def test_removal_of_the_node_ends_every_session(node: RunningNode) -> None:
    proc = await _live_session(node)
    node.locks.refuse_self("unknown, removed or mismatched agent identity")
    code, output = await _ended(proc)
    assert code == 255 and "removed from the cluster" in output
    result = await node.ssh(node.certs.issue("again"), "true")
    assert result.returncode == 255 and "removed from the cluster" in result.stderr.decode()
    # Auth accepting the node again (and sending a set without its lock) lets users in.
    impose(node)
    assert (await node.ssh(node.certs.issue("after"), "true")).returncode == 0


async def test_strict_mode_refuses_everyone_once_the_view_is_stale(node: RunningNode) -> None:
    impose(node, mode="strict", stale=30)
    proc = await _live_session(node)
    node.clock.advance(31)
    code, output = await _ended(proc)  # the periodic check ends it: no message came
    assert code == 255 and "locking mode is strict" in output
    result = await node.ssh(node.certs.issue("late"), "true")
    assert result.returncode == 255 and "out of date" in result.stderr.decode()
    impose(node, mode="strict", stale=30)  # auth is heard from again
    assert (await node.ssh(node.certs.issue("fresh"), "true")).returncode == 0


async def test_best_effort_mode_keeps_known_locks_and_lets_others_in(node: RunningNode) -> None:
    impose(node, a_lock(login="nobody"), stale=30)
    cert = node.certs.issue("alice")
    node.clock.advance(120)
    assert (await node.ssh(cert, "true", login="alice")).returncode == 0
    assert (await node.ssh(cert, "true", login="nobody")).returncode == 255


async def test_a_lock_that_lapses_lets_the_user_in_again(node: RunningNode) -> None:
    lapsing = Lock("l", LockTarget(user="alice@example.com"), "", time.time(), "admin",
                   expires=node.clock.now() + 60)  # fmt: skip
    impose(node, lapsing)
    cert = node.certs.issue("alice")
    assert (await node.ssh(cert, "true")).returncode == 255
    node.clock.advance(61)
    assert (await node.ssh(cert, "true")).returncode == 0


def test_the_view_on_disk_outlives_a_restart(tmp_path: Path) -> None:
    clock = FakeClock(time.time())
    path = tmp_path / "locks.json"
    view = LockView(clock, "node-1", path)
    view.update(LockSet((a_lock(user="alice"),), locking_mode="strict", max_staleness=60))
    assert path.stat().st_mode & 0o777 == 0o600
    alice = Subject("user", "alice", "ab" * 16, login="alice", node="node-1")
    bob = Subject("user", "bob", "cd" * 16, login="bob", node="node-1")
    again = LockView(clock, "node-1", path)  # a restart, auth away
    assert again.refusal(alice) is not None and again.refusal(bob) is None
    clock.advance(61)  # still away, past the staleness limit: strict refuses all
    assert "strict" in (LockView(clock, "node-1", path).refusal(bob) or "")
    again.refuse_self("removed")
    assert LockView(clock, "node-1", path).refusal(bob) == (
        "this server has been removed from the cluster"
    )


@pytest.mark.parametrize("content", ["{not json", '{"locks": [{"name": 1}]}', ""])
def test_an_unreadable_view_on_disk_is_ignored_and_said(
    tmp_path: Path, content: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "locks.json"
    path.write_text(content)
    view = LockView(FakeClock(time.time()), "node-1", path)
    assert view.locks.locks == () and view.heard == 0.0
    assert "ignoring unreadable lock list" in caplog.text


def test_a_view_that_cannot_be_saved_still_enforces(tmp_path: Path) -> None:
    missing = tmp_path / "gone" / "locks.json"  # its directory does not exist
    view = LockView(FakeClock(time.time()), "node-1", missing)
    view.update(LockSet((a_lock(user="alice"),)))
    assert view.refusal(Subject("user", "alice", "ab" * 16, node="node-1")) is not None
    assert not missing.exists()
    assert json.dumps(view.locks.locks[0].target.describe()) == '"user=alice"'
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_keepalives_reach_the_disk_at_most_once_a_minute(tmp_path: Path) -> None:
    clock = FakeClock(time.time())
    path = tmp_path / "locks.json"
    view = LockView(clock, "node-1", path)
    unchanged = LockSet((a_lock(user="alice"),))
    view.update(unchanged)
    first = json.loads(path.read_text())["heard"]
    clock.advance(30)
    view.update(unchanged)
    assert json.loads(path.read_text())["heard"] == first
    clock.advance(31)
    view.update(unchanged)
    assert json.loads(path.read_text())["heard"] == clock.now()
