"""B9's figures from the timelines: one kill (a phase) at a time.

A phase runs from ``pre`` seconds before its SIGKILL to the moment the next step began.
Every time is seconds after the kill. A certificate request counts as served when it
succeeded within ``GOOD_LATENCY`` of its scheduled start (the open loop's clock); the
success rate is taken over 1 s windows of scheduled starts, slid by 0.1 s, and "back to
≥ 99 %" is the start of the first window from which every later one is."""

from __future__ import annotations

from typing import Any

from bench.loadgen import percentile
from bench.results import Row, fmt

TARGET_S = 5.0
GOOD_LATENCY = 1.0
WINDOW, STEP, FLOOR = 1.0, 0.1, 0.99

Record = tuple[float, float, int]  # scheduled (or started), finished, ok


def first_success(records: list[Record], kill: float) -> float | None:
    """The first success among requests sent after the kill, when it finished."""
    done = [f - kill for s, f, ok in records if ok and s >= kill]
    return min(done) if done else None


def back_to_floor(records: list[Record], kill: float, end: float) -> float | None:
    count = int((end - WINDOW - kill) / STEP) + 1
    ratios = []
    for i in range(max(count, 0)):
        w = kill + i * STEP
        inside = [(s, f, ok) for s, f, ok in records if w <= s < w + WINDOW]
        good = sum(1 for s, f, ok in inside if ok and f - s <= GOOD_LATENCY)
        ratios.append(good / len(inside) if inside else 1.0)
    if not ratios:
        return None
    last_bad = max((i for i, r in enumerate(ratios) if r < FLOOR), default=-1)
    return None if last_bad == len(ratios) - 1 else (last_bad + 1) * STEP


def _met(value: float | None) -> bool:
    return value is not None and value <= TARGET_S


def phase_rows(
    phase: dict[str, Any],
    final: dict[str, Any],
    ssh_runs: list[tuple[float, float, int]],
    presence: list[tuple[float, str]],
) -> tuple[list[Row], dict[str, Any]]:
    kill, end = phase["kill"], phase["end"]
    begin = kill - phase["pre"]
    victim, survivor = phase["victim"].upper(), phase["survivor"].upper()
    tag = f"kill {victim}"
    target = f"≤ {TARGET_S:.0f} s"

    def inside(records: list[Any]) -> list[Record]:
        return [(s, f, ok) for s, f, ok in records if begin <= s < end]

    certs = inside(final["issued"])
    cert_errors = sum(1 for _, f, ok in certs if not ok)
    cert_first = first_success(certs, kill)
    cert_back = back_to_floor(certs, kill, end)
    after = [
        (f - s) * 1000
        for s, f, ok in certs
        if ok and cert_back is not None and s >= kill + cert_back
    ]
    writes = inside(final["writes"])
    write_errors = sum(1 for _, _, ok in writes if not ok)
    acks = [t - kill for t, _ in final["acked"] if begin <= t < end]
    first_ack = min((t for t in acks if t >= 0), default=None)
    checked = phase["verify"].get(phase["survivor_addr"], {})
    lost = len(checked["missing"]) if checked.get("reachable") else None
    runs = [(s, f, rc == 0) for s, f, rc in ssh_runs if begin <= s < end]
    ssh_first = first_success([(s, f, int(ok)) for s, f, ok in runs], kill)
    ssh_failed = sum(1 for _, _, ok in runs if not ok)
    ssh_p50 = percentile([f - s for s, f, ok in runs if ok and s < kill], 50)
    moved = min(
        (t - kill for t, owner in presence if t >= kill and owner == phase["survivor_lease"]),
        default=None,
    )
    polls = [v for t, i, v in final["listed"] if i == phase["survivor_index"] and kill <= t < end]
    doc = {
        "victim": victim, "survivor": survivor,
        "cert_first_success_s": cert_first, "cert_back_to_99_s": cert_back,
        "cert_requests": len(certs), "cert_errors": cert_errors,
        "cert_p99_after_recovery_ms": percentile(after, 99),
        "writes_acked": len(acks), "write_errors": write_errors, "first_ack_s": first_ack,
        "lost": lost, "verify": phase["verify"],
        "ssh_first_success_s": ssh_first, "ssh_failed_runs": ssh_failed,
        "ssh_runs": len(runs), "ssh_p50_before_s": ssh_p50,
        "node_was_on_victim": phase["node_was_on_victim"], "presence_moved_s": moved,
        "survivor_listed_polls": len(polls), "survivor_unlisted_polls": polls.count(0),
        "survivor_poll_errors": polls.count(-1),
    }  # fmt: skip
    on_victim = "" if phase["node_was_on_victim"] else f"; the node was not on {victim}"
    rows = [
        Row(
            "B9", f"{tag}: IssueUserCerts, first success after SIGKILL", "s", cert_first,
            target=target, met=_met(cert_first),
            note=f"{phase['rate']:.0f}/s open loop on one channel to A,B; "
            f"{cert_errors} of {len(certs)} failed in the phase",
        ),
        Row(
            "B9", f"{tag}: IssueUserCerts back to ≥ 99 % per 1 s window", "s", cert_back,
            target=target, met=_met(cert_back),
            note=f"served = answered within {GOOD_LATENCY:.0f} s of schedule; p99 after "
            f"that {fmt(doc['cert_p99_after_recovery_ms'], 'ms')}",
        ),
        Row(
            "B9", f"{tag}: `mez ssh NODE true` succeeds again", "s", ssh_first,
            target=target, met=_met(ssh_first),
            note=f"from the kill to the end of the first good run started after it; "
            f"{ssh_failed} of {len(runs)} runs failed; a run takes {ssh_p50:.2f} s (p50)",
        ),
        Row(
            "B9", f"{tag}: node's presence held by {survivor}", "s", moved,
            target=target, met=_met(moved),
            note=f"presence item in PostgreSQL names {survivor}{on_victim}; {survivor} "
            f"alone listed it online in {polls.count(1)} of {len(polls)} polls after the kill",
        ),
        Row(
            "B9", f"{tag}: acknowledged writes lost (CreateToken)", "writes", lost,
            target="0", met=lost == 0,
            note=f"{len(acks)} acknowledged at {phase['write_rate']:.0f}/s, {write_errors} "
            f"failed; first ack after the kill at {fmt(first_ack, 's')}; checked with "
            f"ListTokens on {survivor} alone",
        ),
    ]  # fmt: skip
    return rows, doc
