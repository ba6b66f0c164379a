"""SPIFFE end to end with real processes: `mezctl start`, a role with a fixed login, a node
(`mezd`), an SVID from `mezctl spiffe issue`, a SPIFFE Workload API server on a unix
socket serving it, then `mez login --spiffe` through the Workload API (and from files)
and `mez ssh NODE` running a command as the role's login over real OpenSSH through the
proxy."""

from __future__ import annotations

import getpass
import json
import subprocess
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
from tests.workload_api import workload_api

pytestmark = pytest.mark.e2e

LOGIN = getpass.getuser()


@dataclass
class Cluster:
    auth: AuthProcess
    pin: str
    svid_dir: Path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("spiffe")
    with ExitStack() as stack:
        auth = stack.enter_context(mezctl_start(tmp / "auth"))
        admin = ["--data-dir", str(auth.data_dir)]
        role = tmp / "workload.yaml"
        role.write_text("kind: role\nmetadata:\n  name: deployer\nspec:\n  allow:\n"
                        f"    logins: [{LOGIN}]\n    node_labels:\n      env: prod\n")  # fmt: skip
        assert cli("mezctl", "create", "-f", str(role), *admin).returncode == 0
        port = free_port()
        join_node(auth, tmp / "node", "web-1", port, labels="env=prod")
        stack.enter_context(mezd_start(tmp / "node", port))
        issued = cli("mezctl", "spiffe", "issue", "--role", "deployer", "--workload", "ci",
                     "--ttl", "1h", "--out", str(tmp / "svid"), *admin)  # fmt: skip
        assert issued.returncode == 0, issued.stderr
        for name in ("svid.pem", "svid_key.pem", "bundle.pem"):
            assert (tmp / "svid" / name).stat().st_mode & 0o777 == 0o600
        deadline = time.monotonic() + 20
        while not _online(auth):
            assert time.monotonic() < deadline, "the node never came online"
            time.sleep(0.2)
        yield Cluster(auth, cluster_pin(auth.data_dir), tmp / "svid")


def _online(auth: AuthProcess) -> bool:
    done = cli("mezctl", "nodes", "ls", "--format", "json", "--data-dir", str(auth.data_dir))
    return any(n["online"] for n in json.loads(done.stdout or "[]"))


def _ssh_as_workload(env: dict[str, str]) -> None:
    ran = cli("mez", "ssh", "web-1", "--", "id", "-un", env=env)
    assert (ran.returncode, ran.stdout.strip()) == (0, LOGIN), ran.stderr


def test_a_workload_logs_in_through_the_workload_api_and_runs_a_command(
    cluster: Cluster, tmp_path: Path
) -> None:
    svid = cluster.svid_dir
    socket = tmp_path / "agent.sock"
    with workload_api(socket, (svid / "svid.pem").read_text(), (svid / "svid_key.pem").read_bytes(),
                      (svid / "bundle.pem").read_text()) as address:  # fmt: skip
        env = {**mez_env(tmp_path / "workload"), "SPIFFE_ENDPOINT_SOCKET": address}
        login = cli("mez", "login", "--spiffe", "--proxy", cluster.auth.web_addr,
                    "--ca-pin", cluster.pin, env=env)  # fmt: skip
        assert login.returncode == 0, login.stderr
        assert "spiffe://e2e/role/deployer/ci" in login.stdout
        _ssh_as_workload(env)
        status = cli("mez", "status", env=env)
        assert "SPIFFE ID:   spiffe://e2e/role/deployer/ci" in status.stdout, status.stderr
        listed = cli("mez", "ls", env=env)
        assert listed.returncode != 0 and "no session to list nodes" in listed.stderr
        assert "Traceback" not in listed.stderr
        # The certificate is reissued from the SVID when it has expired.
        cert = Path(env["MEZITE_HOME"]) / "e2e" / "key-cert.pub"
        cert.unlink()
        _ssh_as_workload(env)
        assert cert.exists()
        logout = cli("mez", "logout", env=env)
        assert logout.returncode == 0, logout.stderr
        assert not (Path(env["MEZITE_HOME"]) / "e2e" / "key").exists()
    audit = cli("mezctl", "audit", "events", "--type", "spiffe.authenticate", "--format", "json",
                "--data-dir", str(cluster.auth.data_dir))  # fmt: skip
    users = {e["user"] for e in json.loads(audit.stdout)}
    assert "spiffe://e2e/role/deployer/ci" in users


def test_a_workload_logs_in_from_svid_files(cluster: Cluster, tmp_path: Path) -> None:
    env = mez_env(tmp_path / "workload")
    login = cli("mez", "login", "--spiffe", "--svid", str(cluster.svid_dir / "svid.pem"),
                "--svid-key", str(cluster.svid_dir / "svid_key.pem"), "--proxy",
                cluster.auth.web_addr, "--ca-pin", cluster.pin, env=env)  # fmt: skip
    assert login.returncode == 0, login.stderr
    _ssh_as_workload(env)
    # mez scp and mez config (plain OpenSSH) work for a SPIFFE login too.
    local = tmp_path / "payload.txt"
    local.write_text("from a workload\n")
    remote = f"/tmp/mezite-spiffe-{tmp_path.name}.txt"
    copied = cli("mez", "scp", str(local), f"web-1:{remote}", env=env)
    assert copied.returncode == 0, copied.stderr
    assert Path(remote).read_text() == "from a workload\n"
    Path(remote).unlink()
    config = cli("mez", "config", env=env)
    assert config.returncode == 0, config.stderr
    (tmp_path / "ssh_config").write_text(config.stdout)
    plain = subprocess.run(["ssh", "-F", str(tmp_path / "ssh_config"), "web-1.e2e", "id", "-un"],
                           capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert (plain.returncode, plain.stdout.strip()) == (0, LOGIN), plain.stderr


def test_bad_spiffe_logins_are_one_line(cluster: Cluster, tmp_path: Path) -> None:
    env = {**mez_env(tmp_path / "workload"), "SPIFFE_ENDPOINT_SOCKET": ""}
    base = ["mez", "login", "--spiffe", "--proxy", cluster.auth.web_addr, "--ca-pin", cluster.pin]
    for extra, message in (
        ([], "where is the SVID?"),
        (["--svid", str(cluster.svid_dir / "svid.pem")], "--svid and --svid-key together"),
        (["--svid", str(cluster.svid_dir / "bundle.pem"), "--svid-key",
          str(cluster.svid_dir / "svid_key.pem")], "names no role"),  # the CA, not an SVID
        (["--workload-api", f"unix://{tmp_path}/none.sock"], "gave no SVID"),
    ):  # fmt: skip
        done = cli(*base, *extra, env=env)
        assert done.returncode != 0 and message in done.stderr, (extra, done.stderr)
        assert "Traceback" not in done.stderr
    direct = cli("mez", "login", "--spiffe", "--auth", cluster.auth.addr, "--ca-pin",
                 cluster.pin, env=env)  # fmt: skip
    assert direct.returncode != 0 and "goes through a proxy" in direct.stderr
