"""The local admin identity that `mezctl start` writes for mezctl on the auth host: new at
every start, hours long, renewed by the running server, and dead after a restart."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from cryptography import x509

from proto.client import AuthClient, ClientIdentity
from proto.clock import FakeClock
from proto.errors import NotAuthenticated
from proto.trust import certificate_agent_id
from proto.v1 import auth_pb2 as pb
from tests.servers import RunningAuth, running_auth


def copy_identity(auth: RunningAuth, to: Path) -> ClientIdentity:
    shutil.copytree(auth.data_dir / "admin", to)
    cert = (to / "cert.pem").read_bytes()
    return ClientIdentity(
        agent_id=certificate_agent_id(cert), cert_pem=cert, key_pem=(to / "key.pem").read_bytes()
    )


def status(addr: str, ca: bytes, identity: ClientIdentity) -> str:
    with AuthClient(addr, ca, identity) as client:
        return str(client.rpc.GetClusterStatus(pb.GetClusterStatusRequest()).caller)


def lifetime(cert_pem: bytes) -> float:
    cert = x509.load_pem_x509_certificate(cert_pem)
    return (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds()


def test_the_admin_identity_lasts_hours_and_dies_with_a_restart(tmp_path: Path) -> None:
    clock = FakeClock(time.time())
    with running_auth(tmp_path / "data", clock=clock) as auth:
        first = copy_identity(auth, tmp_path / "first")
        assert first.agent_id.startswith("local-admin-")
        assert status(auth.addr, auth.ca_pem, first) == f"agent:{first.agent_id}"
        assert first.cert_pem is not None and lifetime(first.cert_pem) <= 6 * 3600 + 60
    with running_auth(tmp_path / "data", clock=clock) as auth:
        second = auth.admin_identity()
        assert second.agent_id != first.agent_id
        assert status(auth.addr, auth.ca_pem, second) == f"agent:{second.agent_id}"
        with pytest.raises(NotAuthenticated):
            status(auth.addr, auth.ca_pem, first)


def test_the_running_server_renews_it_and_the_registration_lapses_without(
    tmp_path: Path,
) -> None:
    clock = FakeClock(time.time())
    with running_auth(tmp_path / "data", clock=clock) as auth:
        before = auth.admin_identity()
        auth.call(auth.server.renew_local_identities)
        after = auth.admin_identity()
        assert (after.agent_id, after.key_pem) == (before.agent_id, before.key_pem)
        assert after.cert_pem != before.cert_pem
        assert status(auth.addr, auth.ca_pem, after) == f"agent:{after.agent_id}"
        # Unrenewed past its lifetime, the registration lapses (its certificate would too).
        clock.advance(6 * 3600 + 1)
        with pytest.raises(NotAuthenticated):
            status(auth.addr, auth.ca_pem, after)


def test_the_in_process_proxy_reloads_its_renewed_identity(tmp_path: Path) -> None:
    from server.main import _start_proxy
    from tests.servers import test_config

    config = test_config(
        tmp_path / "data",
        **{"proxy.web_listen_addr": "127.0.0.1:0", "proxy.ssh_listen_addr": "127.0.0.1:0"},
    )
    with running_auth(tmp_path / "data") as auth:
        proxy = auth.loop.run(_start_proxy(config, auth.server))
        try:
            identity = auth.server.local_proxy
            assert identity is not None and identity.agent_id.startswith("local-proxy-")
            cert = (identity.directory / "cert.pem").read_bytes()
            old_client = proxy.auth_client()
            auth.call(auth.server.renew_local_identities)
            assert (identity.directory / "cert.pem").read_bytes() != cert
            fresh = proxy.auth_client()
            assert fresh is not old_client  # the next call dials with the new certificate
            assert fresh.identity.cert_pem == (identity.directory / "cert.pem").read_bytes()

            async def list_nodes() -> int:
                reply = await fresh.rpc.ListNodes(pb.ListNodesRequest())
                return len(reply.nodes)

            assert auth.loop.run(list_nodes()) == 0
        finally:
            auth.loop.run(proxy.stop())
