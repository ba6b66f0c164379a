"""A node's addresses, with real processes: what its host certificate names when it is
given no --advertise-addr (OpenSSH by IP verifies it with an @cert-authority line), the
re-issue when they change, and where the proxy dials a node whose claim differs from
where auth saw it."""

from __future__ import annotations

import contextlib
import getpass
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
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

pytestmark = pytest.mark.e2e
PASSWORD = "a long enough password"
LOGIN = getpass.getuser()


@dataclass
class Cluster:
    auth: AuthProcess
    env: dict[str, str]
    home: Path  # the user's key, certificate and known_hosts
    tmp: Path


@contextlib.contextmanager
def _cluster(tmp: Path, env: dict[str, str] | None = None) -> Iterator[Cluster]:
    with mezctl_start(tmp / "data", env=env) as auth:
        added = cli("mezctl", "users", "add", "alice", "--roles", "access", "--logins", LOGIN,
                    "--password-stdin", "--data-dir", str(auth.data_dir),
                    stdin=PASSWORD + "\n")  # fmt: skip
        assert added.returncode == 0, added.stderr
        user_env = mez_env(tmp / "alice")
        done = cli("mez", "login", "--proxy", auth.web_addr, "--user", "alice",
                   "--password-stdin", "--ca-pin", cluster_pin(auth.data_dir),
                   stdin=PASSWORD + "\n", env=user_env)  # fmt: skip
        assert done.returncode == 0, done.stderr
        yield Cluster(auth, user_env, Path(user_env["MEZITE_HOME"]) / "e2e", tmp)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with _cluster(tmp_path_factory.mktemp("addrs")) as made:
        yield made


def _cert(node_dir: Path) -> tuple[set[str], int]:
    from cryptography.hazmat.primitives.serialization import (
        SSHCertificate,
        load_ssh_public_identity,
    )

    cert = load_ssh_public_identity((node_dir / "ssh_host_key-cert.pub").read_bytes())
    assert isinstance(cert, SSHCertificate)
    return {p.decode() for p in cert.valid_principals}, cert.serial


def _own(node_dir: Path) -> set[str]:
    doc = json.loads((node_dir / "identity.json").read_text())
    return {doc["agent_id"], doc["name"], f"{doc['name']}.{doc['cluster_name']}"}


def _certified(node_dir: Path, hosts: set[str]) -> set[str]:
    """The principals, once the node has had its certificate re-issued for ``hosts``."""
    deadline = time.monotonic() + 20
    while True:
        principals, _ = _cert(node_dir)
        if hosts <= principals or time.monotonic() > deadline:
            return principals
        time.sleep(0.1)


def _ssh(c: Cluster, host: str, port: int) -> subprocess.CompletedProcess[str]:
    """Plain OpenSSH by address, checking the host by the CA line alone."""
    return subprocess.run(
        ["ssh", "-F", "/dev/null", "-i", str(c.home / "key"),
         "-o", f"CertificateFile={c.home / 'key-cert.pub'}",
         "-o", f"UserKnownHostsFile={c.home / 'known_hosts'}",
         "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
         "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-p", str(port),
         f"{LOGIN}@{host}", "id", "-un"],
        input="", capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def _machine_ip() -> str:
    """This machine's address on its default route (found apart from the code under
    test: the kernel's source address choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("203.0.113.1", 9))  # no packet is sent
        return str(probe.getsockname()[0])


def test_a_node_is_certified_for_its_listen_address_and_again_when_it_changes(
    cluster: Cluster,
) -> None:
    node_dir, port = cluster.tmp / "n-listen", free_port()
    join_node(cluster.auth, node_dir, "n-listen", port, advertise=[])
    joined, _ = _cert(node_dir)
    assert joined == _own(node_dir)  # no address known at join
    with mezd_start(node_dir, port, listen_host="127.0.0.2"):
        assert _certified(node_dir, {"127.0.0.2"}) == _own(node_dir) | {"127.0.0.2"}
        _, serial = _cert(node_dir)
        done = _ssh(cluster, "127.0.0.2", port)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == LOGIN
    with mezd_start(node_dir, port, listen_host="127.0.0.3"):
        assert _certified(node_dir, {"127.0.0.3"}) == _own(node_dir) | {"127.0.0.3"}
        assert _cert(node_dir)[1] != serial  # re-issued, without the old address
        done = _ssh(cluster, "127.0.0.3", port)
        assert done.returncode == 0, done.stderr


def test_a_wildcard_node_is_certified_for_the_machines_addresses(cluster: Cluster) -> None:
    node_dir, port = cluster.tmp / "n-any", free_port()
    join_node(cluster.auth, node_dir, "n-any", port, advertise=[])
    ip = _machine_ip()
    with mezd_start(node_dir, port, listen_host="0.0.0.0"):
        principals = _certified(node_dir, {ip})
        assert ip in principals
        host_name = socket.gethostname().lower()
        assert host_name in principals or host_name == "localhost"
        assert "127.0.0.1" not in principals  # loopback is no address of the machine's
        done = _ssh(cluster, ip, port)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == LOGIN
        # The same node by an address its certificate does not name: refused, so the
        # success above is the principal's doing.
        refused = _ssh(cluster, "127.0.0.1", port)
        assert refused.returncode == 255
        assert "Host key verification failed" in refused.stderr


@pytest.mark.parametrize(
    ("claim", "why"),
    [
        ("proxy:3022", "is the proxy's name"),
        ("other.e2e:3022", "cluster's own names"),
        ("0.0.0.0:3022", "not an address a client connects to"),
        ("*.example.com:22", "invalid advertised address"),
    ],
)
def test_bad_claims_are_refused_at_join_and_spend_nothing(
    cluster: Cluster, claim: str, why: str
) -> None:
    node_dir = cluster.tmp / f"n-bad-{abs(hash(claim))}"
    made = cli("mezctl", "tokens", "add", "--type", "node", "--format", "json",
               "--data-dir", str(cluster.auth.data_dir))  # fmt: skip
    line = json.loads(made.stdout)["join"].split()
    join = ["mezd", "join", *line[2:], "--name", "n-bad", "--data-dir", str(node_dir)]
    done = cli(*join, "--advertise-addr", claim)
    assert done.returncode != 0
    assert why in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (node_dir / "identity.json").exists()
    # The token was not spent: the same line with a good address joins.
    again = cli(*join, "--advertise-addr", "n-bad.e2e:3022")
    assert again.returncode == 0, again.stderr
    assert "n-bad.e2e" in _cert(node_dir)[0]
    removed = cli("mezctl", "nodes", "rm", "n-bad", "--data-dir", str(cluster.auth.data_dir))
    assert removed.returncode == 0, removed.stderr


class Decoy:
    """A listener where a node claims to be: records whether anyone connected."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_server((host, port))
        self.sock.settimeout(0.2)
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                conn, _ = self.sock.accept()
                self.connections += 1
                conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def _mez_ssh(c: Cluster, node: str) -> subprocess.CompletedProcess[str]:
    """`mez ssh` through the proxy, once the proxy's node table has the node."""
    deadline = time.monotonic() + 15
    while True:
        done = cli("mez", "ssh", node, "id", "-un", stdin="", env=c.env)
        if "no node named" not in done.stderr or time.monotonic() > deadline:
            return done
        time.sleep(0.3)


@contextlib.contextmanager
def _node_claiming_elsewhere(c: Cluster, name: str) -> Iterator[Decoy]:
    """A node serving on 127.0.0.1 (where auth sees it) that claims 127.0.0.2, where a
    decoy listens on the same port."""
    node_dir, port = c.tmp / name, free_port()
    decoy = Decoy("127.0.0.2", port)
    try:
        join_node(c.auth, node_dir, name, port, advertise=[f"127.0.0.2:{port}"])
        with mezd_start(node_dir, port):
            yield decoy
    finally:
        decoy.close()


def test_the_proxy_dials_a_node_where_auth_saw_it(cluster: Cluster) -> None:
    with _node_claiming_elsewhere(cluster, "n-claims") as decoy:
        done = _mez_ssh(cluster, "n-claims")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == LOGIN
        assert decoy.connections == 0


def test_the_proxy_dials_a_claimed_address_its_allowlist_admits(tmp_path: Path) -> None:
    allow = {"MEZITE_PROXY_NODE_DIAL_ALLOW": "127.0.0.2/32"}
    with _cluster(tmp_path, env=allow) as c, _node_claiming_elsewhere(c, "n-claims") as decoy:
        done = _mez_ssh(c, "n-claims")
        assert done.returncode == 255
        assert decoy.connections >= 1
