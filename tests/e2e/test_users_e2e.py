"""An operator's and a user's first hour, with the real mezctl and mez processes."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from proto.client import AuthClient, ClientIdentity
from proto.v1 import auth_pb2 as pb
from tests.e2e.procs import AuthProcess, cli, mezctl_start

pytestmark = pytest.mark.e2e
PASSWORD = "a long enough password"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with mezctl_start(tmp_path_factory.mktemp("e2e") / "data") as auth:
        yield auth


def mezctl(
    auth: AuthProcess, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return cli("mezctl", *args, "--data-dir", str(auth.data_dir), stdin=stdin)


def test_password_login_certificate_and_audit(cluster: AuthProcess, tmp_path: Path) -> None:
    done = mezctl(
        cluster, "users", "add", "alice", "--roles", "access", "--logins", "alice",
        "--password-stdin", stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    ca = (cluster.data_dir / "admin" / "ca.pem").read_bytes()
    with AuthClient(cluster.addr, ca) as anon:
        session = anon.rpc.AuthenticateLocal(
            pb.AuthenticateLocalRequest(username="alice", password=PASSWORD)
        )
    key = ed25519.Ed25519PrivateKey.generate()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    with AuthClient(cluster.addr, ca, ClientIdentity(session_id=session.session_id)) as client:
        certs = client.rpc.IssueUserCerts(
            pb.IssueUserCertsRequest(ssh_public_key=public, ttl_seconds=7200)
        )
    cert_file = tmp_path / "id-cert.pub"
    cert_file.write_text(certs.ssh_certificate + "\n")
    shown = subprocess.run(
        ["ssh-keygen", "-L", "-f", str(cert_file)], capture_output=True, text=True, check=True
    ).stdout
    assert "Type: ssh-ed25519-cert-v01@openssh.com user certificate" in shown
    assert re.search(r"Principals: \n\s+alice\n", shown)
    assert "Critical Options: (none)" in shown
    for ext in ("permit-pty", "permit-port-forwarding", "permit-agent-forwarding"):
        assert ext in shown
    assert "permit-X11-forwarding" not in shown and "permit-user-rc" not in shown
    valid = re.search(r"Valid: from (\S+) to (\S+)", shown)
    assert valid is not None
    start, end = (time.mktime(time.strptime(v, "%Y-%m-%dT%H:%M:%S")) for v in valid.groups())
    assert end - start == 7200 + 60

    events = mezctl(cluster, "audit", "events", "--format", "json", "--user", "alice")
    assert events.returncode == 0, events.stderr
    types = [e["type"] for e in json.loads(events.stdout)]
    assert {"user.login", "cert.create"} <= set(types)
    created = mezctl(cluster, "audit", "events", "--format", "json", "--type", "user.create")
    assert "alice" in {e["fields"]["name"] for e in json.loads(created.stdout)}
    assert PASSWORD not in events.stdout + created.stdout


def test_invite_flow_with_mez_set_password(cluster: AuthProcess) -> None:
    done = mezctl(cluster, "users", "add", "bob", "--roles", "access", "--logins", "bob")
    assert done.returncode == 0, done.stderr
    line = next(ln for ln in done.stdout.splitlines() if "mez set-password" in ln).split()
    assert line[:2] == ["mez", "set-password"]
    # The same invite as a link to the web UI of the proxy running with this data dir.
    origin = json.loads((cluster.data_dir / "proxy.json").read_text())["public_origin"]
    token = line[line.index("--token") + 1]
    assert f"  {origin}/web/#/invite/{token}" in done.stdout.splitlines()
    wrong_pin = list(line[2:])
    wrong_pin[wrong_pin.index("--ca-pin") + 1] = "sha256:" + "0" * 64
    refused = cli("mez", "set-password", *wrong_pin, "--password-stdin", stdin=PASSWORD + "\n")
    assert refused.returncode == 10 and "does not match the CA pin" in refused.stderr
    ok = cli("mez", "set-password", *line[2:], "--password-stdin", stdin=PASSWORD + "\n")
    assert ok.returncode == 0, ok.stderr
    assert "Password set for bob" in ok.stdout
    again = cli("mez", "set-password", *line[2:], "--password-stdin", stdin=PASSWORD + "\n")
    assert again.returncode == 3 and "invalid or expired invite" in again.stderr
    listed = json.loads(mezctl(cluster, "users", "ls", "--format", "json").stdout)
    assert {u["name"]: u["has_password"] for u in listed}["bob"] is True


def test_roles_from_yaml(cluster: AuthProcess, tmp_path: Path) -> None:
    role = tmp_path / "dev.yaml"
    role.write_text(
        "kind: role\nmetadata:\n  name: dev\nspec:\n  allow:\n    logins: [ubuntu]\n"
        "    node_labels:\n      env: dev\n  options:\n    max_session_ttl: 8h\n"
    )
    done = mezctl(cluster, "create", "-f", str(role))
    assert done.returncode == 0 and "role 'dev' created" in done.stdout, done.stderr
    shown = mezctl(cluster, "get", "roles", "dev")
    assert "name: dev" in shown.stdout and "8h" in shown.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: role\nmetadata:\n  name: bad\nspec:\n  allow:\n    login: [x]\n")
    refused = mezctl(cluster, "create", "-f", str(bad))
    assert refused.returncode == 2 and "spec.allow.login" in refused.stderr
    assert mezctl(cluster, "get", "roles", "bad").returncode == 5
    assert mezctl(cluster, "rm", "role/dev").returncode == 0
    assert mezctl(cluster, "get", "roles", "dev").returncode == 5
    assert mezctl(cluster, "rm", "role/admin").returncode == 2


def test_tokens_print_a_join_line(cluster: AuthProcess) -> None:
    done = mezctl(cluster, "tokens", "add", "--type", "node", "--ttl", "10m", "--labels", "env=dev")
    assert done.returncode == 0, done.stderr
    join = next(ln.strip() for ln in done.stdout.splitlines() if "mezd join" in ln)
    assert re.fullmatch(
        r"mezd join --token [0-9a-f]{16}\.\S{43} --auth-server 127\.0\.0\.1:\d+ "
        r"--ca-pin sha256:[0-9a-f]{64}",
        join,
    )
    secret = join.split()[3].split(".")[1]
    listed = mezctl(cluster, "tokens", "ls", "--format", "json")
    assert secret not in listed.stdout
    (token,) = json.loads(listed.stdout)
    assert token["type"] == "node" and token["labels"] == {"env": "dev"}
    assert mezctl(cluster, "tokens", "rm", token["name"]).returncode == 0
    assert json.loads(mezctl(cluster, "tokens", "ls", "--format", "json").stdout) == []


def test_connection_options_before_or_after_the_command(
    cluster: AuthProcess, tmp_path: Path
) -> None:
    """Declared once: taken before the command (mezctl --data-dir D users ls) and after it,
    as scripts and the README write them; after wins (so a script's flag beats an alias)."""
    data = ["--data-dir", str(cluster.data_dir)]
    spellings = [
        ["users", "ls", "--format", "json", *data],
        [*data, "users", "ls", "--format", "json"],
        ["--data-dir", str(tmp_path / "elsewhere"), "users", "ls", "--format", "json", *data],
        ["--auth-server", cluster.addr, "users", "ls", "--format", "json", *data],
    ]
    for args in spellings:
        done = cli("mezctl", *args)
        assert done.returncode == 0, (args, done.stderr)
        assert isinstance(json.loads(done.stdout), list)
    for args in (["status", *data], [*data, "status"], [*data, "tokens", "ls"]):
        assert cli("mezctl", *args).returncode == 0, args
