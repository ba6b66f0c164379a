"""Two `mezctl start` processes on one PostgreSQL store: one cluster, whichever auth
server a client talks to."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from proto.client import AuthClient, ClientIdentity
from proto.trust import certificate_agent_id
from proto.v1 import auth_pb2 as pb
from tests.e2e.procs import (
    AuthProcess,
    cli,
    cluster_pin,
    free_port,
    join_node,
    mezctl_start,
    mezd_start,
)
from tests.pg import PostgresServer

pytestmark = pytest.mark.e2e
PASSWORD = "a long enough password"


def admin_identity(data_dir: Path) -> ClientIdentity:
    admin = data_dir / "admin"
    cert = (admin / "cert.pem").read_bytes()
    return ClientIdentity(
        agent_id=certificate_agent_id(cert),
        cert_pem=cert,
        key_pem=(admin / "key.pem").read_bytes(),
    )


def add_alice(auth: AuthProcess) -> None:
    added = cli(
        "mezctl", "users", "add", "alice", "--roles", "access", "--logins", "alice",
        "--password-stdin", "--data-dir", str(auth.data_dir), stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr


def log_in(auth: AuthProcess, ca: bytes) -> str:
    with AuthClient(auth.addr, ca) as anon:
        reply = anon.rpc.AuthenticateLocal(
            pb.AuthenticateLocalRequest(username="alice", password=PASSWORD)
        )
    return str(reply.session_id)


def test_two_auth_servers_share_one_cluster(postgres: PostgresServer, tmp_path: Path) -> None:
    env = {"MEZITE_BACKEND_TYPE": "postgres", "MEZITE_BACKEND_DSN": postgres.fresh_dsn()}
    with (
        mezctl_start(tmp_path / "a", roles="auth", env=env) as first,
        mezctl_start(tmp_path / "b", roles="auth", env=env) as second,
    ):
        # One set of CAs, created by whichever started first.
        pin = cluster_pin(first.data_dir)
        assert cluster_pin(second.data_dir) == pin
        assert not (tmp_path / "a" / "backend.sqlite").exists()
        add_alice(first)
        ca = (second.data_dir / "admin" / "ca.pem").read_bytes()
        # Log in on the second server; the session works on the first.
        session = log_in(second, ca)
        with AuthClient(first.addr, ca, ClientIdentity(session_id=session)) as client:
            assert client.rpc.GetCurrentUser(pb.GetCurrentUserRequest()).username == "alice"
            client.rpc.Logout(pb.LogoutRequest())
        # One audit log: the first server lists the login the second one saw.
        deadline = time.monotonic() + 10
        while True:
            found = cli(
                "mezctl", "audit", "events", "--type", "user.login", "--format", "json",
                "--data-dir", str(first.data_dir),
            )  # fmt: skip
            if [e["user"] for e in json.loads(found.stdout)] == ["alice"]:
                break
            assert time.monotonic() < deadline, found.stdout
            time.sleep(0.2)
        assert not (first.data_dir / "audit.sqlite").exists()
        # Logging out on the first ends the session on the second, once the change feed
        # has brought the deletion into its memory (RFD 0014: NOTIFY, within a second).
        listed = cli(
            "mezctl", "users", "ls", "--format", "json", "--data-dir", str(second.data_dir)
        )
        assert [u["name"] for u in json.loads(listed.stdout)] == ["alice"]
        from proto.errors import NotAuthenticated

        deadline = time.monotonic() + 5
        with AuthClient(second.addr, ca, ClientIdentity(session_id=session)) as client:
            while True:
                try:
                    client.rpc.GetCurrentUser(pb.GetCurrentUserRequest())
                except NotAuthenticated:
                    break
                assert time.monotonic() < deadline, "the second server kept the session"
                time.sleep(0.05)

    # A restart finds everything where it was.
    with mezctl_start(tmp_path / "a", roles="auth", env=env) as again:
        assert cluster_pin(again.data_dir) == pin
        listed = cli("mezctl", "users", "ls", "--format", "json", "--data-dir", str(again.data_dir))
        assert [u["name"] for u in json.loads(listed.stdout)] == ["alice"]


def test_two_auth_servers_see_the_same_locks(postgres: PostgresServer, tmp_path: Path) -> None:
    from proto.errors import AccessDenied

    env = {"MEZITE_BACKEND_TYPE": "postgres", "MEZITE_BACKEND_DSN": postgres.fresh_dsn()}
    with (
        mezctl_start(tmp_path / "a", roles="auth", env=env) as first,
        mezctl_start(tmp_path / "b", roles="auth", env=env) as second,
    ):
        add_alice(first)
        ca = (second.data_dir / "admin" / "ca.pem").read_bytes()
        session = log_in(second, ca)
        locked = cli("mezctl", "lock", "add", "--user", "alice", "--reason", "both servers",
                     "--format", "json", "--data-dir", str(first.data_dir))  # fmt: skip
        assert locked.returncode == 0, locked.stderr
        name = json.loads(locked.stdout)["name"]
        listed = cli("mezctl", "lock", "ls", "--format", "json", "--data-dir", str(second.data_dir))
        assert [row["name"] for row in json.loads(listed.stdout)] == [name]
        # The second server refuses her session within its change feed's delay.
        deadline = time.monotonic() + 10
        with AuthClient(second.addr, ca, ClientIdentity(session_id=session)) as client:
            while True:
                try:
                    client.rpc.GetCurrentUser(pb.GetCurrentUserRequest())
                except AccessDenied as refused:
                    assert "both servers" in refused.message
                    break
                assert time.monotonic() < deadline, "the lock never reached the second server"
                time.sleep(0.1)
            removed = cli("mezctl", "lock", "rm", name, "--data-dir", str(second.data_dir))
            assert removed.returncode == 0, removed.stderr
            deadline = time.monotonic() + 10
            while True:
                try:
                    client.rpc.GetCurrentUser(pb.GetCurrentUserRequest())
                    break
                except AccessDenied:
                    assert time.monotonic() < deadline, "the first server kept the lock"
                    time.sleep(0.1)
        # And the first server, where the lock was made, lets her in again too.
        with AuthClient(first.addr, ca, ClientIdentity(session_id=session)) as client:
            deadline = time.monotonic() + 10
            while True:
                try:
                    client.rpc.GetCurrentUser(pb.GetCurrentUserRequest())
                    break
                except AccessDenied:
                    assert time.monotonic() < deadline
                    time.sleep(0.1)


def test_a_wrong_dsn_fails_fast_with_a_clear_error(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    dsn = f"host=127.0.0.1 port={postgres.port} user=nobody-here password=hunter2 dbname=x"
    done = cli(
        "mezctl", "start", "--roles", "auth", "--data-dir", str(tmp_path / "a"),
        "--listen", "127.0.0.1:0",
        env={"MEZITE_BACKEND_TYPE": "postgres", "MEZITE_BACKEND_DSN": dsn},
    )  # fmt: skip
    assert done.returncode != 0
    assert "PostgreSQL" in done.stderr and "nobody-here" in done.stderr
    assert "hunter2" not in done.stderr + done.stdout


def test_a_node_heartbeating_to_one_auth_server_is_listed_by_another(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    env = {"MEZITE_BACKEND_TYPE": "postgres", "MEZITE_BACKEND_DSN": postgres.fresh_dsn()}
    with (
        mezctl_start(tmp_path / "a", roles="auth", env=env) as first,
        mezctl_start(tmp_path / "b", roles="auth", env=env) as second,
    ):
        port = free_port()
        join_node(first, tmp_path / "node", "web-1", port)
        ca = (second.data_dir / "admin" / "ca.pem").read_bytes()

        def listed_by_second() -> list[str]:
            with AuthClient(second.addr, ca, admin_identity(second.data_dir)) as admin:
                reply = admin.rpc.ListNodes(pb.ListNodesRequest())
            return [f"{n.name}@{n.addr}" for n in reply.nodes]

        with mezd_start(tmp_path / "node", port) as node:
            deadline = time.monotonic() + 15
            while listed_by_second() != [f"web-1@127.0.0.1:{port}"]:
                assert time.monotonic() < deadline, listed_by_second()
                time.sleep(0.2)
            node.stop()
        # The node's auth server withdraws it when its heartbeats stop (presence TTL),
        # which this test does not wait for; stopping that auth server withdraws it now.
        first.stop()
        deadline = time.monotonic() + 15
        while listed_by_second():
            assert time.monotonic() < deadline, listed_by_second()
            time.sleep(0.2)
