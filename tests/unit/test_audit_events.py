"""Audit events: codes, validation, and keeping secrets out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from proto.clock import FakeClock
from proto.errors import BadParameter
from server.audit import (
    EVENT_CODES,
    MAX_FIELDS,
    MAX_STRING_CHARS,
    AuditEvent,
    new_event,
)

CLOCK = FakeClock(1_800_000_000.0)


def test_codes_follow_teleport_style() -> None:
    expected = {
        "user.login": "T1000I",
        "user.login.failed": "T1000W",
        "user.create": "T1002I",
        "session.start": "T2000I",
        "session.end": "T2004I",
        "exec": "T3002I",
        "auth.failed": "T3007W",
        "access.denied": "T4001W",
        "cert.create.failed": "TC000W",
        "token.create": "TJT00I",
        "join": "TJ001I",
        "agent_identity.generation_mismatch": "TAI03W",
        "spiffe.authenticate.failed": "TSP00W",
        "proxy.route": "TPR00I",
        "web.terminal": "TWT00I",
    }
    for event_type, code in expected.items():
        assert EVENT_CODES[event_type] == code
    codes = list(EVENT_CODES.values())
    assert len(codes) == len(set(codes))
    with pytest.raises(TypeError):
        EVENT_CODES["x"] = "y"  # type: ignore[index]


def test_new_event_stamps_id_time_and_code() -> None:
    event = new_event("user.create", clock=CLOCK, user="admin", target="alice")
    assert len(event.id) == 32 and int(event.id, 16) >= 0
    assert event.time == CLOCK.now()
    assert event.code == "T1002I"
    assert event.success is True
    assert dict(event.fields) == {"target": "alice"}
    assert new_event("user.create", clock=CLOCK).id != event.id


def test_unknown_type_is_rejected() -> None:
    with pytest.raises(BadParameter):
        new_event("user.hacked", clock=CLOCK)


def test_failure_types_record_failure() -> None:
    assert new_event("join.failed", clock=CLOCK).success is False
    assert new_event("exec", clock=CLOCK, success=False, exit_code=1).success is False
    with pytest.raises(BadParameter, match=r"user\.login\.failed"):
        new_event("user.login", clock=CLOCK, success=False)


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "new_password",
        "Password",
        "secret",
        "client_secret",
        "private_key",
        "privateKey",
        "token",
        "join_token",
        "bearer_token",
        "session_id",
        "sessionId",
        "login_session_id",
        "authorization",
        "Authorization",
    ],
)
def test_secret_field_names_are_rejected(name: str) -> None:
    base = new_event("user.login", clock=CLOCK)
    with pytest.raises(BadParameter, match="secret"):
        AuditEvent(id=base.id, type=base.type, code=base.code, time=base.time, fields={name: "x"})
    fields: dict[str, Any] = {name: "x"}
    if name != "session_id":  # as a keyword, that is the event's own (SSH) session id
        with pytest.raises(BadParameter, match="secret"):
            new_event("user.login", clock=CLOCK, **fields)


def test_token_name_is_allowed() -> None:
    event = new_event("token.create", clock=CLOCK, token_name="ci-runner")
    assert event.fields["token_name"] == "ci-runner"


@pytest.mark.parametrize(
    "value", ["-----BEGIN OPENSSH PRIVATE KEY-----\nabc", ["ok", "x PRIVATE KEY-----"]]
)
def test_private_keys_are_rejected(value: str | list[str]) -> None:
    with pytest.raises(BadParameter, match="private key"):
        new_event("cert.create", clock=CLOCK, detail=value)


def test_long_strings_are_truncated() -> None:
    event = new_event("exec", clock=CLOCK, command="x" * 10_000, user="u" * 10_000)
    command = event.fields["command"]
    assert isinstance(command, str)
    assert len(command) == MAX_STRING_CHARS and command.endswith("[truncated]")
    assert len(event.user) == MAX_STRING_CHARS


def test_field_count_is_capped() -> None:
    fields: dict[str, Any] = {f"f{i}": "v" for i in range(MAX_FIELDS)}
    new_event("exec", clock=CLOCK, **fields)
    fields["one_more"] = "v"
    with pytest.raises(BadParameter):
        new_event("exec", clock=CLOCK, **fields)


@pytest.mark.parametrize("value", [{"nested": 1}, float("nan"), [1, 2], b"bytes"])
def test_unsupported_values_are_rejected(value: object) -> None:
    with pytest.raises(BadParameter):
        new_event("exec", clock=CLOCK, detail=value)  # type: ignore[arg-type]


def test_fields_are_immutable() -> None:
    logins = ["root"]
    event = new_event("cert.create", clock=CLOCK, logins=logins)
    logins.append("admin")
    assert event.fields["logins"] == ["root"]
    with pytest.raises(TypeError):
        event.fields["logins"] = []  # type: ignore[index]


def test_json_round_trip() -> None:
    event = new_event(
        "port_forward",
        clock=CLOCK,
        user="alice",
        session_id="abc",
        addr="10.0.0.1:22",
        port=22,
        ok=True,
        ratio=0.5,
        none=None,
        hosts=["a", "b"],
    )
    assert AuditEvent.from_json(event.to_json()) == event
    assert AuditEvent.from_dict(event.to_dict()) == event


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"id": "x"}',
        '{"id": "' + "a" * 32 + '", "type": "exec", "code": "T9999I", "time": 1.0}',
        '{"id": "' + "a" * 32 + '", "type": "exec", "code": "T3002I", "time": 1.0, "extra": 1}',
        '{"id": "'
        + "a" * 32
        + '", "type": "exec", "code": "T3002I", "time": 1.0, "fields": {"password": "x"}}',
    ],
)
def test_from_json_validates(text: str) -> None:
    with pytest.raises(BadParameter):
        AuditEvent.from_json(text)


def test_lone_surrogates_are_replaced() -> None:
    event = new_event("user.login.failed", clock=CLOCK, user="bad\udcffname")
    assert event.user == "bad?name"
    event.to_json().encode("utf-8")


def test_event_types_and_codes_name_the_same_types() -> None:
    from proto.event_types import EVENT_TYPES

    assert set(EVENT_CODES) == EVENT_TYPES


def test_mypy_refuses_an_event_type_the_log_does_not_know(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mypy import api

    snippet = tmp_path / "emitter.py"
    snippet.write_text(
        "from proto.event_types import EventType\n"
        "def emit(type: EventType) -> None: ...\n"
        'emit("user.login")\n'
        'emit("user.logon")\n'
    )
    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # mypy finds `proto` from here
    (tmp_path / "mypy.ini").write_text("[mypy]\n")
    config = ["--config-file", str(tmp_path / "mypy.ini")]
    cache = ["--no-incremental", "--cache-dir", str(tmp_path / "cache")]
    out, _, status = api.run([str(snippet), "--strict", *config, *cache])
    assert status == 1
    assert out.count("error:") == 1 and ':4: error: Argument 1 to "emit"' in out
