"""The error table: one class, one gRPC status, one HTTP status, one exit code."""

from __future__ import annotations

import grpc
import grpclib.const
import pytest

from proto.errors import ALL_ERRORS, Internal, MeziteError, from_grpc_status, from_http_status


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda c: c.__name__)
def test_round_trip(cls: type[MeziteError]) -> None:
    assert grpc.StatusCode[cls.grpc_status].name == cls.grpc_status
    assert grpclib.const.Status[cls.grpc_status].name == cls.grpc_status
    back = from_grpc_status(cls.grpc_status, "msg")
    assert type(back) is cls and back.message == "msg"
    assert type(from_http_status(cls.http_status, "m")) is cls


def test_mappings_are_unique() -> None:
    for attr in ("grpc_status", "http_status", "exit_code"):
        values = [getattr(cls, attr) for cls in ALL_ERRORS]
        assert len(values) == len(set(values)), attr
    assert all(cls.exit_code not in (0, 255) for cls in ALL_ERRORS)


def test_unknown_statuses_become_internal() -> None:
    assert type(from_grpc_status("DATA_LOSS", "x")) is Internal
    assert type(from_http_status(418, "x")) is Internal
