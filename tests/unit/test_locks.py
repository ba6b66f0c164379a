"""The one lock matcher auth, nodes and the proxy share (proto.locks): who each kind of
lock refuses, exactly, and the wire form."""

from __future__ import annotations

import pytest

from proto.errors import BadParameter
from proto.locks import (
    Lock,
    LockSet,
    LockTarget,
    Subject,
    lock_applies,
    lock_from_proto,
    lock_set_from_proto,
    lock_to_proto,
)
from proto.v1 import auth_pb2 as pb

NOW = 1_800_000_000.0
INC_A, INC_B = "a" * 32, "b" * 32
ALICE = Subject("user", "alice", INC_A, ("access", "dev"), login="ubuntu", node="node-1")


def lock(expires: float = 0.0, created: float = NOW - 10, name: str = "l", **target: str) -> Lock:
    return Lock(name, LockTarget(**target), "why", created, "admin", expires)


@pytest.mark.parametrize(
    ("target", "refused"),
    [
        ({"user": "alice"}, True),
        ({"user": "alice", "incarnation": INC_A}, True),
        ({"user": "alice", "incarnation": INC_B}, False),  # a deleted namesake's lock
        ({"user": "Alice"}, False),  # exact match only
        ({"user": "alic"}, False),
        ({"agent_identity": "alice"}, False),  # another kind of holder
        ({"role": "dev"}, True),
        ({"role": "de"}, False),
        ({"login": "ubuntu"}, True),
        ({"login": "root"}, False),
        ({"node": "node-1"}, True),
        ({"node": "node-2"}, False),
    ],
)
def test_who_a_lock_refuses(target: dict[str, str], refused: bool) -> None:
    assert lock_applies(lock(**target), ALICE, NOW) is refused
    assert (LockSet((lock(**target),)).find(ALICE, NOW) is not None) is refused


def test_agent_identity_locks_refuse_agent_identities_only() -> None:
    bot = Subject("agent_identity", "ci", INC_A, ("access",))
    person = Subject("user", "ci", INC_A, ("access",))
    assert lock_applies(lock(agent_identity="ci"), bot, NOW)
    assert not lock_applies(lock(agent_identity="ci"), person, NOW)
    assert not lock_applies(lock(user="ci"), bot, NOW)


def test_a_node_lock_refuses_the_node_itself_and_routes_to_it() -> None:
    itself = Subject("node", "node-1")
    assert lock_applies(lock(node="node-1"), itself, NOW)
    assert not lock_applies(lock(node="node-1"), Subject("node", "node-2"), NOW)
    assert lock_applies(lock(node="node-1"), Subject("user", "bob", node="node-1"), NOW)


def test_a_lapsed_lock_refuses_no_one() -> None:
    assert lock_applies(lock(expires=NOW + 1, user="alice"), ALICE, NOW)
    assert not lock_applies(lock(expires=NOW, user="alice"), ALICE, NOW)
    assert LockSet((lock(expires=NOW - 1, user="alice"),)).in_force(NOW) == []


def test_the_oldest_matching_lock_is_reported() -> None:
    newer = lock(created=NOW - 1, name="newer", role="dev")
    older = lock(created=NOW - 100, name="older", user="alice")
    found = LockSet((newer, older)).find(ALICE, NOW)
    assert found is not None and found.name == "older"


@pytest.mark.parametrize(
    "target",
    [
        {},
        {"user": "alice", "role": "dev"},
        {"login": "root", "incarnation": INC_A},
        {"user": "has space"},
        {"user": "x" * 256},
        {"role": "tab\there"},
        {"user": "alice", "incarnation": "x" * 65},
    ],
)
def test_malformed_targets_are_refused(target: dict[str, str]) -> None:
    with pytest.raises(BadParameter):
        LockTarget(**target).validate()


def test_the_message_names_who_locked_what_and_why() -> None:
    made = lock(user="alice", incarnation=INC_A)
    assert made.message() == f"locked by admin (user=alice (incarnation {INC_A[:8]})): why"


def test_the_wire_form_names_the_same_fields() -> None:
    from dataclasses import fields

    assert [f.name for f in fields(LockTarget)] == [f.name for f in pb.LockTarget.DESCRIPTOR.fields]


def test_the_wire_form_round_trips_and_an_unknown_mode_is_strict() -> None:
    made = lock(expires=NOW + 60, agent_identity="ci", incarnation=INC_B)
    assert lock_from_proto(lock_to_proto(made)) == made
    msg = pb.WatchLocksResponse(
        locks=[lock_to_proto(made)], locking_mode="whatever", max_staleness_seconds=9
    )
    view = lock_set_from_proto(msg)
    assert view.locks == (made,) and view.locking_mode == "strict" and view.max_staleness == 9


def test_the_locked_nodes_are_those_of_node_locks_in_force() -> None:
    locks = LockSet(
        (
            lock(name="a", node="n1"),
            lock(name="b", node="n2", expires=NOW - 1),
            lock(name="c", user="alice"),
        )
    )
    assert locks.locked_nodes(NOW) == frozenset({"n1"})
