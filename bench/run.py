"""Run the benchmark suite and write bench/RESULTS.md and bench/results.json.

    .venv/bin/python -m bench            # full run (under 15 minutes on 2 cores)
    .venv/bin/python -m bench --quick    # smaller sizes and windows (under 3 minutes)
    .venv/bin/python -m bench --only b1,b7

Everything runs on 127.0.0.1 in a temporary directory; every process started is
stopped by its pid at the end."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench import (  # noqa: E402
    b1_certs,
    b2_ssh,
    b3_throughput,
    b4_heartbeats,
    b4p_ha,
    b6_memory,
    b7_cli,
    b8_storm,
    b9_failover,
    b10_recording,
    b11_sessions,
)
from bench.cluster import Cluster, stop_all  # noqa: E402
from bench.lab import Lab  # noqa: E402
from bench.machine import describe  # noqa: E402
from bench.report import ORDER, label, write_reports  # noqa: E402
from bench.results import Outcome, Row, Settings  # noqa: E402

ALL = ORDER
# Run only when named: B4' takes up to 25 minutes and the servers cannot yet take its
# 50,000 agents in (bench/README.md), which would double every full run for a known miss.
OPT_IN = ("b4p",)
DEFAULT = tuple(key for key in ALL if key not in OPT_IN)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def guarded(name: str, outcomes: dict[str, Outcome], fn: Callable[[], Outcome]) -> None:
    """Run one benchmark; a failure becomes a row saying so, not a dead suite."""
    log(f"{name} ...")
    t0 = time.monotonic()
    try:
        outcome = fn()
    except Exception as exc:
        traceback.print_exc()
        outcome = Outcome(
            rows=[
                Row(
                    label(name),
                    "did not complete",
                    "",
                    None,
                    note=f"{type(exc).__name__}: {str(exc)[:300]}",
                )
            ]
        )
    outcome.seconds = time.monotonic() - t0
    outcomes[name] = outcome
    log(f"{name} done in {outcome.seconds:.0f}s")


def run_suite(settings: Settings, selected: set[str]) -> dict[str, Outcome]:
    outcomes: dict[str, Outcome] = {}
    cluster = Cluster(settings.workdir / "cluster")
    lab = Lab(cluster, settings.workdir / "openssh")
    needs_cluster = selected & {"b1", "b2", "b3", "b6", "b7", "b10", "b11"}
    try:
        if needs_cluster:
            log("starting auth (mezctl start), user, mez login")
            cluster.start_auth()
            cluster.add_user()
            cluster.mez_login()
        if "b1" in selected:
            guarded("b1", outcomes, lambda: b1_certs.run(settings, cluster))
        if "b7" in selected:
            guarded("b7", outcomes, lambda: b7_cli.run(settings, cluster))
        if selected & {"b2", "b3", "b6", "b10", "b11"}:
            log("starting mezd (mezd join + mezd start) and two stock sshd")
            node_ok = cluster.start_node()
            if not node_ok:
                log(f"mezd did not start: {cluster.node_error[:300]}")
            idle = b6_memory.idle(cluster) if node_ok else {}
            lab.start_sshd()
            if node_ok:
                lab.find_node()
            if "b2" in selected:
                guarded("b2", outcomes, lambda: b2_ssh.run(settings, lab, node_ok))
            if "b3" in selected:
                guarded("b3", outcomes, lambda: b3_throughput.run(settings, lab, node_ok))
            if "b10" in selected:
                guarded("b10", outcomes, lambda: b10_recording.run(settings, lab, node_ok))
            if "b11" in selected:
                guarded("b11", outcomes, lambda: b11_sessions.run(settings, lab, node_ok))
            if "b6" in selected:
                guarded("b6", outcomes, lambda: b6_memory.run(settings, cluster, lab, idle))
                if cluster.node is not None:
                    outcomes["b6"].details["mezd_rss_after_all_kb"] = _rss(cluster.node.pid)
            if not node_ok:
                outcomes.setdefault("b2", Outcome()).details["node_error"] = cluster.node_error
    finally:
        stop_all([*lab.procs(), *cluster.procs()])
    if selected & {"b4", "b5"}:
        fleet: dict[str, Any] = {}

        def b4() -> Outcome:
            b4_out, b5_out = b4_heartbeats.run(settings, with_b5="b5" in selected)
            fleet["b5"] = b5_out
            return b4_out

        guarded("b4", outcomes, b4)
        if "b5" in selected:
            outcomes["b5"] = fleet.get("b5") or Outcome(
                rows=[Row("B5", "ListNodes", "", None, note="fleet failed (see B4)")]
            )
        if "b4" not in selected:
            b6_rows = [r for r in outcomes["b4"].rows if r.bench == "B6"]
            outcomes.pop("b4")
            outcomes.setdefault("b6", Outcome()).rows += b6_rows
    if "b4p" in selected:
        guarded("b4p", outcomes, lambda: b4p_ha.run(settings))
    if "b8" in selected:
        guarded("b8", outcomes, lambda: b8_storm.run(settings))
    if "b9" in selected:
        guarded("b9", outcomes, lambda: b9_failover.run(settings))
    return outcomes


def _rss(pid: int) -> int:
    from bench.procstat import rss_kb

    with contextlib.suppress(OSError):
        return rss_kb(pid)
    return 0


PACKAGES = ("agent", "cli", "proto", "server")


def compile_bytecode() -> None:
    """Write Mezite's bytecode, as `pip install` does. An editable install run with
    PYTHONDONTWRITEBYTECODE=1 has none, and then every `mez` run compiles its ~100
    modules again (60 ms of `mez ssh` here): that is not what a user runs."""
    import compileall
    import importlib.util

    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        for where in (spec.submodule_search_locations or []) if spec else []:
            compileall.compile_dir(where, quiet=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, shorter windows")
    parser.add_argument(
        "--only", default=",".join(DEFAULT), help="comma list of b1..b11; b4p only when named"
    )
    parser.add_argument("--out", type=Path, default=HERE, help="where RESULTS.md goes")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    opts = parser.parse_args(argv)
    selected = {s.strip().lower() for s in opts.only.split(",") if s.strip()}
    unknown = selected - set(ALL)
    if unknown:
        parser.error(f"unknown benchmarks: {', '.join(sorted(unknown))}")
    started = time.monotonic()
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = describe()
    tmp = tempfile.mkdtemp(prefix="mezite-bench-")
    log(f"{'quick' if opts.quick else 'full'} run of {', '.join(sorted(selected))} in {tmp}")
    settings = Settings(quick=opts.quick, workdir=Path(tmp))
    compile_bytecode()
    try:
        outcomes = run_suite(settings, selected)
    finally:
        if not opts.keep:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    total = time.monotonic() - started
    opts.out.mkdir(parents=True, exist_ok=True)
    write_reports(
        opts.out,
        outcomes,
        machine,
        mode="quick" if opts.quick else "full",
        when=when,
        total_seconds=total,
    )
    log(f"wrote {opts.out / 'RESULTS.md'} and results.json; total {total:.0f}s")
    print(json.dumps({"total_seconds": round(total, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
