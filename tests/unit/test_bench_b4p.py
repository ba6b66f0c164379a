"""B4' (bench/b4p_ha.py): how the fleet is spread over the auth servers, and when the
total is held to issue 22's target. The benchmark itself needs PostgreSQL and minutes;
these are its decisions, checked without either."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.b4_heartbeats import PER_GENERATOR
from bench.b4p_ha import AGENTS, rows, spread

SERVERS = [(f"127.0.0.1:{port}", Path(f"/ca{port}.pem")) for port in (1, 2, 3)]


def test_every_agent_goes_to_exactly_one_server_in_even_shares() -> None:
    shares = spread(AGENTS, SERVERS)
    assert [sum(c.count for c in share) for share in shares] == [16_667, 16_667, 16_666]
    parts = [c for share in shares for c in share]
    assert [c.first for c in parts] == [0, *[sum(p.count for p in parts[:i]) for i in
                                           range(1, len(parts))]]  # fmt: skip
    assert sum(c.count for c in parts) == AGENTS
    for (addr, ca), share in zip(SERVERS, shares, strict=True):
        assert {(c.addr, c.ca) for c in share} == {(addr, ca)}
        assert len(share) == 2 and all(c.count <= PER_GENERATOR for c in share)
        assert max(c.count for c in share) - min(c.count for c in share) <= 1


def test_a_small_fleet_still_reaches_every_server() -> None:
    shares = spread(4, SERVERS)
    assert [[(c.first, c.count) for c in share] for share in shares] == [
        [(0, 2)],
        [(2, 1)],
        [(3, 1)],
    ]


def details(agents: int, live: list[int], cores: float) -> dict[str, Any]:
    acks = {"p50": 2.0, "p99": 20.0, "count": 100}
    servers = [
        {"live": n, "cores": cores / 3, "rss_kb": 1024, "idle_rss_kb": 512, "acks": acks,
         "presence_items": n, "connect_cpu_s": 1.0, "announce_cpu_s": 1.0}
        for n in live
    ]  # fmt: skip
    return {
        "agents": agents, "per_server": servers, "acks": acks, "auth_cores": cores,
        "auth_rss_kb": 3072, "postgres_cores": 0.1, "connect_wall_s": 10.0,
        "postgres_connect_cpu_s": 1.0, "announced": {"items": sum(live), "seconds": 20.0},
    }  # fmt: skip


def total(found: list[Any]) -> Any:
    return next(r for r in found if r.name.startswith("auth CPU in total"))


ALL_LIVE = [16_667, 16_667, 16_666]


def test_met_follows_the_total_cpu_at_the_full_fleet() -> None:
    assert total(rows(details(AGENTS, ALL_LIVE, 0.9))).met is True
    assert total(rows(details(AGENTS, ALL_LIVE, 1.2))).met is False


def test_a_fleet_not_all_connected_misses_and_a_smaller_one_is_not_judged() -> None:
    short = total(rows(details(AGENTS, [16_667, 16_667, 16_600], 0.9)))
    assert short.met is False and "only 49,934 of 50,000 connected" in short.note
    smaller = total(rows(details(900, [300, 300, 300], 0.1)))
    assert smaller.met is None and smaller.target == ""
