"""The one Renewer every agent kind uses: when it renews, how it backs off, when it stops.

Driven with a fake clock, a sleep that only advances it, and plain renew/adopt
callables in place of the RPCs: no sockets, no real waiting."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from agent.bot import BotState
from agent.identity import NodeIdentity
from proto.clock import FakeClock
from proto.errors import AccessDenied, BadParameter, ConnectionProblem, Internal, NotAuthenticated
from proto.lifecycle import (
    BACKOFF_BASE,
    BACKOFF_CAP,
    MIN_WAIT,
    RENEWAL_JITTER,
    Generations,
    IdentityDir,
    Renewer,
    Stopped,
)
from server.proxy.identity import ProxyIdentity

HOUR = 3600.0


@dataclass(frozen=True)
class Creds:
    serial: int
    expires: float


class Harness:
    """A fake clock, a sleep that advances it (and records how long it was asked to
    wait), and a script of what each renewal does: return fresh credentials or raise."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.waits: list[float] = []
        self.renewed_from: list[Any] = []
        self.adopted: list[Any] = []
        self.script: Iterator[Callable[[Any], Any]] = iter(())

    async def sleep(self, seconds: float) -> None:
        assert len(self.waits) < 1000, "the renewer is looping"
        self.waits.append(seconds)
        self.clock.advance(seconds)

    async def renew(self, current: Any) -> Any:
        self.renewed_from.append(current)
        step = next(self.script, None)
        if step is None:
            raise NotAuthenticated("agent removed")  # ends every scripted run
        return step(current)

    async def adopt(self, fresh: Any) -> None:
        self.adopted.append(fresh)

    def renewer(self, current: Any, name: str = "node web-1 (n-1)") -> Renewer[Any]:
        return Renewer(
            name,
            current,
            renew=self.renew,
            adopt=self.adopt,
            clock=self.clock,
            sleep=self.sleep,
        )

    def run(self, current: Any, *steps: Callable[[Any], Any]) -> Stopped:
        self.script = iter(steps)
        return asyncio.run(self.renewer(current).run())


@pytest.fixture
def harness() -> Harness:
    return Harness(FakeClock())


def lasting(harness: Harness, seconds: float) -> Callable[[Any], Creds]:
    """A renewal that returns credentials valid ``seconds`` from the (fake) now."""
    return lambda current: Creds(current.serial + 1, harness.clock.now() + seconds)


def failing(error: Exception) -> Callable[[Any], Any]:
    def step(_: Any) -> Any:
        raise error

    return step


def test_it_renews_when_a_third_of_the_remaining_lifetime_is_left(harness: Harness) -> None:
    start = harness.clock.now()
    # Half an hour into a day-long certificate: 23.5h remain.
    first = Creds(0, start + 23.5 * HOUR)
    harness.run(first, lasting(harness, 24 * HOUR), lasting(harness, 6 * HOUR))
    low, high = 1 - RENEWAL_JITTER, 1 + RENEWAL_JITTER
    wait_1, wait_2, wait_3 = harness.waits
    assert low * (2 / 3) * 23.5 * HOUR <= wait_1 <= high * (2 / 3) * 23.5 * HOUR
    assert low * 16 * HOUR <= wait_2 <= high * 16 * HOUR
    assert low * 4 * HOUR <= wait_3 <= high * 4 * HOUR
    assert [c.serial for c in harness.adopted] == [1, 2]


def test_the_jitter_spreads_a_fleet(harness: Harness) -> None:
    waits = {
        round(harness.renewer(Creds(0, harness.clock.now() + 3 * HOUR)).wait_before_renewal())
        for _ in range(50)
    }
    assert len(waits) > 10
    assert all(0.9 * 2 * HOUR <= w <= 1.1 * 2 * HOUR for w in waits)


def test_adopt_gets_the_new_credentials_and_renew_starts_from_them(harness: Harness) -> None:
    first = Creds(0, harness.clock.now() + HOUR)
    harness.run(first, lasting(harness, HOUR), lasting(harness, HOUR))
    assert [c.serial for c in harness.adopted] == [1, 2]
    assert [c.serial for c in harness.renewed_from] == [0, 1, 2]


def test_connection_problems_back_off_exponentially_up_to_the_cap(harness: Harness) -> None:
    lost = ConnectionProblem("cannot reach the auth service")
    stopped = harness.run(Creds(0, harness.clock.now() + HOUR), *[failing(lost)] * 12)
    retries = harness.waits[1:]  # the first wait is the scheduled renewal
    assert len(retries) == 12
    for attempt, wait in enumerate(retries):
        ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)
        assert max(ceiling / 2, MIN_WAIT) <= wait <= ceiling
    assert max(retries) <= BACKOFF_CAP and retries[-1] >= BACKOFF_CAP / 2
    assert isinstance(stopped.error, NotAuthenticated)  # the script's end
    assert harness.adopted == []


def test_a_success_resets_the_backoff(harness: Harness) -> None:
    lost = ConnectionProblem("auth restarting")
    harness.run(
        Creds(0, harness.clock.now() + HOUR),
        *[failing(lost)] * 6,
        lasting(harness, HOUR),
        failing(lost),
    )
    assert harness.waits[6] >= BACKOFF_BASE * 2**5 / 2  # backed off far by then
    after_success = harness.waits[-1]
    assert MIN_WAIT <= after_success <= BACKOFF_BASE  # from the start again
    assert [c.serial for c in harness.adopted] == [1]


@pytest.mark.parametrize("error", [ConnectionProblem("down"), Internal("id 7"), BadParameter("x")])
def test_other_failures_are_retried(harness: Harness, error: Exception) -> None:
    harness.run(Creds(0, harness.clock.now() + HOUR), failing(error), lasting(harness, HOUR))
    assert [c.serial for c in harness.adopted] == [1]


def node_creds(expires: float) -> NodeIdentity:
    return NodeIdentity(
        agent_id="n-1", name="web-1", cluster_name="c", auth_server="a:1", ca_pin="p",
        labels={}, advertise_addrs=[], ssh_host_key_pem="", ssh_host_cert="", tls_key_pem="",
        tls_cert_pem="", tls_ca_pem="", user_ca_keys=[], host_ca_keys=[], expires=expires,
    )  # fmt: skip


def proxy_creds(expires: float) -> ProxyIdentity:
    return ProxyIdentity(
        agent_id="p-1", name="edge-1", cluster_name="c", ca_pin="p", expires=expires,
        directory=Path("/nonexistent"),
    )  # fmt: skip


def bot_creds(expires: float) -> BotState:
    return BotState(
        name="ci", cluster_name="c", auth_server="a:1", ca_pin="p", generation=3,
        renewal_token="t", ssh_key_pem="", ssh_cert="", tls_key_pem="", tls_cert_pem="",
        tls_ca_pem="", host_ca_keys=[], expires=expires,
    )  # fmt: skip


KINDS = {
    "node web-1 (n-1)": node_creds,
    "proxy edge-1 (p-1)": proxy_creds,
    "agent identity ci": bot_creds,
}


@pytest.mark.parametrize("refusal", [NotAuthenticated("mismatched agent identity"),
                                     AccessDenied("access denied: node locked")])  # fmt: skip
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_it_stops_and_says_so_once_when_auth_refuses_the_identity(
    harness: Harness, caplog: pytest.LogCaptureFixture, kind: str, refusal: Exception
) -> None:
    make = KINDS[kind]
    first = make(harness.clock.now() + HOUR)

    def renew(current: Any) -> Any:
        return replace(current, expires=harness.clock.now() + HOUR)

    harness.script = iter([renew, failing(ConnectionProblem("blip")), failing(refusal)])
    with caplog.at_level(logging.INFO, logger="proto.lifecycle"):
        stopped = asyncio.run(harness.renewer(first, name=kind).run())
    assert stopped.error is refusal and stopped.name == kind
    assert len(harness.adopted) == 1  # the renewal before; nothing after the refusal
    assert len(harness.renewed_from) == 3  # no retry after it
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    line = errors[0].getMessage()
    assert "\n" not in line
    assert line.startswith(f"renewal of {kind} stopped")
    assert type(refusal).__name__ in line and str(refusal) in line


def test_credentials_that_come_back_short_do_not_make_a_busy_loop(harness: Harness) -> None:
    expired = Creds(0, harness.clock.now() - HOUR)  # lapsed while the process was down
    harness.run(expired, *[lasting(harness, 0.0)] * 20)
    assert len(harness.waits) == 21
    assert all(w >= MIN_WAIT * (1 - RENEWAL_JITTER) for w in harness.waits)


def test_a_failing_adopt_backs_off_and_the_next_renewal_starts_from_the_kept_set(
    harness: Harness,
) -> None:
    calls = 0

    async def adopt(fresh: Any) -> None:
        nonlocal calls
        calls += 1
        if calls <= 3:
            raise OSError("disk full")
        harness.adopted.append(fresh)

    harness.script = iter([lasting(harness, HOUR)] * 4)
    renewer = Renewer(
        "node web-1 (n-1)",
        Creds(0, harness.clock.now() + HOUR),
        renew=harness.renew,
        adopt=adopt,
        clock=harness.clock,
        sleep=harness.sleep,
    )
    asyncio.run(renewer.run())
    # Auth knows the kept set from the moment renew returned: the next try renews it.
    assert [c.serial for c in harness.renewed_from] == [0, 1, 2, 3, 4]
    assert [c.serial for c in harness.adopted] == [4]
    assert all(MIN_WAIT <= w <= BACKOFF_CAP for w in harness.waits[1:4])
    assert renewer.current.serial == 4


def test_the_identity_dir_is_private_and_written_whole(tmp_path: Path) -> None:
    store = IdentityDir(tmp_path / "id", "identity.json")
    assert store.load() is None and store.peek() is None
    store.save({"name": "web-1"}, {"tls.key": "secret"})
    assert (tmp_path / "id").stat().st_mode & 0o777 == 0o700
    assert {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "id").iterdir()} == {
        "identity.json": 0o600,
        "tls.key": 0o600,
    }
    assert store.load(["tls.key"]) == ({"name": "web-1"}, {"tls.key": "secret"})
    (tmp_path / "id" / "tls.key").chmod(0o644)
    with pytest.raises(AccessDenied, match="accessible by other users"):
        store.load(["tls.key"])


def test_generations_switch_whole_sets(tmp_path: Path) -> None:
    generations = Generations(tmp_path / "root")
    assert generations.current() is None
    first = generations.fresh()
    IdentityDir(first, "identity.json").save({"n": 1})
    generations.switch(first)
    second = generations.fresh()
    assert second.name == "gen-2" and generations.current() == first  # not yet switched
    IdentityDir(second, "identity.json").save({"n": 2})
    generations.switch(second)
    assert generations.current() == second and not first.exists()
    assert sorted(p.name for p in (tmp_path / "root").iterdir()) == ["current", "gen-2"]
