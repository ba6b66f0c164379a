"""The auth service's diagnostics address serves Prometheus metrics that move."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from proto.clock import FakeClock
from proto.errors import NotAuthenticated
from proto.v1 import auth_pb2 as pb
from tests.integration.conftest import PASSWORD, add_user, login
from tests.servers import running_auth

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGbXGV7e466vXaUKZ/Oz3TeiZUY0WuIamirAoUSjsfq6"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _value(text: str, prefix: str) -> float:
    lines = [ln for ln in text.splitlines() if ln.startswith(prefix)]
    return float(lines[0].rsplit(" ", 1)[1]) if lines else 0.0


def test_metrics_on_the_diagnostics_address(tmp_path: Path, clock: FakeClock) -> None:
    port = _free_port()
    with running_auth(
        tmp_path / "d", clock=clock, **{"auth.diag_addr": f"127.0.0.1:{port}"}
    ) as auth:
        add_user(auth, "alice")
        with login(auth, "alice") as client:
            client.rpc.IssueUserCerts(
                pb.IssueUserCertsRequest(ssh_public_key=KEY),
            )
        with auth.client() as anon, pytest.raises(NotAuthenticated):
            anon.rpc.AuthenticateLocal(
                pb.AuthenticateLocalRequest(username="alice", password="wrong-one!"),
            )
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    assert PASSWORD not in text
    assert _value(text, 'mezite_auth_logins_total{result="success"}') == 1
    assert _value(text, 'mezite_auth_logins_total{result="failure"}') == 1
    assert _value(text, 'mezite_auth_certificates_issued_total{type="user"}') == 1
    assert _value(text, "mezite_auth_sessions_created_minus_logged_out") == 1
    assert _value(text, 'mezite_auth_rpc_seconds_count{method="IssueUserCerts",status="OK"}') == 1
    assert "mezite_auth_online_nodes 0.0" in text
