"""The auth server's lifecycle and its error boundary."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from proto import errors
from proto.v1 import auth_pb2 as pb
from server.auth.crypto.ca import load_or_create_authorities
from server.auth.server import AuthServer
from server.backend import SQLiteBackend
from tests.servers import running_auth


def _status(data_dir: Path) -> pb.GetClusterStatusResponse:
    with running_auth(data_dir) as auth, auth.admin() as client:
        reply: pb.GetClusterStatusResponse = client.rpc.GetClusterStatus(
            pb.GetClusterStatusRequest()
        )
        return reply


def test_certificate_authorities_survive_a_restart(tmp_path: Path) -> None:
    first = _status(tmp_path / "data")
    second = _status(tmp_path / "data")
    assert first.ca_pin == second.ca_pin
    assert list(first.authorities) == list(second.authorities)
    kinds = {ca.kind for ca in first.authorities}
    assert kinds == {"user_ssh", "host_ssh", "host_x509", "spiffe_x509"}
    # A different data dir is a different cluster.
    assert _status(tmp_path / "other").ca_pin != first.ca_pin


async def test_concurrent_first_starts_agree_on_one_set_of_cas(tmp_path: Path) -> None:
    import asyncio

    from proto.clock import SystemClock

    async with SQLiteBackend(tmp_path / "b.sqlite") as backend:
        results = await asyncio.gather(
            *(load_or_create_authorities(backend, "c1", SystemClock()) for _ in range(10))
        )
    assert len({r.host_x509.pin for r in results}) == 1
    assert len({r.user_ssh.fingerprint for r in results}) == 1
    assert len({r.spiffe_x509.pin for r in results}) == 1
    assert {r.trust_domain for r in results} == {"c1"}
    assert results[0].spiffe_x509.pin != results[0].host_x509.pin  # its own key


async def test_a_data_dir_keeps_its_cluster_name(tmp_path: Path) -> None:
    from proto.clock import SystemClock

    async with SQLiteBackend(tmp_path / "b.sqlite") as backend:
        await load_or_create_authorities(backend, "first", SystemClock())
        with pytest.raises(errors.BadParameter, match="belongs to cluster 'first'"):
            await load_or_create_authorities(backend, "second", SystemClock())


async def test_the_spiffe_trust_domain_is_fixed_at_the_first_start(tmp_path: Path) -> None:
    from proto.clock import SystemClock

    async with SQLiteBackend(tmp_path / "b.sqlite") as backend:
        cas = await load_or_create_authorities(backend, "c1", SystemClock(), "prod.example")
        assert cas.trust_domain == "prod.example"
        again = await load_or_create_authorities(backend, "c1", SystemClock())  # not configured
        assert (again.trust_domain, again.spiffe_x509.pin) == ("prod.example", cas.spiffe_x509.pin)
        with pytest.raises(errors.BadParameter, match=r"spiffe_trust_domain is 'prod\.example'"):
            await load_or_create_authorities(backend, "c1", SystemClock(), "other.example")


def test_secrets_on_disk_are_private(tmp_path: Path) -> None:
    with running_auth(tmp_path / "data") as auth:
        for rel in ("admin/key.pem", "admin/cert.pem", "tls/server.key", "backend.sqlite"):
            mode = stat.S_IMODE((auth.data_dir / rel).stat().st_mode)
            assert mode == 0o600, rel
        assert stat.S_IMODE(auth.data_dir.stat().st_mode) == 0o700


class _Boom:
    """Stands in for a service whose handler fails: raises whatever it is told to."""

    raise_next: Exception = RuntimeError("db password=hunter2 at /secret/path")

    async def get_cluster_cas(
        self, request: pb.GetClusterCAsRequest, ctx: object
    ) -> pb.GetClusterCAsResponse:
        raise self.raise_next


@pytest.fixture
def boom_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(AuthServer, "services", lambda self, cas: [_Boom()])
    with running_auth(tmp_path / "data") as auth:
        yield auth


def test_unexpected_errors_become_internal_with_a_request_id_and_no_details(
    boom_server,  # type: ignore[no-untyped-def]
    caplog: pytest.LogCaptureFixture,
) -> None:
    _Boom.raise_next = RuntimeError("db password=hunter2 at /secret/path")
    with boom_server.client() as client, pytest.raises(errors.Internal) as info:
        client.rpc.GetClusterCAs(pb.GetClusterCAsRequest())
    message = str(info.value)
    assert "request id" in message
    assert "hunter2" not in message and "Traceback" not in message
    request_id = message.rsplit(" ", 1)[1].rstrip(")")
    assert any(request_id in rec.getMessage() for rec in caplog.records)


@pytest.mark.parametrize(
    "cls", [c for c in errors.ALL_ERRORS if c is not errors.Internal], ids=lambda c: c.__name__
)
def test_errors_cross_the_wire_as_themselves(
    boom_server,  # type: ignore[no-untyped-def]
    cls: type[errors.MeziteError],
) -> None:
    _Boom.raise_next = cls("what happened")
    with boom_server.client() as client, pytest.raises(errors.MeziteError) as info:
        client.rpc.GetClusterCAs(pb.GetClusterCAsRequest())
    if cls is errors.ConnectionProblem:
        # UNAVAILABLE reads as "cannot reach" on the client: still ConnectionProblem.
        assert type(info.value) is errors.ConnectionProblem
    else:
        assert type(info.value) is cls
        assert info.value.message == "what happened"
