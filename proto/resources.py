"""Resource documents: the YAML/TOML form of roles that ``mezctl create -f`` reads and
``mezctl get roles`` prints, shared by the CLI and the server.

A role document::

    kind: role
    version: v1            # optional; v1 is the only version
    metadata:
      name: dev
    spec:
      allow:
        logins: ["{{internal.logins}}", ubuntu]
        node_labels:
          env: [dev, staging]     # a single string is accepted too
      deny:
        logins: [root]
      options:
        max_session_ttl: 8h       # "90s", "30m", "1h30m", "2d" or integer seconds
        permit_pty: true
        port_forwarding: false
        agent_forwarding: false
        record_sessions: true     # the default; a session is recorded if any role records

This module checks the document's *shape*: known keys, value types, durations. Unknown
keys and wrong types are a ``BadParameter`` naming the dotted path
(``spec.allow.login``). Whether the logins, labels and limits are acceptable is decided
by the server (``server.auth.stores.roles.validate_role``), which validates every role it is
given; keeping one set of rules avoids the two drifting apart.

It imports nothing heavy at import time: the generated ``auth_pb2``, PyYAML and tomllib
are imported when first needed.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from proto.durations import (
    DURATION_HINT,
    MAX_DURATION_SECONDS,
    format_duration,
    parse_duration_text,
)
from proto.errors import BadParameter

if TYPE_CHECKING:
    from proto.v1 import auth_pb2

__all__ = [
    "KIND_ROLE",
    "MAX_RESOURCE_FILE_BYTES",
    "VERSION_V1",
    "format_duration",
    "load_resource_file",
    "load_role_resources",
    "parse_duration",
    "parse_role_resource",
    "role_to_resource",
]

KIND_ROLE = "role"
VERSION_V1 = "v1"
MAX_RESOURCE_FILE_BYTES = 1024 * 1024

_YAML_SUFFIXES = (".yaml", ".yml")
_TOML_SUFFIXES = (".toml",)

# --- durations ----------------------------------------------------------------------


def _show(value: object) -> str:
    if isinstance(value, str | int | float | bool):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


def parse_duration(value: object, *, path: str = "duration") -> int:
    """Whole seconds in ``value``: a duration string (see proto.durations) or a
    non-negative integer. At most 365d."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise BadParameter(
            f"{path}: expected a duration string or integer seconds, got {_type_name(value)}",
            hint=DURATION_HINT,
        )
    if isinstance(value, str):
        try:
            return parse_duration_text(value)
        except BadParameter as err:
            raise BadParameter(f"{path}: {err.message}", hint=err.hint) from None
    if value < 0:
        raise BadParameter(f"{path}: duration {_show(value)} must not be negative")
    if value > MAX_DURATION_SECONDS:
        raise BadParameter(f"{path}: duration {_show(value)} is too long: the limit is 365d")
    return value


# --- document shape -----------------------------------------------------------------

_TYPE_NAMES: dict[type, str] = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "a mapping",
    type(None): "null",
}


def _type_name(value: object) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _child(path: str, key: object) -> str:
    name = key if isinstance(key, str) and re.fullmatch(r"[A-Za-z0-9_-]+", key) else _show(key)
    return f"{path}.{name}" if path else str(name)


def _mapping(value: object, path: str, *, optional: bool = True) -> Mapping[Any, Any]:
    if value is None and optional:
        return {}
    if not isinstance(value, Mapping):
        raise BadParameter(f"{path}: expected a mapping, got {_type_name(value)}")
    return value


def _check_keys(doc: Mapping[Any, Any], allowed: tuple[str, ...], path: str) -> None:
    for key in doc:
        if key not in allowed:
            where = _child(path, key)
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean {_child(path, close[0])}?" if close else None
            raise BadParameter(
                f"{where}: unknown key (expected one of: {', '.join(allowed)})", hint=hint
            )


def _string(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise BadParameter(f"{path}: expected a string, got {_type_name(value)}")
    return value


def _bool(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        raise BadParameter(f"{path}: expected true or false, got {_type_name(value)}")
    return value


def _string_list(value: object, path: str, *, single_ok: bool) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str) and single_ok:
        return [value]
    if not isinstance(value, list | tuple):
        expected = "a string or a list of strings" if single_ok else "a list of strings"
        raise BadParameter(f"{path}: expected {expected}, got {_type_name(value)}")
    return [_string(item, f"{path}[{i}]") for i, item in enumerate(value)]


def _conditions(value: object, path: str) -> auth_pb2.RoleConditions:
    from proto.v1 import auth_pb2

    doc = _mapping(value, path)
    _check_keys(doc, ("logins", "node_labels"), path)
    msg = auth_pb2.RoleConditions(
        logins=_string_list(doc.get("logins"), _child(path, "logins"), single_ok=False)
    )
    labels_path = _child(path, "node_labels")
    for key, values in _mapping(doc.get("node_labels"), labels_path).items():
        key_path = _child(labels_path, key)
        if not isinstance(key, str):
            raise BadParameter(f"{key_path}: label names must be strings, got {_type_name(key)}")
        msg.node_labels[key].values.extend(_string_list(values, key_path, single_ok=True))
    return msg


def _options(value: object, path: str) -> auth_pb2.RoleOptions:
    from proto.v1 import auth_pb2

    doc = _mapping(value, path)
    flags = ("permit_pty", "port_forwarding", "agent_forwarding", "record_sessions")
    _check_keys(doc, ("max_session_ttl", *flags), path)
    msg = auth_pb2.RoleOptions()
    if "max_session_ttl" in doc:
        ttl_path = _child(path, "max_session_ttl")
        msg.max_session_ttl = parse_duration(doc["max_session_ttl"], path=ttl_path)
    for flag in flags:
        if flag in doc:
            setattr(msg, flag, _bool(doc[flag], _child(path, flag)))
    return msg


def parse_role_resource(doc: object, *, source: str | None = None) -> auth_pb2.Role:
    """The ``Role`` message a role document describes. ``source`` (e.g. the file name)
    prefixes error messages."""
    from proto.v1 import auth_pb2

    try:
        top = _mapping(doc, "resource", optional=False)
        _check_keys(top, ("kind", "version", "metadata", "spec"), "")
        if "kind" not in top:
            raise BadParameter(f"kind: missing; expected {_show(KIND_ROLE)}")
        kind = _string(top["kind"], "kind")
        if kind != KIND_ROLE:
            raise BadParameter(f"kind: unsupported kind {_show(kind)}; expected {_show(KIND_ROLE)}")
        version = _string(top.get("version", VERSION_V1), "version")
        if version != VERSION_V1:
            raise BadParameter(
                f"version: unsupported version {_show(version)}; expected {_show(VERSION_V1)}"
            )
        metadata = _mapping(top.get("metadata"), "metadata", optional=False)
        _check_keys(metadata, ("name",), "metadata")
        if "name" not in metadata:
            raise BadParameter("metadata.name: missing; every role needs a name")
        name = _string(metadata["name"], "metadata.name")
        if not name:
            raise BadParameter("metadata.name: must not be empty")
        spec = _mapping(top.get("spec"), "spec")
        _check_keys(spec, ("allow", "deny", "options"), "spec")
        return auth_pb2.Role(
            name=name,
            allow=_conditions(spec.get("allow"), "spec.allow"),
            deny=_conditions(spec.get("deny"), "spec.deny"),
            options=_options(spec.get("options"), "spec.options"),
        )
    except BadParameter as exc:
        if source is None:
            raise
        raise BadParameter(f"{source}: {exc.message}", hint=exc.hint) from None


def _conditions_to_dict(msg: auth_pb2.RoleConditions) -> dict[str, Any]:
    return {
        "logins": list(msg.logins),
        "node_labels": {key: list(msg.node_labels[key].values) for key in sorted(msg.node_labels)},
    }


def role_to_resource(msg: auth_pb2.Role) -> dict[str, Any]:
    """The role document for a ``Role`` message: plain dicts, lists, strings and bools,
    ready for YAML or JSON output, and accepted back by ``parse_role_resource``."""
    return {
        "kind": KIND_ROLE,
        "version": VERSION_V1,
        "metadata": {"name": msg.name},
        "spec": {
            "allow": _conditions_to_dict(msg.allow),
            "deny": _conditions_to_dict(msg.deny),
            "options": {
                "max_session_ttl": format_duration(msg.options.max_session_ttl),
                "permit_pty": msg.options.permit_pty,
                "port_forwarding": msg.options.port_forwarding,
                "agent_forwarding": msg.options.agent_forwarding,
                "record_sessions": msg.options.record_sessions
                if msg.options.HasField("record_sessions")
                else True,
            },
        },
    }


# --- files --------------------------------------------------------------------------


def load_resource_file(path: Path) -> list[dict[str, Any]]:
    """The resource documents in a ``.yaml``/``.yml`` file (one or more, separated by
    ``---``) or a ``.toml`` file (exactly one). Every problem is a ``BadParameter`` that
    names the file."""
    suffix = path.suffix.lower()
    if suffix not in _YAML_SUFFIXES + _TOML_SUFFIXES:
        raise BadParameter(
            f"{path}: unsupported file type {suffix or '(none)'!r}; use .yaml, .yml or .toml"
        )
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_RESOURCE_FILE_BYTES + 1)
    except OSError as exc:
        raise BadParameter(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_RESOURCE_FILE_BYTES:
        raise BadParameter(f"{path}: file is larger than {MAX_RESOURCE_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadParameter(f"{path}: file is not valid UTF-8") from None

    documents: list[object]
    if suffix in _TOML_SUFFIXES:
        import tomllib

        try:
            documents = [tomllib.loads(text)]
        except tomllib.TOMLDecodeError as exc:
            raise BadParameter(f"{path}: invalid TOML: {exc}") from None
    else:
        documents = _yaml_documents(text, str(path))
    return _resource_documents(documents, str(path))


def _yaml_documents(text: str, source: str) -> list[object]:
    import yaml

    try:
        return [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        raise BadParameter(f"{source}: invalid YAML: {exc}") from None


def _resource_documents(documents: list[object], source: str) -> list[dict[str, Any]]:
    if not documents or documents == [{}]:
        raise BadParameter(f"{source}: contains no resources")
    out: list[dict[str, Any]] = []
    for index, doc in enumerate(documents, start=1):
        if not isinstance(doc, dict):
            raise BadParameter(
                f"{source}: document {index} is {_type_name(doc)}, expected a mapping "
                "with kind, version, metadata and spec"
            )
        out.append(doc)
    return out


def role_from_yaml(text: str, *, source: str = "role") -> auth_pb2.Role:
    """Exactly one role document in YAML text (the web UI's role editor)."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_RESOURCE_FILE_BYTES:
        raise BadParameter(f"{source}: larger than {MAX_RESOURCE_FILE_BYTES} bytes")
    documents = _resource_documents(_yaml_documents(text, source), source)
    if len(documents) != 1:
        raise BadParameter(f"{source}: holds {len(documents)} documents; give exactly one role")
    return parse_role_resource(documents[0], source=source)


def role_to_yaml(msg: auth_pb2.Role) -> str:
    """The YAML ``role_from_yaml`` reads back into the same role."""
    import yaml

    return str(yaml.safe_dump(role_to_resource(msg), sort_keys=False))


def load_role_resources(path: Path) -> list[auth_pb2.Role]:
    """``load_resource_file`` then ``parse_role_resource`` on each document, with errors
    naming the file (and the document, when there are several)."""
    documents = load_resource_file(path)
    roles = []
    for index, doc in enumerate(documents, start=1):
        source = str(path) if len(documents) == 1 else f"{path} (document {index})"
        roles.append(parse_role_resource(doc, source=source))
    return roles
