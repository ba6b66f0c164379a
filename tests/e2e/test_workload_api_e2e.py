"""mezd's SPIFFE Workload API end to end, with nothing but Mezite: `mezctl start`, a
workload rule for uid nobody (`mezctl spiffe workloads add`), `mezd start --workload-api`,
then a process running as nobody fetches an SVID with the `spiffe` library's
WorkloadApiClient, logs in with `mez login --spiffe` through mezd's socket and runs
`mez ssh NODE id -un` as the role's login. A process as another uid is refused and
nothing is issued for it; a watching stream gets a renewed SVID at half-life, and ends
with PERMISSION_DENIED once the rule is removed."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.procs import (
    AuthProcess,
    cli,
    cluster_pin,
    free_port,
    join_node,
    mez_env,
    mezctl_start,
    mezd_start,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.geteuid() != 0, reason="running workloads as other uids needs root"),
]

LOGIN = getpass.getuser()
NOBODY = 65534
OTHER = 65533  # a uid no rule names
SPIFFE_ID = "spiffe://e2e/role/deployer/builder"

FETCH = """
import sys
from spiffe import WorkloadApiClient
try:
    with WorkloadApiClient(sys.argv[1], default_timeout=10) as client:
        svid = client.fetch_x509_svid()
except Exception as exc:
    print("REFUSED", exc)
    sys.exit(3)
leaf = svid.leaf
print(svid.spiffe_id, leaf.not_valid_after_utc.timestamp() - leaf.not_valid_before_utc.timestamp())
"""

WATCH = """
import sys, time, grpc
from spiffe import X509Svid
from spiffe._proto import workload_pb2, workload_pb2_grpc
channel = grpc.insecure_channel(sys.argv[1])
stub = workload_pb2_grpc.SpiffeWorkloadAPIStub(channel)
start = time.monotonic()
try:
    for reply in stub.FetchX509SVID(workload_pb2.X509SVIDRequest(),
                                    metadata=(("workload.spiffe.io", "true"),), timeout=60):
        svid = X509Svid.parse_raw(reply.svids[0].x509_svid, reply.svids[0].x509_svid_key)
        leaf = svid.leaf
        left = leaf.not_valid_after_utc.timestamp() - time.time()
        print("SVID", round(time.monotonic() - start, 1), format(leaf.serial_number, "x"),
              round(left, 1), flush=True)
except grpc.RpcError as err:
    print("END", round(time.monotonic() - start, 1), err.code().name, err.details(), flush=True)
"""


@dataclass
class Cluster:
    auth: AuthProcess
    pin: str
    socket: str
    home: Path

    def admin(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = cli("mezctl", *args, "--data-dir", str(self.auth.data_dir))
        assert done.returncode == 0, done.stderr
        return done


def as_uid(uid: int, *argv: str, env: dict[str, str] | None = None,
           timeout: float = 60) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run(
        ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *argv],
        capture_output=True, text=True, timeout=timeout, check=False,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def _online(auth: AuthProcess) -> bool:
    done = cli("mezctl", "nodes", "ls", "--format", "json", "--data-dir", str(auth.data_dir))
    return any(n["online"] for n in json.loads(done.stdout or "[]"))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("workload")
    with ExitStack() as stack:
        # Short (a socket path fits in 108 bytes) and reachable by nobody.
        where = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wl-")))
        os.chmod(where, 0o755)  # noqa: S103 - the socket is for every uid
        home = where / "home"
        home.mkdir()
        os.chown(home, NOBODY, NOBODY)
        auth = stack.enter_context(mezctl_start(tmp / "auth"))
        role = tmp / "deployer.yaml"
        role.write_text("kind: role\nmetadata:\n  name: deployer\nspec:\n  allow:\n"
                        f"    logins: [{LOGIN}]\n    node_labels:\n      env: prod\n")  # fmt: skip
        assert cli("mezctl", "create", "-f", str(role), "--data-dir",
                   str(auth.data_dir)).returncode == 0  # fmt: skip
        port = free_port()
        join_node(auth, tmp / "node", "web-1", port, labels="env=prod")
        address = f"unix://{where}/workload.sock"
        stack.enter_context(mezd_start(tmp / "node", port, "--workload-api", address))
        deadline = time.monotonic() + 20
        while not (_online(auth) and Path(where / "workload.sock").exists()):
            assert time.monotonic() < deadline, "the node never came online"
            time.sleep(0.2)
        yield Cluster(auth, cluster_pin(auth.data_dir), address, home)


def _issued(cluster: Cluster, wait: float = 5) -> list[dict[str, object]]:
    """The fields of the spiffe.svid.issue events (written in batches: waits for some)."""
    deadline = time.monotonic() + wait
    while True:
        done = cluster.admin("audit", "events", "--type", "spiffe.svid.issue", "--format", "json")
        found = [e["fields"] for e in json.loads(done.stdout)
                 if e["fields"].get("workload_rule") == "builder"]  # fmt: skip
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def test_a_process_as_the_rules_uid_gets_an_svid_and_logs_in(cluster: Cluster) -> None:
    cluster.admin("spiffe", "workloads", "add", "builder", "--role", "deployer", "--node-labels",
                  "env=prod", "--unix-uid", str(NOBODY), "--ttl", "10s")  # fmt: skip
    try:
        fetched = as_uid(NOBODY, sys.executable, "-c", FETCH, cluster.socket)
        assert fetched.returncode == 0, fetched.stdout + fetched.stderr
        spiffe_id, lifetime = fetched.stdout.split()
        assert spiffe_id == SPIFFE_ID
        assert float(lifetime) <= 10 + 60  # backdated a minute at most
        env = {**mez_env(cluster.home), "SPIFFE_ENDPOINT_SOCKET": cluster.socket,
               "HOME": str(cluster.home)}  # fmt: skip
        mez = str(Path(sys.executable).parent / "mez")
        login = as_uid(NOBODY, mez, "login", "--spiffe", "--proxy", cluster.auth.web_addr,
                       "--ca-pin", cluster.pin, env=env)  # fmt: skip
        assert login.returncode == 0, login.stderr
        assert SPIFFE_ID in login.stdout
        logged_in = time.monotonic()
        ran = as_uid(NOBODY, mez, "ssh", "web-1", "--", "id", "-un", env=env)
        assert (ran.returncode, ran.stdout.strip()) == (0, LOGIN), ran.stderr
        # The certificate lives no longer than the 10 s SVID; once it has expired,
        # `mez ssh` gets a certificate for the SVID mezd has renewed meanwhile.
        time.sleep(max(0.0, logged_in + 11 - time.monotonic()))
        again = as_uid(NOBODY, mez, "ssh", "web-1", "--", "id", "-un", env=env)
        assert (again.returncode, again.stdout.strip()) == (0, LOGIN), again.stderr
        issued = _issued(cluster)
        assert issued and {e["uid"] for e in issued} == {NOBODY}
        assert {e["node"] for e in issued} == {"web-1"}

        # Another uid: refused, and nothing issued for it.
        other = as_uid(OTHER, sys.executable, "-c", FETCH, cluster.socket)
        assert other.returncode == 3, other.stdout + other.stderr
        assert "PERMISSION_DENIED" in other.stdout or "no workload rule" in other.stdout
        time.sleep(1.5)  # for a batch of audit events to be written
        assert {e["uid"] for e in _issued(cluster)} == {NOBODY}
        assert len(_issued(cluster)) >= 2  # the first SVID, and its renewal
    finally:
        cli("mezctl", "spiffe", "workloads", "rm", "builder", "--data-dir",
            str(cluster.auth.data_dir))  # fmt: skip


def test_renewal_is_pushed_and_removing_the_rule_ends_it(cluster: Cluster) -> None:
    cluster.admin("spiffe", "workloads", "add", "builder", "--role", "deployer",
                  "--unix-uid", str(NOBODY), "--ttl", "10s")  # fmt: skip
    watch = subprocess.Popen(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
         sys.executable, "-c", WATCH, cluster.socket],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert watch.stdout is not None
    try:
        lines = [watch.stdout.readline().split()]
        lines.append(watch.stdout.readline().split())  # the renewed one, at half-life
        cluster.admin("spiffe", "workloads", "rm", "builder")
        removed_at = time.monotonic()
        lines.append(watch.stdout.readline().split())
        ended_after = time.monotonic() - removed_at
    finally:
        watch.kill()
        _, errors = watch.communicate()
    assert all(lines), (lines, errors)
    first, second, end = lines
    assert first[2] != second[2]  # a new certificate
    # At half of the lifetime the first had left (it may come from mezd's cache).
    renewed_after = float(second[1]) - float(first[1])
    assert float(first[3]) / 2 - 0.5 <= renewed_after <= float(first[3]) / 2 + 1.5, lines
    assert 9.0 <= float(second[3]) <= 10.0, lines  # a fresh 10 s SVID
    assert end[:3] == ["END", end[1], "PERMISSION_DENIED"], lines
    assert ended_after < 12, lines
    print(
        f"renewed after {renewed_after:.1f}s of {first[3]}s left; "
        f"ended {ended_after:.1f}s after the rule was removed"
    )


def test_a_rule_by_user_and_executable(cluster: Cluster) -> None:
    exe = os.path.realpath(sys.executable)
    cluster.admin("spiffe", "workloads", "add", "py", "--role", "deployer", "--unix-user",
                  "nobody", "--exe", exe)  # fmt: skip
    try:
        listed = json.loads(cluster.admin("spiffe", "workloads", "ls", "--format", "json").stdout)
        assert [(r["name"], r["unix_user"], r["exe"]) for r in listed] == [("py", "nobody", exe)]
        # mezd believes auth's last "no" for this process (the previous test's) for 5 s.
        deadline = time.monotonic() + 8
        while True:
            fetched = as_uid(NOBODY, sys.executable, "-c", FETCH, cluster.socket)
            if fetched.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert fetched.returncode == 0, fetched.stdout + fetched.stderr
        assert fetched.stdout.split()[0] == "spiffe://e2e/role/deployer/py"
        # Same executable, another user: refused.
        other = as_uid(OTHER, sys.executable, "-c", FETCH, cluster.socket)
        assert other.returncode == 3, other.stdout + other.stderr
        # Same user, another executable (the same program copied elsewhere): refused.
        copy = Path(cluster.socket.removeprefix("unix://")).parent / "python-copy"
        shutil.copy2(exe, copy)
        # Where the interpreter finds its library as nobody sees it; the venv's packages.
        found = as_uid(NOBODY, sys.executable, "-c", "import sys; print(sys.base_prefix)")
        site = [p for p in sys.path if p.endswith("site-packages")]
        env = {"PYTHONHOME": found.stdout.strip(), "PYTHONPATH": os.pathsep.join(site)}
        copied = as_uid(NOBODY, str(copy), "-S", "-c", FETCH, cluster.socket, env=env)
        assert copied.returncode == 3, copied.stdout + copied.stderr
        assert "PERMISSION_DENIED" in copied.stdout or "no workload rule" in copied.stdout
    finally:
        cluster.admin("spiffe", "workloads", "rm", "py")
