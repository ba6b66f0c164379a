"""Where the time goes on the Mezite side of a missed target: py-spy samples a real
process while a benchmark's load runs, and the collapsed stacks are summarised as the
functions with the most samples (self and inclusive).

    .venv/bin/python -m bench.profile certs        # auth during saturated IssueUserCerts
    .venv/bin/python -m bench.profile listnodes    # auth during ListNodes walks (N nodes)
    .venv/bin/python -m bench.profile throughput   # mezd during a bulk transfer
    .venv/bin/python -m bench.profile recording    # mezd during B10's PTY output, on and off

Needs py-spy (`.venv/bin/pip install py-spy`); not part of `python -m bench`."""

from __future__ import annotations

import argparse
import collections
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.cluster import Cluster
from bench.lab import Lab
from bench.results import run_worker

PY_SPY = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")


def record(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            PY_SPY,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(int(seconds)),
            "--format",
            "raw",
            "--rate",
            "200",
            "--output",
            str(out),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def summarise(raw: Path, top: int = 20) -> str:
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        frames = [f.split(" (")[0] + " (" + f.split(" (")[-1] for f in stack.split(";") if f]
        total += n
        if frames:
            own[frames[-1]] += n
        for frame in set(frames):
            incl[frame] += n
    lines = [f"{total} samples", "", "self:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    # Inclusive, without the frames every sample shares (interpreter, CLI, event loop).
    lines += ["", "inclusive (below the event loop):"]
    shared = {f for f, n in incl.items() if n >= 0.55 * total}
    interesting = [(f, n) for f, n in incl.most_common() if f not in shared]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in interesting[:top]]
    return "\n".join(lines)


def profile_certs(tmp: Path, seconds: float) -> str:
    cluster = Cluster(tmp / "cluster")
    try:
        cluster.start_auth()
        cluster.add_user()
        assert cluster.auth is not None
        out = tmp / "certs.txt"
        args = [
            "worker",
            "--addr",
            cluster.addr,
            "--ca",
            str(cluster.data_dir / "admin" / "ca.pem"),
            "--user",
            cluster.user,
            "--auth-pid",
            str(cluster.auth.pid),
            "--open-seconds",
            "1",
            "--sat-seconds",
            str(seconds + 12),
            "--login-seconds",
            "1",
        ]
        # The saturated IssueUserCerts phase starts ~10 s in (warm-up and open-loop phases).
        timer = threading.Timer(14.0, lambda: record(cluster.auth.pid, seconds, out).wait())  # type: ignore[union-attr]
        timer.start()
        run_worker("b1_certs", args, timeout=300)
        timer.join()
        return summarise(out)
    finally:
        cluster.stop()


def profile_listnodes(tmp: Path, n: int) -> str:
    from bench import b5_listnodes
    from bench.fleet import CLUSTER

    cluster = Cluster(tmp / "fleet", name=CLUSTER)
    run_worker(
        "fleet",
        [
            "seed",
            "--data-dir",
            str(cluster.data_dir),
            "--n",
            str(n),
            "--out",
            str(tmp / "certs.jsonl"),
        ],
        timeout=600,
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.b5_listnodes",
            "serve",
            "--data-dir",
            str(cluster.data_dir),
            "--cluster",
            CLUSTER,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        import json

        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        out = tmp / "listnodes.txt"
        spy = record(proc.pid, 20, out)
        b5_listnodes.measure(ready["addr"], cluster.data_dir / "admin", repeat=1)
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        spy.wait()
        return summarise(out)
    finally:
        proc.terminate()
        proc.wait(30)


@contextmanager
def _cluster_with_node(tmp: Path) -> Iterator[tuple[Cluster, Lab] | str]:
    """A cluster with a logged-in user and one node found by the lab, or why not."""
    cluster = Cluster(tmp / "cluster")
    lab = Lab(cluster, tmp / "openssh")
    try:
        cluster.start_auth()
        cluster.add_user()
        cluster.mez_login()
        if not cluster.start_node():
            yield f"mezd did not start: {cluster.node_error}"
            return
        lab.find_node()
        yield cluster, lab
    finally:
        cluster.stop()


def profile_throughput(tmp: Path, mib: int) -> str:
    from bench.b3_throughput import transfer

    with _cluster_with_node(tmp) as started:
        if isinstance(started, str):
            return started
        cluster, lab = started
        assert cluster.node is not None
        out = tmp / "throughput.txt"
        spy = record(cluster.node.pid, 60, out)
        transfer(lab, lab.node_ssh("cat > /dev/null"), mib * 1024 * 1024, timeout=120)
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        spy.wait()
        return summarise(out)


def profile_recording(tmp: Path, mib: int, runs: int = 4) -> str:
    """mezd during B10's PTY output: the same runs recorded and not, each profiled."""
    from bench import b10_recording

    with _cluster_with_node(tmp) as started:
        if isinstance(started, str):
            return started
        cluster, lab = started
        assert cluster.node is not None
        env_off, profile_off = b10_recording._unrecorded_profile(lab)
        command = f"head -c {mib * 1024 * 1024} /dev/zero | tr '\\0' x"
        spool = cluster.root / "node-data" / "recordings"
        cases = {
            "recorded": (lab.node_ssh(command, flags=("-tt",)), lab.user_env()),
            "not recorded": (lab.node_ssh(command, flags=("-tt",), profile=profile_off), env_off),
        }
        report = []
        for name, (argv, env) in cases.items():
            out = tmp / f"recording-{name}.txt"
            spy = record(cluster.node.pid, 120, out)
            took = []
            for _ in range(runs):  # drained after each, as in B10 (the upload shows apart)
                took.append(b10_recording._once(argv, env, mib * 1024 * 1024))
                b10_recording._drained(spool)
            spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            spy.wait()
            seconds = ", ".join(f"{t:.2f}" for t in took)
            report += [f"== {name}: {runs} x {mib} MiB in {seconds} s", summarise(out), ""]
        return "\n".join(report)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.profile")
    parser.add_argument("target", choices=["certs", "listnodes", "throughput", "recording"])
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--nodes", type=int, default=50_000)
    parser.add_argument("--mib", type=int, default=512)
    opts = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mezite-profile-") as tmp:
        if opts.target == "certs":
            print(profile_certs(Path(tmp), opts.seconds))
        elif opts.target == "listnodes":
            print(profile_listnodes(Path(tmp), opts.nodes))
        elif opts.target == "recording":
            print(profile_recording(Path(tmp), min(opts.mib, 48)))
        else:
            print(profile_throughput(Path(tmp), opts.mib))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
