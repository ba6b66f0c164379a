"""The proxy's web API in a real `mezctl start` process, driven with curl."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from proto.client import AuthClient, ClientIdentity
from proto.errors import NotAuthenticated
from proto.v1 import auth_pb2 as pb
from tests.e2e.procs import AuthProcess, cli, mezctl_start

pytestmark = pytest.mark.e2e
PASSWORD = "a long enough password"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthProcess]:
    with mezctl_start(tmp_path_factory.mktemp("proxy") / "data") as auth:
        done = cli(
            "mezctl",
            "users",
            "add",
            "alice",
            "--roles",
            "access",
            "--logins",
            "alice",
            "--password-stdin",
            "--data-dir",
            str(auth.data_dir),
            stdin=PASSWORD + "\n",
        )
        assert done.returncode == 0, done.stderr
        yield auth


def curl(cluster: AuthProcess, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    ca = tmp / "ca.pem"
    ca.write_bytes((cluster.data_dir / "admin" / "ca.pem").read_bytes())
    return subprocess.run(
        ["curl", "-sS", "--cacert", str(ca), "-D", "-", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_curl_login_cookie_bearer_csrf_and_logout(cluster: AuthProcess, tmp_path: Path) -> None:
    base = f"https://{cluster.web_addr}/v1/webapi"
    origin = f"https://{cluster.web_addr}"
    body = json.dumps({"username": "alice", "password": PASSWORD})
    login = curl(
        cluster,
        tmp_path,
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "--data",
        body,
        f"{base}/login",
    )
    assert login.returncode == 0, login.stderr
    head, _, payload = login.stdout.partition("\n\n")
    assert head.startswith("HTTP/1.1 200")
    cookie = next(ln for ln in head.splitlines() if ln.lower().startswith("set-cookie:"))
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "secure", "path", "samesite"} <= flags
    assert "samesite=strict" in cookie.lower() and "path=/" in cookie.lower()
    session = json.loads(payload)["session_id"]

    bearer = curl(cluster, tmp_path, "-H", f"Authorization: Bearer {session}", f"{base}/nodes")
    assert bearer.stdout.startswith("HTTP/1.1 200"), bearer.stdout
    by_cookie = curl(cluster, tmp_path, "--cookie", f"mezite_session={session}", f"{base}/me")
    assert '"alice"' in by_cookie.stdout

    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGbXGV7e466vXaUKZ/Oz3TeiZUY0WuIamirAoUSjsfq6"
    certs = json.dumps({"public_key": key, "ttl_seconds": 600})
    foreign = curl(
        cluster,
        tmp_path,
        "-X",
        "POST",
        "--cookie",
        f"mezite_session={session}",
        "-H",
        "Origin: https://evil.example",
        "-H",
        "X-Mezite-CSRF: 1",
        "-H",
        "Content-Type: application/json",
        "--data",
        certs,
        f"{base}/certs",
    )
    assert foreign.stdout.startswith("HTTP/1.1 403"), foreign.stdout
    same = curl(
        cluster,
        tmp_path,
        "-X",
        "POST",
        "--cookie",
        f"mezite_session={session}",
        "-H",
        f"Origin: {origin}",
        "-H",
        "X-Mezite-CSRF: 1",
        "-H",
        "Content-Type: application/json",
        "--data",
        certs,
        f"{base}/certs",
    )
    assert same.stdout.startswith("HTTP/1.1 200"), same.stdout

    out = curl(
        cluster,
        tmp_path,
        "-X",
        "DELETE",
        "-H",
        f"Authorization: Bearer {session}",
        f"{base}/session",
    )
    assert out.stdout.startswith("HTTP/1.1 204"), out.stdout
    again = curl(cluster, tmp_path, "-H", f"Authorization: Bearer {session}", f"{base}/me")
    assert again.stdout.startswith("HTTP/1.1 401")
    ca = (cluster.data_dir / "admin" / "ca.pem").read_bytes()
    with (
        AuthClient(cluster.addr, ca, ClientIdentity(session_id=session)) as grpc_client,
        pytest.raises(NotAuthenticated),
    ):
        grpc_client.rpc.GetCurrentUser(pb.GetCurrentUserRequest())


def test_health_and_ping(cluster: AuthProcess, tmp_path: Path) -> None:
    health = curl(cluster, tmp_path, f"https://{cluster.web_addr}/healthz")
    assert health.stdout.startswith("HTTP/1.1 200")
    ping = curl(cluster, tmp_path, f"https://{cluster.web_addr}/v1/webapi/ping")
    doc = json.loads(ping.stdout.partition("\n\n")[2])
    assert doc["cluster_name"] == "e2e" and doc["ca_pins"][0].startswith("sha256:")
