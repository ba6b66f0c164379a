"""Roles: what a user may do, as data.

A role has an ``allow`` and a ``deny`` side (``RoleConditions``: OS logins and node-label
rules) and session ``options``. ``server.auth.rbac.AccessChecker`` evaluates a user's roles;
this module defines the data, validates it, converts it to and from the wire and storage
forms, and stores it (``RoleStore``, keys ``roles/<name>``).

Admin privilege is the role *name* ``admin`` (the server checks ``ADMIN_ROLE in roles``),
not anything a role's spec says; the preset ``admin`` role therefore cannot be deleted.
"""

from __future__ import annotations

import builtins
import json
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from proto.errors import AlreadyExists, BadParameter, NotFound
from server.backend import Backend, Item, prefix_range
from server.backend.mirror import Reads

if TYPE_CHECKING:
    from proto.v1 import auth_pb2

__all__ = [
    "ACCESS_ROLE",
    "ADMIN_ROLE",
    "AUDITOR_ROLE",
    "DEFAULT_SESSION_TTL",
    "INTERNAL_LOGINS",
    "MAX_LABEL_KEYS",
    "MAX_LABEL_VALUES",
    "MAX_LOGINS",
    "MAX_SESSION_TTL",
    "PRESET_ROLES",
    "ROLE_PREFIX",
    "WILDCARD",
    "Role",
    "RoleConditions",
    "RoleOptions",
    "RoleStore",
    "is_valid_login",
    "login_problem",
    "role_from_json",
    "role_from_proto",
    "role_to_json",
    "role_to_proto",
    "validate_login",
    "validate_role",
    "validate_role_name",
]

ADMIN_ROLE = "admin"
ACCESS_ROLE = "access"
AUDITOR_ROLE = "auditor"

#: The one template a login may be: the user's ``logins`` trait.
INTERNAL_LOGINS = "{{internal.logins}}"

DEFAULT_SESSION_TTL = 12 * 3600.0
MAX_SESSION_TTL = 30 * 3600.0

MAX_LOGINS = 64
MAX_LOGIN_BYTES = 255
MAX_LABEL_KEYS = 32
MAX_LABEL_VALUES = 32
MAX_LABEL_VALUE_CHARS = 253
WILDCARD = "*"

ROLE_PREFIX = "roles/"
_JSON_VERSION = 1

_ROLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_LABEL_KEY = re.compile(r"[A-Za-z0-9._/-]{1,63}")


def _show(value: object) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


def _freeze_labels(labels: object) -> Mapping[str, tuple[str, ...]]:
    if not isinstance(labels, Mapping):
        raise BadParameter(f"node_labels must be a mapping of label name to values, not {labels!r}")
    frozen: dict[str, tuple[str, ...]] = {}
    for key, values in labels.items():
        if isinstance(values, str):
            raise BadParameter(f"node_labels[{_show(key)}] must be a list of values, not a string")
        if not isinstance(values, Iterable):
            raise BadParameter(f"node_labels[{_show(key)}] must be a list of values")
        frozen[key] = tuple(values)
    return MappingProxyType(frozen)


@dataclass(frozen=True, slots=True)
class RoleConditions:
    """One side (allow or deny) of a role: OS logins and node-label rules.

    ``node_labels`` maps a label name to the values it may have (``"*"``: any value); a
    node matches when it has every listed label with one of its values. An empty mapping
    matches no node. Inputs are copied into immutable containers on construction.
    """

    logins: tuple[str, ...] = ()
    node_labels: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        logins: object = self.logins
        if isinstance(logins, str) or not isinstance(logins, Iterable):
            raise BadParameter(f"logins must be a list of strings, not {logins!r}")
        object.__setattr__(self, "logins", tuple(logins))
        object.__setattr__(self, "node_labels", _freeze_labels(self.node_labels))

    def __hash__(self) -> int:
        return hash((self.logins, tuple(sorted(self.node_labels.items()))))


@dataclass(frozen=True, slots=True)
class RoleOptions:
    """Session options. ``max_session_ttl`` is seconds; 0 means the default (12h)."""

    max_session_ttl: float = 0
    permit_pty: bool = False
    port_forwarding: bool = False
    agent_forwarding: bool = False
    record_sessions: bool = True  # PTY sessions are recorded unless every role says no


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    allow: RoleConditions = field(default_factory=RoleConditions)
    deny: RoleConditions = field(default_factory=RoleConditions)
    options: RoleOptions = field(default_factory=RoleOptions)


# --- validation ----------------------------------------------------------------------


def validate_role_name(name: object) -> str:
    if not isinstance(name, str) or not _ROLE_NAME.fullmatch(name):
        raise BadParameter(
            f"invalid role name {_show(name)}: use 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def login_problem(login: object) -> str | None:
    """Why ``login`` is not a valid OS login, or None if it is: the one rule for every
    login Mezite takes (users, roles, agent identities, locks) and for the principals of
    the user certificates made from them, so a login accepted anywhere can be signed."""
    if not isinstance(login, str):
        return "must be a string"
    if "{{" in login or "}}" in login:
        return "is a template; only {{internal.logins}} is supported"
    try:
        size = len(login.encode("utf-8"))
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    if size == 0:
        return "must not be empty"
    if size > MAX_LOGIN_BYTES:
        return f"is longer than {MAX_LOGIN_BYTES} bytes"
    if login.startswith("-"):
        return "must not start with '-'"
    for ch in login:
        if ch == ",":
            return "must not contain ','"
        if ch in "*?":
            return f"must not contain the wildcard {ch!r}"
        if ch == "!":  # negation in OpenSSH pattern lists
            return "must not contain '!'"
        if ch.isspace():
            return "must not contain whitespace"
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            return "must not contain control characters"
    return None


def is_valid_login(login: object) -> bool:
    """Whether ``login`` is a concrete OS login (templates are not)."""
    return login_problem(login) is None


def validate_login(login: object) -> str:
    problem = login_problem(login)
    if problem is not None:
        raise BadParameter(f"invalid login {_show(login)}: {problem}")
    assert isinstance(login, str)
    return login


def _validate_conditions(conditions: RoleConditions, where: str) -> None:
    if not isinstance(conditions, RoleConditions):
        raise BadParameter(f"{where} must be RoleConditions")
    if len(conditions.logins) > MAX_LOGINS:
        raise BadParameter(
            f"{where}.logins has {len(conditions.logins)} entries: the limit is {MAX_LOGINS}"
        )
    for login in conditions.logins:
        if login == INTERNAL_LOGINS:
            continue
        if isinstance(login, str) and ("{{" in login or "}}" in login):
            raise BadParameter(
                f"{where}.logins: unsupported template {_show(login)}; "
                f"the only template is {INTERNAL_LOGINS}"
            )
        problem = login_problem(login)
        if problem is not None:
            raise BadParameter(f"{where}.logins: invalid login {_show(login)}: {problem}")

    labels = conditions.node_labels
    if len(labels) > MAX_LABEL_KEYS:
        raise BadParameter(
            f"{where}.node_labels has {len(labels)} keys: the limit is {MAX_LABEL_KEYS}"
        )
    for key, values in labels.items():
        if not isinstance(key, str) or not (key == WILDCARD or _LABEL_KEY.fullmatch(key)):
            raise BadParameter(
                f"{where}.node_labels: invalid label name {_show(key)}: use '*' or 1 to 63 "
                "letters, digits, '.', '_', '/' or '-'"
            )
        at = f"{where}.node_labels[{_show(key)}]"
        if not values:
            raise BadParameter(f"{at} has no values: list at least one (or '*' for any)")
        if len(values) > MAX_LABEL_VALUES:
            raise BadParameter(f"{at} has {len(values)} values: the limit is {MAX_LABEL_VALUES}")
        for value in values:
            if not isinstance(value, str):
                raise BadParameter(f"{at}: label value {value!r} must be a string")
            if "{{" in value or "}}" in value:
                raise BadParameter(f"{at}: unsupported template {_show(value)} in a label value")
            if not value or len(value) > MAX_LABEL_VALUE_CHARS:
                raise BadParameter(
                    f"{at}: label value {_show(value)} must be 1 to "
                    f"{MAX_LABEL_VALUE_CHARS} characters"
                )
            if not value.isprintable():
                raise BadParameter(
                    f"{at}: label value {_show(value)} contains control or unprintable characters"
                )
            if key == WILDCARD and value != WILDCARD:
                raise BadParameter(
                    f"{at}: the label name '*' only allows the value '*', not {_show(value)}"
                )


def _validate_options(options: RoleOptions) -> None:
    if not isinstance(options, RoleOptions):
        raise BadParameter("options must be RoleOptions")
    ttl: object = options.max_session_ttl
    if isinstance(ttl, bool) or not isinstance(ttl, int | float):
        raise BadParameter(f"options.max_session_ttl must be a number of seconds, not {ttl!r}")
    if not math.isfinite(ttl):
        raise BadParameter(f"options.max_session_ttl must be a finite number, got {ttl!r}")
    if ttl < 0:
        raise BadParameter(f"options.max_session_ttl must not be negative, got {ttl!r}")
    if ttl != int(ttl):
        raise BadParameter(f"options.max_session_ttl must be whole seconds, got {ttl!r}")
    if ttl > MAX_SESSION_TTL:
        raise BadParameter(
            f"options.max_session_ttl {ttl:g}s is too long: the limit is 30h ({MAX_SESSION_TTL:g}s)"
        )
    for flag in ("permit_pty", "port_forwarding", "agent_forwarding", "record_sessions"):
        if not isinstance(getattr(options, flag), bool):
            raise BadParameter(f"options.{flag} must be true or false")


def validate_role(role: Role) -> Role:
    """Return ``role`` if it is valid; ``BadParameter`` naming the problem otherwise."""
    if not isinstance(role, Role):
        raise BadParameter("not a role")
    validate_role_name(role.name)
    _validate_conditions(role.allow, f"role {role.name}: allow")
    _validate_conditions(role.deny, f"role {role.name}: deny")
    try:
        _validate_options(role.options)
    except BadParameter as exc:
        raise BadParameter(f"role {role.name}: {exc.message}") from None
    return role


# --- wire form ----------------------------------------------------------------------


def _conditions_to_proto(conditions: RoleConditions) -> auth_pb2.RoleConditions:
    from proto.v1 import auth_pb2

    msg = auth_pb2.RoleConditions(logins=conditions.logins)
    for key, values in conditions.node_labels.items():
        msg.node_labels[key].values.extend(values)
    return msg


def role_to_proto(role: Role) -> auth_pb2.Role:
    from proto.v1 import auth_pb2

    return auth_pb2.Role(
        name=role.name,
        allow=_conditions_to_proto(role.allow),
        deny=_conditions_to_proto(role.deny),
        options=auth_pb2.RoleOptions(
            max_session_ttl=int(role.options.max_session_ttl),
            permit_pty=role.options.permit_pty,
            port_forwarding=role.options.port_forwarding,
            agent_forwarding=role.options.agent_forwarding,
            record_sessions=role.options.record_sessions,
        ),
    )


def _conditions_from_proto(msg: auth_pb2.RoleConditions) -> RoleConditions:
    return RoleConditions(
        logins=tuple(msg.logins),
        node_labels={key: tuple(msg.node_labels[key].values) for key in sorted(msg.node_labels)},
    )


def role_from_proto(msg: auth_pb2.Role) -> Role:
    """The validated role a wire message describes; ``BadParameter`` if it is invalid."""
    return validate_role(
        Role(
            name=msg.name,
            allow=_conditions_from_proto(msg.allow),
            deny=_conditions_from_proto(msg.deny),
            options=RoleOptions(
                max_session_ttl=float(msg.options.max_session_ttl),
                permit_pty=msg.options.permit_pty,
                port_forwarding=msg.options.port_forwarding,
                agent_forwarding=msg.options.agent_forwarding,
                record_sessions=msg.options.record_sessions
                if msg.options.HasField("record_sessions")
                else True,
            ),
        )
    )


# --- storage form -------------------------------------------------------------------


def _conditions_to_dict(conditions: RoleConditions) -> dict[str, Any]:
    return {
        "logins": list(conditions.logins),
        "node_labels": {key: list(values) for key, values in conditions.node_labels.items()},
    }


def role_to_json(role: Role) -> bytes:
    """The stored form of a (valid) role."""
    document = {
        "version": _JSON_VERSION,
        "name": role.name,
        "allow": _conditions_to_dict(role.allow),
        "deny": _conditions_to_dict(role.deny),
        "options": {
            "max_session_ttl": role.options.max_session_ttl,
            "permit_pty": role.options.permit_pty,
            "port_forwarding": role.options.port_forwarding,
            "agent_forwarding": role.options.agent_forwarding,
            "record_sessions": role.options.record_sessions,
        },
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def _conditions_from_dict(data: Any) -> RoleConditions:
    if not isinstance(data, dict):
        raise BadParameter("conditions must be an object")
    return RoleConditions(logins=data.get("logins", ()), node_labels=data.get("node_labels", {}))


def role_from_json(data: bytes) -> Role:
    """The validated role a stored record holds; ``BadParameter`` if it is malformed."""
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise BadParameter(f"stored role is malformed: {exc}") from None
    try:
        if not isinstance(document, dict):
            raise BadParameter("not a JSON object")
        if document.get("version") != _JSON_VERSION:
            raise BadParameter(f"unsupported version {document.get('version')!r}")
        options = document.get("options", {})
        if not isinstance(options, dict):
            raise BadParameter("options must be an object")
        role = Role(
            name=document.get("name", ""),
            allow=_conditions_from_dict(document.get("allow", {})),
            deny=_conditions_from_dict(document.get("deny", {})),
            options=RoleOptions(
                max_session_ttl=options.get("max_session_ttl", 0),
                permit_pty=options.get("permit_pty", False),
                port_forwarding=options.get("port_forwarding", False),
                agent_forwarding=options.get("agent_forwarding", False),
                record_sessions=options.get("record_sessions", True),
            ),
        )
        return validate_role(role)
    except BadParameter as exc:
        raise BadParameter(f"stored role is malformed: {exc.message}") from None


# --- presets ------------------------------------------------------------------------

_EVERYDAY_ALLOW = RoleConditions(logins=(INTERNAL_LOGINS,), node_labels={WILDCARD: (WILDCARD,)})
_EVERYDAY_OPTIONS = RoleOptions(
    max_session_ttl=DEFAULT_SESSION_TTL,
    permit_pty=True,
    port_forwarding=True,
    agent_forwarding=True,
)

#: Created by ``RoleStore.ensure_presets`` when absent; never overwritten afterwards.
PRESET_ROLES: tuple[Role, ...] = (
    Role(name=ADMIN_ROLE, allow=_EVERYDAY_ALLOW, options=_EVERYDAY_OPTIONS),
    Role(name=ACCESS_ROLE, allow=_EVERYDAY_ALLOW, options=_EVERYDAY_OPTIONS),
    # Exists to read the audit log: no logins, no nodes.
    Role(name=AUDITOR_ROLE),
)


# --- the store ----------------------------------------------------------------------


def _key(name: str) -> str:
    return ROLE_PREFIX + name


class RoleStore:
    """Roles in the backend under ``roles/<name>``, always validated on the way in and
    out."""

    def __init__(self, backend: Backend, reads: Reads | None = None) -> None:
        self._backend = backend
        self._reads: Reads = reads or backend  # a mirror on the auth server

    async def get(self, name: str) -> Role:
        validate_role_name(name)
        try:
            item = await self._reads.get(_key(name))
        except NotFound:
            raise NotFound(f"role {name} not found") from None
        return role_from_json(item.value)

    async def get_many(self, names: Iterable[str]) -> builtins.list[Role]:
        """The roles named, in order, without duplicates; names that are malformed or
        whose role no longer exists are skipped (the user simply loses that role)."""
        roles: builtins.list[Role] = []
        seen: set[str] = set()
        for name in names:
            if name in seen:
                continue
            seen.add(name)
            try:
                roles.append(await self.get(name))
            except (NotFound, BadParameter):
                continue
        return roles

    async def list(self) -> builtins.list[Role]:
        """Every role, sorted by name."""
        start, end = prefix_range(ROLE_PREFIX)
        items = await self._backend.get_range(start, end)
        return [role_from_json(item.value) for item in items]

    async def upsert(self, role: Role) -> bool:
        """Create or replace ``role``; True if it was new."""
        validate_role(role)
        item = Item(key=_key(role.name), value=role_to_json(role))
        try:
            await self._backend.create(item)
        except AlreadyExists:
            await self._backend.put(item)
            return False
        return True

    async def delete(self, name: str) -> None:
        validate_role_name(name)
        if name == ADMIN_ROLE:
            raise BadParameter(
                f"the preset role {ADMIN_ROLE} cannot be deleted: "
                "without it nobody could administer the cluster",
                hint="edit it with an upsert instead",
            )
        try:
            await self._backend.delete(_key(name))
        except NotFound:
            raise NotFound(f"role {name} not found") from None

    async def ensure_presets(self) -> builtins.list[str]:
        """Create the preset roles that do not exist yet, leaving any existing (possibly
        edited) ones alone; returns the names created."""
        created: builtins.list[str] = []
        for role in PRESET_ROLES:
            try:
                await self._backend.create(Item(key=_key(role.name), value=role_to_json(role)))
            except AlreadyExists:
                continue
            created.append(role.name)
        return created
