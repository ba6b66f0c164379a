"""The behaviour every storage backend must show, written once.

A backend's test module subclasses ``BackendComplianceSuite`` (as ``TestXxx`` so pytest
collects it) and implements ``make_backend``; ``reopen_backend`` is optional and enables
the persistence tests. Every test gets a fresh, empty store and a ``FakeClock``.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import TypeVar

import pytest

from proto.clock import Clock, FakeClock
from proto.errors import (
    AlreadyExists,
    BadParameter,
    CompareFailed,
    ConnectionProblem,
    LimitExceeded,
    MeziteError,
    NotFound,
)
from server.backend import (
    KEYSPACE_END,
    MAX_ATOMIC_OPS,
    MAX_KEY_BYTES,
    MAX_VALUE_BYTES,
    Backend,
    Condition,
    Delete,
    DeleteRange,
    Event,
    EventType,
    Item,
    Put,
    Watcher,
    prefix_range,
)

EVENT_TIMEOUT = 5.0
RACERS = 50


async def next_event(watcher: Watcher) -> Event:
    return await asyncio.wait_for(anext(watcher), EVENT_TIMEOUT)


async def established(backend: Backend, prefixes: list[str] | None = None) -> Watcher:
    """A watcher whose INIT has been consumed."""
    watcher = backend.watch(prefixes or [])
    assert (await next_event(watcher)).type is EventType.INIT
    return watcher


async def assert_next_is_marker(backend: Backend, watcher: Watcher) -> None:
    """Nothing was emitted before this point: the next event is a fresh marker write."""
    marker = await backend.put(Item("zz-marker", b"m"))
    event = await next_event(watcher)
    assert (event.type, event.item.key, event.item.revision) == (
        EventType.PUT,
        marker.key,
        marker.revision,
    )


async def all_items(backend: Backend) -> list[Item]:
    return await backend.get_range(*prefix_range(""))


T = TypeVar("T")


def split_outcomes(results: Sequence[T | BaseException]) -> tuple[list[T], list[BaseException]]:
    """Results of ``gather(..., return_exceptions=True)`` as (successes, exceptions)."""
    wins = [r for r in results if not isinstance(r, BaseException)]
    losses = [r for r in results if isinstance(r, BaseException)]
    return wins, losses


class BackendComplianceSuite(abc.ABC):
    @abc.abstractmethod
    async def make_backend(self, clock: Clock) -> Backend:
        """A ready backend over fresh, empty storage private to this test."""

    async def reopen_backend(self, clock: Clock) -> Backend:
        """A new backend over the same storage ``make_backend`` returned; override to
        enable the persistence tests."""
        pytest.skip("backend does not implement reopen_backend")

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    async def backend(self, clock: FakeClock) -> AsyncIterator[Backend]:
        store = await self.make_backend(clock)
        try:
            yield store
        finally:
            await store.close()

    # --- basic reads and writes

    async def test_put_then_get(self, backend: Backend) -> None:
        stored = await backend.put(Item("users/alice", b"v1", expires=None, revision=999))
        assert (stored.key, stored.value, stored.expires) == ("users/alice", b"v1", None)
        assert stored.revision > 0
        assert await backend.get("users/alice") == stored

    async def test_put_overwrites_and_keeps_expiry(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        await backend.put(Item("k", b"old"))
        stored = await backend.put(Item("k", b"new", expires=clock.now() + 60))
        assert await backend.get("k") == stored
        assert stored.expires == clock.now() + 60

    async def test_get_missing(self, backend: Backend) -> None:
        with pytest.raises(NotFound):
            await backend.get("nope")

    async def test_create(self, backend: Backend) -> None:
        created = await backend.create(Item("k", b"v"))
        with pytest.raises(AlreadyExists):
            await backend.create(Item("k", b"other"))
        assert await backend.get("k") == created

    async def test_create_race_has_one_winner(self, backend: Backend) -> None:
        results = await asyncio.gather(
            *(backend.create(Item("k", str(i).encode())) for i in range(RACERS)),
            return_exceptions=True,
        )
        wins, losses = split_outcomes(results)
        assert len(wins) == 1
        assert all(isinstance(exc, AlreadyExists) for exc in losses)
        assert await backend.get("k") == wins[0]

    async def test_update(self, backend: Backend) -> None:
        first = await backend.put(Item("k", b"v1"))
        second = await backend.update(Item("k", b"v2"))
        assert second.value == b"v2"
        assert second.revision > first.revision
        assert await backend.get("k") == second

    async def test_update_missing(self, backend: Backend) -> None:
        with pytest.raises(NotFound):
            await backend.update(Item("k", b"v"))
        assert await all_items(backend) == []

    async def test_delete(self, backend: Backend) -> None:
        await backend.put(Item("k", b"v"))
        await backend.delete("k")
        with pytest.raises(NotFound):
            await backend.get("k")
        with pytest.raises(NotFound):
            await backend.delete("k")

    async def test_revisions_increase_across_keys_and_deletes(self, backend: Backend) -> None:
        a = await backend.put(Item("a", b"1"))
        b = await backend.put(Item("b", b"1"))
        await backend.delete("b")
        b_again = await backend.put(Item("b", b"2"))
        assert a.revision < b.revision < b_again.revision

    # --- compare-and-swap and compare-and-delete

    async def test_cas_success(self, backend: Backend) -> None:
        old = await backend.put(Item("k", b"old"))
        new = await backend.compare_and_swap(Item("k", b"old"), Item("k", b"new"))
        assert new.value == b"new"
        assert new.revision > old.revision
        assert await backend.get("k") == new

    async def test_cas_wrong_value(self, backend: Backend) -> None:
        old = await backend.put(Item("k", b"old"))
        with pytest.raises(CompareFailed):
            await backend.compare_and_swap(Item("k", b"stale"), Item("k", b"new"))
        assert await backend.get("k") == old

    async def test_cas_missing(self, backend: Backend) -> None:
        with pytest.raises(CompareFailed):
            await backend.compare_and_swap(Item("k", b"old"), Item("k", b"new"))
        assert await all_items(backend) == []

    async def test_cas_on_expired_item(self, backend: Backend, clock: FakeClock) -> None:
        await backend.put(Item("k", b"old", expires=clock.now() + 5))
        clock.advance(6)
        with pytest.raises(CompareFailed):
            await backend.compare_and_swap(Item("k", b"old"), Item("k", b"new"))
        with pytest.raises(NotFound):
            await backend.get("k")

    async def test_cas_keys_must_match(self, backend: Backend) -> None:
        await backend.put(Item("k", b"old"))
        with pytest.raises(BadParameter):
            await backend.compare_and_swap(Item("k", b"old"), Item("other", b"new"))
        assert [i.key for i in await all_items(backend)] == ["k"]

    async def test_compare_and_delete(self, backend: Backend) -> None:
        await backend.put(Item("token", b"secret"))
        with pytest.raises(CompareFailed):
            await backend.compare_and_delete(Item("token", b"wrong"))
        await backend.compare_and_delete(Item("token", b"secret"))
        with pytest.raises(CompareFailed):
            await backend.compare_and_delete(Item("token", b"secret"))
        assert await all_items(backend) == []

    async def test_cas_race_has_exactly_one_winner(self, backend: Backend) -> None:
        await backend.put(Item("counter", b"start"))
        results = await asyncio.gather(
            *(
                backend.compare_and_swap(
                    Item("counter", b"start"), Item("counter", f"racer-{i}".encode())
                )
                for i in range(RACERS)
            ),
            return_exceptions=True,
        )
        wins, losses = split_outcomes(results)
        assert len(wins) == 1
        assert len(losses) == RACERS - 1
        assert all(isinstance(exc, CompareFailed) for exc in losses)
        assert await backend.get("counter") == wins[0]

    async def test_compare_and_delete_race_has_exactly_one_winner(self, backend: Backend) -> None:
        await backend.put(Item("tokens/join", b"once"))
        results = await asyncio.gather(
            *(backend.compare_and_delete(Item("tokens/join", b"once")) for _ in range(RACERS)),
            return_exceptions=True,
        )
        wins, losses = split_outcomes(results)
        assert len(wins) == 1
        assert all(isinstance(exc, CompareFailed) for exc in losses)
        assert len(losses) == RACERS - 1
        assert await all_items(backend) == []

    # --- atomic writes

    async def test_atomic_write_applies_every_action_in_order(self, backend: Backend) -> None:
        user = await backend.put(Item("users/alice", b"v1"))
        for i in range(3):
            await backend.put(Item(f"sessions/a1/{i}", b"s"))
        await backend.put(Item("sessions/a2/0", b"other"))
        await backend.put(Item("invites/x", b"i"))
        watcher = await established(backend)
        await backend.atomic_write(
            [Condition.unchanged(user), Condition.absent("locks/l1")],
            [
                Delete("users/alice"),
                DeleteRange(*prefix_range("sessions/a1/")),
                Delete("invites/x"),
                Delete("invites/never-existed"),
                Put(Item("locks/l1", b"lock")),
            ],
        )
        keys = [item.key for item in await all_items(backend)]
        assert keys == ["locks/l1", "sessions/a2/0"]
        seen = [await next_event(watcher) for _ in range(6)]
        assert [(e.type, e.item.key) for e in seen] == [
            (EventType.DELETE, "users/alice"),
            (EventType.DELETE, "sessions/a1/0"),
            (EventType.DELETE, "sessions/a1/1"),
            (EventType.DELETE, "sessions/a1/2"),
            (EventType.DELETE, "invites/x"),
            (EventType.PUT, "locks/l1"),
        ]
        revisions = [e.item.revision for e in seen]
        assert revisions == sorted(revisions) and len(set(revisions)) == 6
        await assert_next_is_marker(backend, watcher)
        await watcher.close()

    @pytest.mark.parametrize(
        "condition",
        [
            Condition("users/alice", revision=1_000_000),
            Condition.absent("users/alice"),
            Condition("users/nobody"),
        ],
        ids=["stale-revision", "present-not-absent", "absent-not-present"],
    )
    async def test_atomic_write_with_a_failed_condition_changes_nothing(
        self, backend: Backend, condition: Condition
    ) -> None:
        await backend.put(Item("users/alice", b"v1"))
        await backend.put(Item("sessions/a1/0", b"s"))
        before = await all_items(backend)
        watcher = await established(backend)
        with pytest.raises(CompareFailed):
            await backend.atomic_write(
                [condition],
                [Delete("users/alice"), DeleteRange(*prefix_range("sessions/")),
                 Put(Item("locks/l1", b"lock"))],
            )  # fmt: skip
        assert await all_items(backend) == before
        await assert_next_is_marker(backend, watcher)
        await watcher.close()

    async def test_atomic_write_revision_condition_sees_every_write(self, backend: Backend) -> None:
        first = await backend.put(Item("users/alice", b"same"))
        await backend.put(Item("users/alice", b"same"))  # same value, new revision
        with pytest.raises(CompareFailed):
            await backend.atomic_write([Condition.unchanged(first)], [Put(Item("x", b"1"))])
        current = await backend.get("users/alice")
        await backend.atomic_write([Condition.unchanged(current)], [Put(Item("x", b"1"))])
        assert (await backend.get("x")).value == b"1"

    async def test_atomic_write_treats_expired_items_as_absent(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        item = await backend.put(Item("invites/x", b"i", expires=clock.now() + 10))
        clock.advance(11)
        with pytest.raises(CompareFailed):
            await backend.atomic_write([Condition.unchanged(item)], [Put(Item("y", b"1"))])
        await backend.atomic_write([Condition.absent("invites/x")], [Put(Item("invites/x", b"2"))])
        assert (await backend.get("invites/x")).value == b"2"

    async def test_atomic_write_race_has_exactly_one_winner(self, backend: Backend) -> None:
        user = await backend.put(Item("users/alice", b"v1"))
        results = await asyncio.gather(
            *(
                backend.atomic_write(
                    [Condition.unchanged(user)],
                    [
                        Put(Item("users/alice", f"racer-{i}".encode())),
                        Put(Item(f"sessions/{i}", b"s")),
                    ],
                )
                for i in range(RACERS)
            ),
            return_exceptions=True,
        )
        wins, losses = split_outcomes(results)
        assert len(wins) == 1 and len(losses) == RACERS - 1
        assert all(isinstance(exc, CompareFailed) for exc in losses)
        sessions = await backend.get_range(*prefix_range("sessions/"))
        assert len(sessions) == 1
        winner = sessions[0].key.removeprefix("sessions/")
        assert (await backend.get("users/alice")).value == f"racer-{winner}".encode()

    @pytest.mark.parametrize(
        ("conditions", "actions"),
        [
            ([], []),
            ([], [Put(Item("k", b"1")), Delete("k")]),
            ([Condition("k"), Condition.absent("k")], [Put(Item("k", b"1"))]),
            ([Condition("k", exists=False, revision=3)], [Put(Item("k", b"1"))]),
            ([], [Put(Item("", b"1"))]),
            ([], [Put(Item(f"k{i}", b"1")) for i in range(MAX_ATOMIC_OPS + 1)]),
        ],
        ids=["empty", "same-key-twice", "two-conditions", "absent-with-revision", "bad-key",
             "too-many"],
    )  # fmt: skip
    async def test_atomic_write_refuses_malformed_requests(
        self, backend: Backend, conditions: list[Condition], actions: list[Put | Delete]
    ) -> None:
        with pytest.raises(BadParameter):
            await backend.atomic_write(conditions, actions)
        assert await all_items(backend) == []

    # --- ranges

    async def test_get_range_order_limit_and_bounds(self, backend: Backend) -> None:
        for key in ["b", "d", "a", "c", "e"]:
            await backend.put(Item(key, key.encode()))
        assert [i.key for i in await backend.get_range("b", "e")] == ["b", "c", "d"]
        assert [i.key for i in await backend.get_range("a", "z", limit=2)] == ["a", "b"]
        assert [i.value for i in await backend.get_range("a", "z")] == [
            b"a",
            b"b",
            b"c",
            b"d",
            b"e",
        ]
        assert await backend.get_range("c", "c") == []
        assert await backend.get_range("d", "b") == []
        with pytest.raises(BadParameter):
            await backend.get_range("a", "z", limit=-1)

    async def test_delete_range(self, backend: Backend) -> None:
        for key in ["users/a", "users/b", "users/c", "usersX", "roles/a"]:
            await backend.put(Item(key, b"v"))
        assert await backend.delete_range(*prefix_range("users/")) == 3
        assert [i.key for i in await all_items(backend)] == ["roles/a", "usersX"]
        assert await backend.delete_range(*prefix_range("users/")) == 0

    @pytest.mark.parametrize(
        ("prefix", "expected"),
        [
            ("users/", ("users/", "users0")),
            ("users/a", ("users/a", "users/b")),
            ("a\U0010ffff", ("a\U0010ffff", "b")),
            ("", ("", KEYSPACE_END)),
            ("\U0010ffff", ("\U0010ffff", KEYSPACE_END)),
        ],
    )
    def test_prefix_range_bounds(self, prefix: str, expected: tuple[str, str]) -> None:
        assert prefix_range(prefix) == expected

    async def test_prefix_range_selects_exactly_the_prefix(self, backend: Backend) -> None:
        keys = [
            "users",
            "users.",
            "users/",
            "users/a",
            "users/ab",
            "users/a/x",
            "users/b",
            "usersX",
        ]
        for key in keys:
            await backend.put(Item(key, b"v"))
        slash = [i.key for i in await backend.get_range(*prefix_range("users/"))]
        assert slash == ["users/", "users/a", "users/a/x", "users/ab", "users/b"]
        under_a = [i.key for i in await backend.get_range(*prefix_range("users/a"))]
        assert under_a == ["users/a", "users/a/x", "users/ab"]
        assert len(await all_items(backend)) == len(keys)

    async def test_keyspace_end_is_after_every_key(self, backend: Backend) -> None:
        widest = "\U0010ffff" * (MAX_KEY_BYTES // 4)
        await backend.put(Item(widest, b"v"))
        await backend.put(Item("\U0010ffff", b"v"))
        assert len(await all_items(backend)) == 2
        assert len(await backend.get_range(*prefix_range("\U0010ffff"))) == 2

    # --- expiry

    async def test_expiry_hides_items(self, backend: Backend, clock: FakeClock) -> None:
        await backend.put(Item("k", b"v", expires=clock.now() + 10))
        await backend.put(Item("forever", b"v"))
        clock.advance(9.5)
        assert (await backend.get("k")).value == b"v"
        clock.advance(0.5)  # expires <= now counts as expired
        with pytest.raises(NotFound):
            await backend.get("k")
        assert [i.key for i in await all_items(backend)] == ["forever"]

    async def test_expired_items_count_as_absent(self, backend: Backend, clock: FakeClock) -> None:
        await backend.put(Item("k", b"v", expires=clock.now() + 10))
        clock.advance(11)
        with pytest.raises(NotFound):
            await backend.update(Item("k", b"v2"))
        with pytest.raises(NotFound):
            await backend.delete("k")
        with pytest.raises(CompareFailed):
            await backend.compare_and_delete(Item("k", b"v"))
        assert await backend.delete_range(*prefix_range("")) == 0
        created = await backend.create(Item("k", b"fresh"))
        assert await backend.get("k") == created

    async def test_sweep_emits_delete(self, backend: Backend, clock: FakeClock) -> None:
        doomed = await backend.put(Item("sessions/1", b"v", expires=clock.now() + 10))
        await backend.put(Item("sessions/2", b"v"))
        watcher = await established(backend)
        assert await backend.sweep_expired() == 0
        clock.advance(10)
        assert await backend.sweep_expired() == 1
        event = await next_event(watcher)
        assert event.type is EventType.DELETE
        assert (event.item.key, event.item.value) == ("sessions/1", b"v")
        assert event.item.revision > doomed.revision
        assert await backend.sweep_expired() == 0
        assert [i.key for i in await all_items(backend)] == ["sessions/2"]
        await watcher.close()

    async def test_overwriting_expired_item_reports_its_deletion(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        await backend.put(Item("k", b"old", expires=clock.now() + 1))
        watcher = await established(backend)
        clock.advance(2)
        new = await backend.create(Item("k", b"new"))
        gone, put = await next_event(watcher), await next_event(watcher)
        assert (gone.type, gone.item.value) == (EventType.DELETE, b"old")
        assert (put.type, put.item) == (EventType.PUT, new)
        assert await backend.sweep_expired() == 0
        await watcher.close()

    async def test_periodic_sweep(self, backend: Backend, clock: FakeClock) -> None:
        await backend.put(Item("k", b"v", expires=clock.now() + 1))
        watcher = await established(backend)
        clock.advance(2)
        await backend.start(sweep_interval=0.01)
        event = await next_event(watcher)
        assert (event.type, event.item.key) == (EventType.DELETE, "k")
        await watcher.close()

    # --- watches

    async def test_watch_delivers_init_then_changes_in_order(self, backend: Backend) -> None:
        async with backend.watch([]) as watcher:
            assert (await next_event(watcher)).type is EventType.INIT
            put = await backend.put(Item("a", b"1"))
            updated = await backend.update(Item("a", b"2"))
            swapped = await backend.compare_and_swap(Item("a", b"2"), Item("a", b"3"))
            await backend.delete("a")
            events = [await next_event(watcher) for _ in range(4)]
        assert [e.type for e in events] == [EventType.PUT] * 3 + [EventType.DELETE]
        assert [e.item for e in events[:3]] == [put, updated, swapped]
        assert events[3].item.key == "a"
        revisions = [e.item.revision for e in events]
        assert revisions == sorted(set(revisions))

    async def test_watch_filters_by_prefix(self, backend: Backend) -> None:
        watcher = await established(backend, ["users/", "roles/admin"])
        everything = await established(backend)
        for key in ["nodes/n1", "users/alice", "usersX", "roles/admin", "roles/dev", "users/bob"]:
            await backend.put(Item(key, b"v"))
        await backend.delete_range(*prefix_range("users/"))
        seen = [(e.type, e.item.key) for e in [await next_event(watcher) for _ in range(5)]]
        assert seen == [
            (EventType.PUT, "users/alice"),
            (EventType.PUT, "roles/admin"),
            (EventType.PUT, "users/bob"),
            (EventType.DELETE, "users/alice"),
            (EventType.DELETE, "users/bob"),
        ]
        assert (await next_event(everything)).item.key == "nodes/n1"
        await watcher.close()
        await everything.close()

    async def test_failed_writes_emit_nothing(self, backend: Backend) -> None:
        await backend.put(Item("k", b"v"))
        watcher = await established(backend)
        for attempt in (
            backend.create(Item("k", b"x")),
            backend.update(Item("missing", b"x")),
            backend.compare_and_swap(Item("k", b"wrong"), Item("k", b"x")),
            backend.compare_and_delete(Item("k", b"wrong")),
            backend.delete("missing"),
        ):
            with pytest.raises(MeziteError):
                await attempt
        await assert_next_is_marker(backend, watcher)
        await watcher.close()

    async def test_slow_watcher_is_closed_not_waited_for(self, backend: Backend) -> None:
        watcher = backend.watch([], queue_size=4)
        for i in range(20):
            await backend.put(Item(f"k{i}", b"v"))
        with pytest.raises(LimitExceeded):
            for _ in range(21):
                await next_event(watcher)
        assert watcher.closed
        assert len(await all_items(backend)) == 20

    async def test_closed_watcher_ends_iteration(self, backend: Backend) -> None:
        watcher = await established(backend)
        await watcher.close()
        await backend.put(Item("k", b"v"))
        assert [e async for e in watcher] == []

    async def test_closing_backend_ends_watchers_with_error(self, backend: Backend) -> None:
        watcher = await established(backend)
        await backend.close()
        with pytest.raises(ConnectionProblem):
            await next_event(watcher)

    # --- input bounds

    @pytest.mark.parametrize(
        "key",
        [
            "",
            "a\x00b",
            "a\nb",
            "tab\there",
            "del\x7f",
            "c1\x85",
            "\ud800",
            "x" * (MAX_KEY_BYTES + 1),
            "é" * (MAX_KEY_BYTES // 2 + 1),
        ],
    )
    async def test_bad_keys_rejected(self, backend: Backend, key: str) -> None:
        watcher = await established(backend)
        for attempt in (
            backend.put(Item(key, b"v")),
            backend.create(Item(key, b"v")),
            backend.update(Item(key, b"v")),
            backend.compare_and_swap(Item(key, b"v"), Item(key, b"w")),
            backend.compare_and_delete(Item(key, b"v")),
            backend.get(key),
            backend.delete(key),
        ):
            with pytest.raises(BadParameter):
                await attempt
        assert await all_items(backend) == []
        await assert_next_is_marker(backend, watcher)
        await watcher.close()

    async def test_key_and_value_limits_are_inclusive(self, backend: Backend) -> None:
        key = "x" * MAX_KEY_BYTES
        stored = await backend.put(Item(key, b"\0" * MAX_VALUE_BYTES))
        assert await backend.get(key) == stored

    async def test_oversized_value_rejected(self, backend: Backend) -> None:
        await backend.put(Item("k", b"small"))
        huge = b"x" * (MAX_VALUE_BYTES + 1)
        for attempt in (
            backend.put(Item("k", huge)),
            backend.put(Item("new", huge)),
            backend.update(Item("k", huge)),
            backend.compare_and_swap(Item("k", b"small"), Item("k", huge)),
        ):
            with pytest.raises(BadParameter):
                await attempt
        assert [(i.key, i.value) for i in await all_items(backend)] == [("k", b"small")]

    @pytest.mark.parametrize("expires", [float("nan"), float("inf")])
    async def test_non_finite_expiry_rejected(self, backend: Backend, expires: float) -> None:
        with pytest.raises(BadParameter):
            await backend.put(Item("k", b"v", expires=expires))
        assert await all_items(backend) == []

    # --- lifecycle and persistence

    async def test_closed_backend_refuses_work(self, backend: Backend) -> None:
        await backend.close()
        await backend.close()
        with pytest.raises(ConnectionProblem):
            await backend.get("k")
        with pytest.raises(ConnectionProblem):
            backend.watch([])

    async def test_data_survives_reopen(self, backend: Backend, clock: FakeClock) -> None:
        kept = await backend.put(Item("users/alice", b"\x00binary\xff", expires=clock.now() + 60))
        await backend.close()
        async with await self.reopen_backend(clock) as reopened:
            assert await reopened.get("users/alice") == kept
            later = await reopened.put(Item("users/bob", b"v"))
            assert later.revision > kept.revision
