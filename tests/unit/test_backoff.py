"""The reconnect schedule, driven with a fake monotonic clock and a recorded uniform."""

from __future__ import annotations

from proto.backoff import HEARTBEAT, Backoff, BackoffPolicy, StreamBackoff


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0
        self.asked: list[tuple[float, float]] = []

    def monotonic(self) -> float:
        return self.now

    def top(self, low: float, high: float) -> float:
        """The longest delay the jitter allows: the schedule's upper edge."""
        self.asked.append((low, high))
        return high


def test_delays_double_up_to_the_cap_with_full_jitter() -> None:
    ticks = Ticks()
    backoff = Backoff(policy=HEARTBEAT, uniform=ticks.top)
    delays = [backoff.next() for _ in range(8)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0, 5.0]
    assert all(low == 0.0 for low, _ in ticks.asked)  # full jitter: anywhere from 0


def test_keep_sets_the_lower_edge_of_the_jitter() -> None:
    ticks = Ticks()
    backoff = Backoff(policy=BackoffPolicy(base=2.0, cap=120.0, keep=0.5), uniform=ticks.top)
    for _ in range(10):
        backoff.next()
    assert ticks.asked[:3] == [(1.0, 2.0), (2.0, 4.0), (4.0, 8.0)]
    assert ticks.asked[-1] == (60.0, 120.0)


def test_a_stream_healthy_long_enough_resets_the_backoff() -> None:
    ticks = Ticks()
    schedule = StreamBackoff(HEARTBEAT, monotonic=ticks.monotonic, uniform=ticks.top)
    for _ in range(5):  # auth down: five failed attempts
        schedule.opened()
        schedule.ended()
    schedule.opened()
    schedule.acknowledged()
    ticks.now += HEARTBEAT.healthy_after
    assert schedule.ended() == HEARTBEAT.base  # from the start again


def test_a_stream_that_flaps_after_its_ack_keeps_backing_off() -> None:
    ticks = Ticks()
    schedule = StreamBackoff(HEARTBEAT, monotonic=ticks.monotonic, uniform=ticks.top)
    delays = []
    for _ in range(5):
        schedule.opened()
        schedule.acknowledged()
        ticks.now += HEARTBEAT.healthy_after / 2
        delays.append(schedule.ended())
    assert delays == [0.5, 1.0, 2.0, 4.0, 5.0]


def test_an_unacknowledged_stream_never_resets_however_long_it_was_up() -> None:
    ticks = Ticks()
    schedule = StreamBackoff(HEARTBEAT, monotonic=ticks.monotonic, uniform=ticks.top)
    schedule.opened()
    schedule.ended()
    schedule.opened()
    ticks.now += 100.0
    assert schedule.ended() == 1.0
