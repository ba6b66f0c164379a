"""B9: failover under load. Two auth+proxy servers (`mezctl start`) on one PostgreSQL,
one `mezd` joined with both auth addresses, a user logged in with `mez login` naming
both proxies. Under load, server A is killed with SIGKILL; then A is restarted and B
killed. What is measured is how long each kind of client takes to be served by the
survivor, and whether any write the dead server had acknowledged is missing.

The gRPC load runs in a worker process (``python -m bench.b9_failover worker``) with the
project's client (``proto.client.AsyncAuthClient`` on ``"A,B"``): open-loop
IssueUserCerts and CreateToken (each acknowledged token name recorded), and ListNodes
polled on each server alone. The orchestrator runs `mez ssh NODE true` back to back and
reads which auth server holds the node's presence straight from PostgreSQL. Every
timestamp is ``time.monotonic()`` (``loop.time()`` in the worker), one clock for both
processes, so the worker's records are compared with the kill instant directly."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.b9_report import phase_rows
from bench.cluster import AUTH_ENV, BIN, PASSWORD, Proc, free_port, spawn, stop_all, wait_port
from bench.pg import Postgres, leases, presence_owners
from bench.results import Outcome, Row, Settings

NODE = "node1"
USER = "alice"


def _cli(
    prog: str, *args: str, stdin: str | None = None, env: dict[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run(
        [str(BIN / prog), *args], input=stdin, capture_output=True, text=True,
        timeout=timeout, check=False, env={**os.environ, **(env or {})},
    )  # fmt: skip


def _must(prog: str, *args: str, **kw: Any) -> str:
    done = _cli(prog, *args, **kw)
    if done.returncode != 0:
        raise RuntimeError(f"{prog} {' '.join(args[:2])} failed: {done.stderr.strip()[-500:]}")
    return done.stdout


@dataclass
class Server:
    """One `mezctl start` (auth + proxy) on fixed ports, so a restart comes back there."""

    name: str
    root: Path
    env: dict[str, str]
    auth: str = field(default_factory=lambda: f"127.0.0.1:{free_port()}")
    web: str = field(default_factory=lambda: f"127.0.0.1:{free_port()}")
    ssh: str = field(default_factory=lambda: f"127.0.0.1:{free_port()}")
    proc: Proc | None = None
    lease: str = ""  # its presence-lease id in PostgreSQL (new at every start)
    starts: int = 0

    @property
    def data_dir(self) -> Path:
        return self.root / f"{self.name}-data"

    def start(self, pg: Postgres) -> None:
        before = leases(pg)
        for ready in ("auth.json", "proxy.json"):
            (self.data_dir / ready).unlink(missing_ok=True)
        argv = [
            str(BIN / "mezctl"), "start", "--data-dir", str(self.data_dir),
            "--cluster-name", "bench", "--listen", self.auth,
            "--web-listen", self.web, "--proxy-ssh-listen", self.ssh,
        ]  # fmt: skip
        self.starts += 1
        log = self.root / f"{self.name}-{self.starts}.log"
        self.proc = spawn(f"auth {self.name}", argv, log, self.env)
        deadline = time.monotonic() + 60
        while not all((self.data_dir / f).exists() for f in ("auth.json", "proxy.json")):
            if not self.proc.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"mezctl start ({self.name}) failed:\n{self.proc.tail()}")
            time.sleep(0.05)
        new = leases(pg) - before
        if len(new) != 1:
            raise RuntimeError(f"cannot tell server {self.name}'s lease among {sorted(new)}")
        self.lease = new.pop()

    def kill(self) -> float:
        """SIGKILL; returns the instant just before the signal."""
        assert self.proc is not None
        t = time.monotonic()
        self.proc.popen.send_signal(signal.SIGKILL)
        self.proc.popen.wait(10)
        return t


class SSHLoop(threading.Thread):
    """`mez ssh NODE true` back to back (a short pause between runs): (start, end, rc)."""

    def __init__(self, env: dict[str, str], pause: float) -> None:
        super().__init__(name="mez-ssh", daemon=True)
        self.env = env
        self.pause = pause
        self.runs: list[tuple[float, float, int]] = []
        self.errors: Counter[str] = Counter()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            t0 = time.monotonic()
            try:
                ran = _cli("mez", "ssh", NODE, "true", stdin="", env=self.env, timeout=15)
                rc, err = ran.returncode, ran.stderr.strip().splitlines()[-1:] or [""]
            except subprocess.TimeoutExpired:
                rc, err = -1, ["timed out after 15 s"]
            self.runs.append((t0, time.monotonic(), rc))
            if rc != 0:
                self.errors[err[0][:160]] += 1
            self.done.wait(self.pause)


class PresenceLoop(threading.Thread):
    """Which auth server's presence item names the node, from PostgreSQL: (t, lease)."""

    def __init__(self, pg: Postgres) -> None:
        super().__init__(name="presence", daemon=True)
        self.pg = pg
        self.samples: list[tuple[float, str]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            with contextlib.suppress(Exception):  # a poll that fails is a gap, not an end
                owners = presence_owners(self.pg)
                self.samples.append((time.monotonic(), next(iter(owners.values()), "")))
            self.done.wait(0.1)


class Worker:
    """The load process; JSON lines on its stdout, commands on its stdin."""

    def __init__(self, argv: list[str], log: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        self._err = log.open("wb")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "bench.b9_failover", "worker", *argv], env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err, text=True,
        )  # fmt: skip
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.log = log

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            if line.startswith("{"):
                self.lines.put(json.loads(line))

    def expect(self, key: str, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                doc = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                if time.monotonic() > deadline or self.popen.poll() is not None:
                    tail = self.log.read_text(errors="replace")[-1500:]
                    raise RuntimeError(f"b9 worker gave no {key!r}: {tail}") from None
                continue
            if key in doc:
                return doc[key]

    def send(self, command: str) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(command + "\n")
        self.popen.stdin.flush()

    def stop(self) -> None:
        """Its stdin closed, it stops its load and exits; killed if it does not."""
        with contextlib.suppress(OSError):
            assert self.popen.stdin is not None
            self.popen.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(10)
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)
        self._err.close()


def run(settings: Settings) -> Outcome:
    d = settings.pick
    root = settings.workdir / "b9"
    root.mkdir(parents=True, exist_ok=True)
    pg = Postgres()
    servers: list[Server] = []
    node: Proc | None = None
    worker: Worker | None = None
    loops: list[SSHLoop | PresenceLoop] = []
    try:
        pg.start()
        env = {**AUTH_ENV, "MEZITE_BACKEND_TYPE": "postgres", "MEZITE_BACKEND_DSN": pg.dsn}
        a, b = Server("a", root, env), Server("b", root, env)
        servers = [a, b]
        a.start(pg)
        b.start(pg)
        status = _must("mezctl", "status", "--data-dir", str(a.data_dir), "--format", "json")
        pin = str(json.loads(status)["ca_pin"])
        node = _join_node(root, a, b, pin)
        user_env = _log_in(root, a, b, pin)
        presence, ssh = PresenceLoop(pg), SSHLoop(user_env, pause=d(0.2, 0.3))
        loops = [presence, ssh]
        presence.start()
        _wait(lambda: bool(presence.samples and presence.samples[-1][1]), 30, "node presence")
        rate, write_rate = d(100, 50), d(10, 5)
        worker = Worker(
            [
                "--auth", f"{a.auth},{b.auth}", "--servers", f"{a.auth},{b.auth}",
                "--ca", str(b.data_dir / "admin" / "ca.pem"),
                "--admin", str(b.data_dir / "admin"), "--user", USER,
                "--rate", str(rate), "--write-rate", str(write_rate),
            ],
            root / "worker.log",
        )  # fmt: skip
        worker.expect("ready", 60)
        ssh.start()
        pre, post = d(5.0, 3.0), d(15.0, 8.0)
        phases: list[dict[str, Any]] = []
        for victim, survivor in ((a, b), (b, a)):
            time.sleep(pre)
            held_by = presence.samples[-1][1] if presence.samples else ""
            kill = victim.kill()
            time.sleep(post)
            worker.send("verify")
            phases.append(
                {
                    "victim": victim.name, "survivor": survivor.name, "kill": kill,
                    "end": time.monotonic(), "pre": pre,
                    "victim_lease": victim.lease, "survivor_lease": survivor.lease,
                    "survivor_addr": survivor.auth, "survivor_index": servers.index(survivor),
                    "rate": rate, "write_rate": write_rate,
                    "node_was_on_victim": held_by == victim.lease,
                    "verify": worker.expect("verify", 60),
                }
            )  # fmt: skip
            if victim is a:
                victim.start(pg)  # back, so that B can be killed next
        worker.send("stop")
        final = worker.expect("final", 60)
        for loop in loops:
            loop.done.set()
        ssh.join(20)
    finally:
        for loop in loops:
            loop.done.set()
        if worker is not None:
            worker.stop()
        stop_all([p for p in [node, *(s.proc for s in servers)] if p is not None])
        pg.stop()
    rows: list[Row] = []
    details: dict[str, Any] = {"rate": rate, "write_rate": write_rate, "phases": []}
    for phase in phases:
        got, doc = phase_rows(phase, final, ssh.runs, presence.samples)
        rows += got
        details["phases"].append(doc)
    details["ssh_errors"] = dict(ssh.errors.most_common(5))
    details["cert_errors"] = final["issue_errors"]
    details["write_errors"] = final["write_errors"]
    return Outcome(rows=rows, details=details)


def _wait(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {what} after {timeout:.0f}s")
        time.sleep(0.1)


def _join_node(root: Path, a: Server, b: Server, pin: str) -> Proc:
    made = _must("mezctl", "tokens", "add", "--type", "node", "--format", "json",
                 "--data-dir", str(a.data_dir))  # fmt: skip
    port, node_dir = free_port(), root / "node-data"
    _must(
        "mezd", "join", "--token", json.loads(made)["token"], "--auth-server",
        f"{a.auth},{b.auth}", "--ca-pin", pin, "--name", NODE,
        "--advertise-addr", f"127.0.0.1:{port}", "--data-dir", str(node_dir),
    )  # fmt: skip
    argv = [str(BIN / "mezd"), "start", "--data-dir", str(node_dir),
            "--listen", f"127.0.0.1:{port}"]  # fmt: skip
    node = spawn("mezd", argv, root / "mezd.log")
    wait_port(port, node.popen)
    return node


def _log_in(root: Path, a: Server, b: Server, pin: str) -> dict[str, str]:
    import getpass

    _must(
        "mezctl", "users", "add", USER, "--roles", "access", "--logins", getpass.getuser(),
        "--password-stdin", "--data-dir", str(a.data_dir), stdin=PASSWORD + "\n",
    )  # fmt: skip
    env = {
        "MEZITE_HOME": str(root / "mezite-home"),
        "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring",
        "XDG_DATA_HOME": str(root / "xdg-data"),
    }
    _must(
        "mez", "login", "--proxy", f"{a.web},{b.web}", "--user", USER, "--password-stdin",
        "--ca-pin", pin, stdin=PASSWORD + "\n", env=env,
    )  # fmt: skip
    return env


# --- worker ---------------------------------------------------------------------------


def _short(exc: BaseException) -> str:
    text = getattr(exc, "message", "") or str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:160]


async def worker(opts: argparse.Namespace) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from bench.loadgen import open_loop
    from proto.client import AsyncAuthClient, ClientIdentity
    from proto.trust import certificate_agent_id
    from proto.v1 import auth_pb2 as pb

    loop = asyncio.get_running_loop()
    admin_dir = Path(opts.admin)
    ca = Path(opts.ca).read_bytes()  # noqa: ASYNC240 - setup, before any load
    cert = (admin_dir / "cert.pem").read_bytes()
    admin = ClientIdentity(
        agent_id=certificate_agent_id(cert), cert_pem=cert,
        key_pem=(admin_dir / "key.pem").read_bytes(),
    )  # fmt: skip
    anon = AsyncAuthClient(opts.auth, ca)
    reply = await anon.rpc.AuthenticateLocal(
        pb.AuthenticateLocalRequest(username=opts.user, password=PASSWORD)
    )
    user = AsyncAuthClient(opts.auth, ca, ClientIdentity(session_id=reply.session_id))
    writer = AsyncAuthClient(opts.auth, ca, admin)
    alone = [AsyncAuthClient(addr, ca, admin, timeout=2.0) for addr in opts.servers.split(",")]
    public = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    issue_req = pb.IssueUserCertsRequest(ssh_public_key=public)
    token_req = pb.CreateTokenRequest(type="node", ttl_seconds=3600)
    for _ in range(20):
        await user.rpc.IssueUserCerts(issue_req)
    issued: list[tuple[float, float, int]] = []
    writes: list[tuple[float, float, int]] = []
    acked: list[tuple[float, str]] = []
    listed: list[tuple[float, int, int]] = []  # (t, server index, 1 listed / 0 not / -1 error)
    issue_errors: Counter[str] = Counter()
    write_errors: Counter[str] = Counter()

    def record(into: list[tuple[float, float, int]], errors: Counter[str]) -> Any:
        def done(scheduled: float, finished: float, exc: BaseException | None) -> None:
            into.append((scheduled, finished, exc is None))
            if exc is not None:
                errors[_short(exc)] += 1

        return done

    async def write() -> None:
        made = await writer.rpc.CreateToken(token_req)
        acked.append((loop.time(), made.name))

    stop = asyncio.Event()

    async def poll_nodes() -> None:
        while not stop.is_set():
            for i, client in enumerate(alone):
                try:
                    nodes = (await client.rpc.ListNodes(pb.ListNodesRequest())).nodes
                    listed.append((loop.time(), i, int(any(n.name == NODE for n in nodes))))
                except Exception:
                    listed.append((loop.time(), i, -1))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.25)

    async def verify() -> dict[str, Any]:
        names = {name for _, name in acked}
        out: dict[str, Any] = {"acked": len(names)}
        for addr, client in zip(opts.servers.split(","), alone, strict=True):
            try:
                present = {
                    t.name for t in (await client.rpc.ListTokens(pb.ListTokensRequest())).tokens
                }
            except Exception as exc:
                out[addr] = {"reachable": False, "error": _short(exc)}
                continue
            out[addr] = {"reachable": True, "missing": sorted(names - present)}
        return out

    async def commands() -> None:
        while True:
            line = await asyncio.to_thread(sys.stdin.readline)
            if line.strip() == "verify":
                print(json.dumps({"verify": await verify()}), flush=True)
            elif not line or line.strip() == "stop":
                stop.set()
                return

    forever = 3600.0
    print(json.dumps({"ready": loop.time()}), flush=True)
    await asyncio.gather(
        commands(),
        poll_nodes(),
        open_loop(
            lambda: user.rpc.IssueUserCerts(issue_req), opts.rate, forever, call_timeout=5,
            on_done=record(issued, issue_errors), stop=stop,
        ),
        open_loop(
            write, opts.write_rate, forever, call_timeout=5,
            on_done=record(writes, write_errors), stop=stop,
        ),
    )  # fmt: skip
    final = {
        "issued": issued, "writes": writes, "acked": acked, "listed": listed,
        "servers": opts.servers.split(","), "verify": await verify(),
        "issue_errors": dict(issue_errors.most_common(5)),
        "write_errors": dict(write_errors.most_common(5)),
    }  # fmt: skip
    print(json.dumps({"final": final}), flush=True)
    for client in [anon, user, writer, *alone]:
        await client.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.b9_failover")
    parser.add_argument("mode", choices=["worker"])
    parser.add_argument("--auth", required=True, help="every auth address, A,B")
    parser.add_argument("--servers", required=True, help="the same, each polled alone")
    parser.add_argument("--ca", required=True)
    parser.add_argument("--admin", required=True, help="an admin identity directory")
    parser.add_argument("--user", required=True)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--write-rate", type=float, default=10)
    opts = parser.parse_args(argv)
    asyncio.run(worker(opts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
