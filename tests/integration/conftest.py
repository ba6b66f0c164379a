"""Fixtures for tests against a real auth server on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from proto.client import AuthClient, ClientIdentity
from proto.clock import FakeClock
from proto.v1 import auth_pb2 as pb
from tests.servers import RunningAuth, running_auth

PASSWORD = "correct horse battery"


@pytest.fixture
def clock() -> FakeClock:
    # Real "now": the server's TLS certificate is issued from this clock and grpcio
    # checks it against the real one.
    return FakeClock(time.time())


@pytest.fixture
def auth(tmp_path: Path, clock: FakeClock) -> Iterator[RunningAuth]:
    with running_auth(tmp_path / "data", clock=clock) as running:
        yield running


def add_user(
    auth: RunningAuth,
    name: str,
    roles: tuple[str, ...] = ("access",),
    logins: tuple[str, ...] | None = None,
    password: str = PASSWORD,
) -> None:
    with auth.admin() as admin:
        admin.rpc.CreateUser(
            pb.CreateUserRequest(
                name=name,
                roles=list(roles),
                logins=list((name,) if logins is None else logins),
                password=password,
            ),
        )


def login(auth: RunningAuth, name: str, password: str = PASSWORD) -> AuthClient:
    """A client carrying a fresh session of ``name``."""
    with auth.client() as anon:
        reply = anon.rpc.AuthenticateLocal(
            pb.AuthenticateLocalRequest(username=name, password=password)
        )
    return auth.client(ClientIdentity(session_id=reply.session_id))


def audit_events(auth: RunningAuth, *types: str) -> list[pb.AuditEvent]:
    with auth.admin() as admin:
        reply = admin.rpc.SearchAuditEvents(
            pb.SearchAuditEventsRequest(types=list(types), limit=1000)
        )
    return list(reply.events)


def keys_under(auth: RunningAuth, prefix: str) -> list[str]:
    from server.backend import prefix_range

    items = auth.backend_call(lambda backend: backend.get_range(*prefix_range(prefix)))
    return [item.key for item in items]
