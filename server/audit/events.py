"""Audit events: what happened, to whom, when; named and coded in Teleport's style.

An event's type names the action (``user.login``); its code identifies the type and
severity for tooling (``T1000I``: ``I`` for info, ``W`` for a warning, which here always
means a failure or refusal). Failures have their own types (``user.login.failed``), so an
event's ``success`` follows from its type wherever a type has a failed counterpart.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import secrets
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from proto.clock import Clock
from proto.errors import BadParameter
from proto.event_types import EventType, known_event_type

FieldValue = str | int | float | bool | None | list[str]

MAX_FIELDS = 64
MAX_STRING_CHARS = 4096
MAX_LIST_ITEMS = 256
TRUNCATED_SUFFIX = "...[truncated]"

EVENT_CODES: Mapping[EventType, str] = MappingProxyType(
    {
        "user.login": "T1000I",
        "user.login.failed": "T1000W",
        "user.create": "T1002I",
        "user.update": "T1003I",
        "user.delete": "T1004I",
        "user.password_change": "T1005I",
        "user.reset": "T1006I",
        "session.logout": "T1009I",
        "session.start": "T2000I",
        "session.end": "T2004I",
        # A session or connection the server ended itself (a lock, a removed node).
        "session.terminated": "T2012W",
        "exec": "T3002I",
        "port_forward": "T3003I",
        "auth.failed": "T3007W",
        "sftp": "T3008I",
        "scp": "T3010I",
        "access.denied": "T4001W",
        "role.created": "T9000I",
        "role.deleted": "T9001I",
        "cert.create": "TC000I",
        "cert.create.failed": "TC000W",
        "token.create": "TJT00I",
        "token.delete": "TJT01I",
        "join": "TJ001I",
        "join.failed": "TJ001W",
        "agent.delete": "TJ002I",
        "agent_identity.create": "TAI00I",
        "agent_identity.bootstrap": "TAI01I",
        "agent_identity.renew": "TAI02I",
        "agent_identity.generation_mismatch": "TAI03W",
        "agent_identity.lock": "TAI04I",
        "agent_identity.unlock": "TAI05I",
        "agent_identity.delete": "TAI06I",
        "spiffe.authenticate": "TSP00I",
        "spiffe.authenticate.failed": "TSP00W",
        "spiffe.svid.issue": "TSP01I",
        "spiffe.trust.put": "TSP02I",
        "spiffe.trust.delete": "TSP03I",
        "spiffe.workload.create": "TSP04I",
        "spiffe.workload.delete": "TSP05I",
        "session.recording": "T2005I",
        "proxy.route": "TPR00I",
        # A browser terminal the proxy opened (or refused) for a web session.
        "web.terminal": "TWT00I",
        "lock.create": "TLK00I",
        "lock.delete": "TLK01I",
        "krl.export": "TLK02I",
    }
)

# The audit log is kept for years, copied to SIEMs and read by many people, so a secret
# that reaches it is leaked for good. Field names that suggest one are therefore refused
# outright (a programming error, raised loudly at the call site) rather than redacted,
# which would hide the bug. Names are compared lower-cased with separators removed, so
# "sessionId", "session-id" and "login_session_id" are all caught. ``session_id`` is
# forbidden inside fields because the event's own ``session_id`` is the SSH session id; a
# field of that name is most likely a login session's bearer secret.
_FORBIDDEN_NAME_PARTS = (
    "password",
    "passwd",
    "secret",
    "privatekey",
    "token",
    "sessionid",
    "authorization",
)
_ALLOWED_TOKEN_NAMES = ("tokenname",)  # the name of a join token is not the token
_PEM_PRIVATE_KEY_MARK = "PRIVATE KEY-----"
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")
_EVENT_ID = re.compile(r"[0-9a-f]{32}")


@dataclasses.dataclass(frozen=True)
class AuditEvent:
    """One immutable audit record. Construct with ``new_event``; constructing directly
    (or via ``from_dict``) applies the same validation and normalisation."""

    id: str
    type: str
    code: str
    time: float
    user: str = ""
    session_id: str = ""
    success: bool = True
    fields: Mapping[str, FieldValue] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _EVENT_ID.fullmatch(self.id):
            raise BadParameter("event id must be 32 lower-case hex characters")
        expected_code = event_code(self.type)
        if self.code != expected_code:
            raise BadParameter(f"event {self.type!r} has code {expected_code}, not {self.code!r}")
        if isinstance(self.time, bool) or not isinstance(self.time, int | float):
            raise BadParameter("event time must be a number of seconds")
        if not math.isfinite(self.time):
            raise BadParameter("event time must be finite")
        if not isinstance(self.success, bool):
            raise BadParameter("event success must be a bool")
        if is_failure_type(self.type) and self.success:
            raise BadParameter(f"event {self.type!r} records a failure; success must be False")
        if not self.success and f"{self.type}.failed" in EVENT_CODES:
            raise BadParameter(f"record a failed {self.type!r} as {self.type + '.failed'!r}")
        object.__setattr__(self, "time", float(self.time))
        object.__setattr__(self, "user", _clean_str("user", self.user))
        object.__setattr__(self, "session_id", _clean_str("session_id", self.session_id))
        object.__setattr__(self, "fields", _clean_fields(self.fields))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "code": self.code,
            "time": self.time,
            "user": self.user,
            "session_id": self.session_id,
            "success": self.success,
            "fields": {k: list(v) if isinstance(v, list) else v for k, v in self.fields.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditEvent:
        if not isinstance(data, Mapping):
            raise BadParameter("an audit event must be an object")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise BadParameter(f"unknown audit event keys: {sorted(map(str, unknown))}")
        missing = {"id", "type", "code", "time"} - set(data)
        if missing:
            raise BadParameter(f"audit event is missing {sorted(missing)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> AuditEvent:
        try:
            data = json.loads(text)
        except (ValueError, TypeError) as exc:
            raise BadParameter(f"audit event is not valid JSON: {exc}") from exc
        return cls.from_dict(data)


_last_id_prefix = 0


def _next_event_id() -> str:
    """32 hex digits: a strictly increasing 64-bit prefix (wall-clock nanoseconds, bumped
    past the previous one) and 64 random bits. Searches order by (time, id), so events
    stamped with the same time (a coarse or fake clock) still come back in the order they
    were emitted, and ids from different processes do not collide."""
    global _last_id_prefix
    _last_id_prefix = max(time.time_ns(), _last_id_prefix + 1)
    return f"{_last_id_prefix:016x}{secrets.randbits(64):016x}"


def new_event(
    type: EventType,
    *,
    clock: Clock,
    user: str = "",
    success: bool = True,
    session_id: str = "",
    **fields: FieldValue,
) -> AuditEvent:
    """A new event of a known ``type`` stamped with ``clock.now()``. For failure types
    (code ending in ``W``) ``success`` is always recorded as False."""
    code = event_code(type)
    return AuditEvent(
        id=_next_event_id(),
        type=type,
        code=code,
        time=clock.now(),
        user=user,
        session_id=session_id,
        success=success and not is_failure_type(type),
        fields=fields,
    )


def event_code(type: str) -> str:
    known = known_event_type(type) if isinstance(type, str) else None
    if known is None:
        raise BadParameter(f"unknown audit event type {type!r}")
    return EVENT_CODES[known]


def is_failure_type(type: str) -> bool:
    return event_code(type).endswith("W")


def check_field_name(name: str) -> None:
    """Raise ``BadParameter`` unless ``name`` is an acceptable, non-secret field name."""
    if not isinstance(name, str) or not _FIELD_NAME.fullmatch(name):
        raise BadParameter(f"invalid audit field name {name!r}")
    squashed = re.sub(r"[^a-z0-9]", "", name.lower())
    for allowed in _ALLOWED_TOKEN_NAMES:
        squashed = squashed.replace(allowed, "")
    for part in _FORBIDDEN_NAME_PARTS:
        if part in squashed:
            raise BadParameter(f"audit field {name!r} may hold a secret ({part}); not recorded")


def _clean_fields(fields: Mapping[str, FieldValue]) -> Mapping[str, FieldValue]:
    if not isinstance(fields, Mapping):
        raise BadParameter("audit event fields must be a mapping")
    if len(fields) > MAX_FIELDS:
        raise BadParameter(f"an audit event has at most {MAX_FIELDS} fields, not {len(fields)}")
    cleaned: dict[str, FieldValue] = {}
    for name, value in fields.items():
        check_field_name(name)
        cleaned[name] = _clean_value(name, value)
    return MappingProxyType(cleaned)


def _clean_value(name: str, value: object) -> FieldValue:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise BadParameter(f"audit field {name!r} must be a finite number")
        return value
    if isinstance(value, str):
        return _clean_str(name, value)
    if isinstance(value, list | tuple):
        if len(value) > MAX_LIST_ITEMS:
            raise BadParameter(f"audit field {name!r} has more than {MAX_LIST_ITEMS} items")
        if not all(isinstance(item, str) for item in value):
            raise BadParameter(f"audit field {name!r} may only list strings")
        return [_clean_str(name, item) for item in value]
    raise BadParameter(f"audit field {name!r} has unsupported type {type(value).__name__}")


def _clean_str(name: str, value: object) -> str:
    """Values often come from the other side of the connection (a username that failed
    to log in, a command line), so an over-long one is truncated rather than refused:
    refusing would lose the audit record. A private key is refused: it is never
    legitimate here, and must not be stored even in part."""
    if not isinstance(value, str):
        raise BadParameter(f"audit field {name!r} must be a string")
    if _PEM_PRIVATE_KEY_MARK in value:
        raise BadParameter(f"audit field {name!r} looks like a private key; not recorded")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")  # lone surrogates
    if len(value) > MAX_STRING_CHARS:
        value = value[: MAX_STRING_CHARS - len(TRUNCATED_SUFFIX)] + TRUNCATED_SUFFIX
    return value
