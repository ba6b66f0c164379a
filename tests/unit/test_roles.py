"""server.auth.stores.roles (role data, validation, wire and storage forms, presets) and
proto.resources (the YAML/TOML role documents)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from proto import resources
from proto.errors import BadParameter
from proto.resources import (
    format_duration,
    load_resource_file,
    load_role_resources,
    parse_duration,
    parse_role_resource,
    role_to_resource,
)
from proto.v1 import auth_pb2
from server.auth.stores.roles import (
    ACCESS_ROLE,
    ADMIN_ROLE,
    AUDITOR_ROLE,
    INTERNAL_LOGINS,
    PRESET_ROLES,
    Role,
    RoleConditions,
    RoleOptions,
    is_valid_login,
    role_from_json,
    role_from_proto,
    role_to_json,
    role_to_proto,
    validate_login,
    validate_role,
    validate_role_name,
)

HOUR = 3600.0


def make_role(
    name: str = "dev",
    *,
    logins: tuple[str, ...] = (),
    labels: Mapping[str, tuple[str, ...]] | None = None,
    deny_logins: tuple[str, ...] = (),
    deny_labels: Mapping[str, tuple[str, ...]] | None = None,
    ttl: float = 0,
) -> Role:
    return Role(
        name=name,
        allow=RoleConditions(logins=logins, node_labels=labels or {}),
        deny=RoleConditions(logins=deny_logins, node_labels=deny_labels or {}),
        options=RoleOptions(max_session_ttl=ttl),
    )


def rejects(role: Role, *fragments: str) -> str:
    with pytest.raises(BadParameter) as info:
        validate_role(role)
    message = info.value.message
    for fragment in fragments:
        assert fragment in message, message
    return message


# --- data -----------------------------------------------------------------------------


def test_conditions_are_immutable_copies() -> None:
    labels = {"env": ["dev"]}
    logins = ["ubuntu"]
    cond = RoleConditions(logins=logins, node_labels=labels)  # type: ignore[arg-type]
    labels["env"].append("prod")
    labels["team"] = ["x"]
    logins.append("root")
    assert cond.logins == ("ubuntu",)
    assert dict(cond.node_labels) == {"env": ("dev",)}
    with pytest.raises(TypeError):
        cond.node_labels["x"] = ("y",)  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cond.logins = ()  # type: ignore[misc]
    # Hashable and equal by value.
    assert hash(cond) == hash(RoleConditions(("ubuntu",), {"env": ("dev",)}))
    assert cond == RoleConditions(("ubuntu",), {"env": ("dev",)})


def test_a_single_string_is_not_a_list_of_logins() -> None:
    with pytest.raises(BadParameter, match="logins must be a list"):
        RoleConditions(logins="root")  # type: ignore[arg-type]
    with pytest.raises(BadParameter, match="must be a list of values"):
        RoleConditions(node_labels={"env": "prod"})  # type: ignore[dict-item]


def test_defaults() -> None:
    role = Role(name="empty")
    assert role.allow == RoleConditions() and role.deny == RoleConditions()
    assert role.options == RoleOptions(0, False, False, False)
    assert validate_role(role) is role


# --- validation -----------------------------------------------------------------------


def test_a_valid_role_passes() -> None:
    role = make_role(
        "dev.team_1-x",
        logins=(INTERNAL_LOGINS, "ubuntu", "svc.deploy", "ü-user"),
        labels={"env": ("dev", "*"), "k8s.io/zone": ("eu west 1",), "*": ("*",)},
        deny_logins=("root",),
        deny_labels={"env": ("prod",)},
        ttl=30 * HOUR,
    )
    assert validate_role(role) is role


@pytest.mark.parametrize(
    "name", ["", "-dev", ".dev", "_dev", "dev role", "dev/ops", "d" * 65, "dév", "dev\n"]
)
def test_bad_role_names(name: str) -> None:
    rejects(make_role(name), "invalid role name")
    with pytest.raises(BadParameter):
        validate_role_name(name)


@pytest.mark.parametrize("name", ["a", "A9", "dev.ops_1-2", "x" * 64, "9lives"])
def test_good_role_names(name: str) -> None:
    assert validate_role_name(name) == name


@pytest.mark.parametrize(
    ("login", "why"),
    [
        ("", "must not be empty"),
        ("a" * 256, "longer than 255 bytes"),
        ("é" * 128, "longer than 255 bytes"),  # 256 bytes, 128 characters
        ("a,b", "','"),
        ("a b", "whitespace"),
        ("a\tb", "whitespace"),
        ("a\u00a0b", "whitespace"),
        ("ro*t", "wildcard '*'"),
        ("*", "wildcard '*'"),
        ("ro?t", "wildcard '?'"),
        ("a\x00b", "control characters"),
        ("a\x7fb", "control characters"),
        ("a\u200bb", "control characters"),
        ("-oProxyCommand", "must not start with '-'"),
        ("!root", "must not contain '!'"),
        ("ro!ot", "must not contain '!'"),
    ],
)
def test_bad_logins(login: str, why: str) -> None:
    assert not is_valid_login(login)
    with pytest.raises(BadParameter, match="invalid login"):
        validate_login(login)
    rejects(make_role(logins=(login,)), "allow.logins", "invalid login", why)
    rejects(make_role(deny_logins=(login,)), "deny.logins", why)


def test_longest_login_is_accepted() -> None:
    assert is_valid_login("a" * 255)
    assert validate_role(make_role(logins=("a" * 255,)))


def test_non_string_login() -> None:
    rejects(make_role(logins=(42,)), "must be a string")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "template",
    ["{{internal.foo}}", "{{ internal.logins }}", "{{external.logins}}", "x{{internal.logins}}"],
)
def test_only_the_internal_logins_template_is_allowed(template: str) -> None:
    message = rejects(make_role(logins=(template,)), "unsupported template", template)
    assert INTERNAL_LOGINS in message  # says what is supported
    assert not is_valid_login(template)
    assert not is_valid_login(INTERNAL_LOGINS)  # a template is not a login


def test_too_many_logins() -> None:
    logins = tuple(f"user{i}" for i in range(65))
    rejects(make_role(logins=logins), "65 entries", "limit is 64")
    assert validate_role(make_role(logins=logins[:64]))


def test_too_many_label_keys() -> None:
    labels = {f"k{i}": ("v",) for i in range(33)}
    rejects(make_role(labels=labels), "33 keys", "limit is 32")
    assert validate_role(make_role(labels=dict(list(labels.items())[:32])))


@pytest.mark.parametrize("key", ["", "a b", "a:b", "k" * 64, "é", "**", "a*"])
def test_bad_label_keys(key: str) -> None:
    rejects(make_role(labels={key: ("v",)}), "invalid label name")
    rejects(make_role(deny_labels={key: ("v",)}), "deny.node_labels", "invalid label name")


def test_label_values_count() -> None:
    rejects(make_role(labels={"env": ()}), "has no values")
    rejects(make_role(labels={"env": tuple(f"v{i}" for i in range(33))}), "33 values")
    assert validate_role(make_role(labels={"env": tuple(f"v{i}" for i in range(32))}))


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("", "1 to 253 characters"),
        ("v" * 254, "1 to 253 characters"),
        ("a\nb", "control"),
        ("a\x00b", "control"),
        ("a\u200bb", "unprintable"),
    ],
)
def test_bad_label_values(value: str, why: str) -> None:
    rejects(make_role(labels={"env": (value,)}), why)


def test_label_value_templates_and_types() -> None:
    rejects(make_role(labels={"env": ("{{internal.env}}",)}), "unsupported template")
    rejects(make_role(labels={"env": (3,)}), "must be a string")  # type: ignore[dict-item]
    assert validate_role(make_role(labels={"env": ("v" * 253,)}))


def test_wildcard_key_only_with_wildcard_value() -> None:
    rejects(make_role(labels={"*": ("prod",)}), "only allows the value '*'")
    rejects(make_role(labels={"*": ("*", "prod")}), "only allows the value '*'")
    assert validate_role(make_role(labels={"*": ("*",)}))


@pytest.mark.parametrize(
    ("ttl", "why"),
    [
        (-1, "must not be negative"),
        (30 * HOUR + 1, "too long"),
        (float("inf"), "finite"),
        (float("nan"), "finite"),
        (1.5, "whole seconds"),
        (True, "number of seconds"),
        ("8h", "number of seconds"),
    ],
)
def test_bad_max_session_ttl(ttl: Any, why: str) -> None:
    rejects(make_role(ttl=ttl), "max_session_ttl", why)


def test_bad_option_flag_type() -> None:
    role = Role("dev", options=RoleOptions(permit_pty="yes"))  # type: ignore[arg-type]
    rejects(role, "permit_pty")


def test_ttl_bounds_are_inclusive() -> None:
    assert validate_role(make_role(ttl=0))
    assert validate_role(make_role(ttl=30 * HOUR))


# --- wire and storage forms -------------------------------------------------------------

FULL_ROLE = Role(
    name="dev",
    allow=RoleConditions(
        logins=(INTERNAL_LOGINS, "ubuntu"),
        node_labels={"env": ("dev", "staging"), "team": ("*",)},
    ),
    deny=RoleConditions(logins=("root",), node_labels={"env": ("prod",)}),
    options=RoleOptions(
        max_session_ttl=8 * HOUR, permit_pty=True, port_forwarding=False, agent_forwarding=True
    ),
)


def test_proto_round_trip() -> None:
    msg = role_to_proto(FULL_ROLE)
    assert msg.name == "dev"
    assert list(msg.allow.logins) == [INTERNAL_LOGINS, "ubuntu"]
    assert list(msg.allow.node_labels["env"].values) == ["dev", "staging"]
    assert list(msg.deny.logins) == ["root"]
    assert msg.options.max_session_ttl == 8 * 3600
    assert msg.options.permit_pty and msg.options.agent_forwarding
    assert not msg.options.port_forwarding
    back = role_from_proto(auth_pb2.Role.FromString(msg.SerializeToString()))
    assert back == FULL_ROLE
    for preset in PRESET_ROLES:
        assert role_from_proto(role_to_proto(preset)) == preset


def test_role_from_proto_validates() -> None:
    msg = role_to_proto(FULL_ROLE)
    msg.allow.logins.append("{{internal.secret}}")
    with pytest.raises(BadParameter, match="unsupported template"):
        role_from_proto(msg)
    with pytest.raises(BadParameter, match="invalid role name"):
        role_from_proto(auth_pb2.Role(name="bad name"))
    with pytest.raises(BadParameter, match="must not be negative"):
        role_from_proto(auth_pb2.Role(name="x", options=auth_pb2.RoleOptions(max_session_ttl=-5)))


def test_json_round_trip() -> None:
    data = role_to_json(FULL_ROLE)
    assert json.loads(data)["name"] == "dev"
    assert role_from_json(data) == FULL_ROLE
    for preset in PRESET_ROLES:
        assert role_from_json(role_to_json(preset)) == preset


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[]",
        b'{"name": "x"}',  # no version
        b'{"version": 1, "name": "bad name"}',
        b'{"version": 1, "name": "x", "allow": {"logins": "root"}}',
        b'{"version": 1, "name": "x", "allow": {"logins": ["a b"]}}',
        b"\xff\xfe",
    ],
)
def test_role_from_json_rejects_malformed_records(data: bytes) -> None:
    with pytest.raises(BadParameter, match="stored role is malformed"):
        role_from_json(data)


# --- presets ----------------------------------------------------------------------------


def test_presets() -> None:
    by_name = {role.name: role for role in PRESET_ROLES}
    assert set(by_name) == {ADMIN_ROLE, ACCESS_ROLE, AUDITOR_ROLE} == {"admin", "access", "auditor"}
    admin = by_name["admin"]
    assert admin.allow.logins == (INTERNAL_LOGINS,)
    assert dict(admin.allow.node_labels) == {"*": ("*",)}
    assert admin.deny == RoleConditions()
    assert admin.options == RoleOptions(12 * HOUR, True, True, True)
    access = by_name["access"]
    assert (access.allow, access.deny, access.options) == (admin.allow, admin.deny, admin.options)
    auditor = by_name["auditor"]
    assert auditor.allow == auditor.deny == RoleConditions()
    assert auditor.options == RoleOptions()
    for role in PRESET_ROLES:
        validate_role(role)


# --- resource documents -----------------------------------------------------------------

DEV_YAML = """\
kind: role
version: v1
metadata:
  name: dev
spec:
  allow:
    logins: ["{{internal.logins}}", ubuntu]
    node_labels:
      env: [dev, staging]
      team: "*"
  deny:
    logins: [root]
    node_labels:
      env: prod
  options:
    max_session_ttl: 8h
    permit_pty: true
    port_forwarding: false
    agent_forwarding: true
"""


def dev_doc() -> dict[str, Any]:
    return {
        "kind": "role",
        "version": "v1",
        "metadata": {"name": "dev"},
        "spec": {
            "allow": {"logins": ["ubuntu"], "node_labels": {"env": ["dev"]}},
            "deny": {"logins": ["root"]},
            "options": {"max_session_ttl": "1h30m", "permit_pty": True},
        },
    }


def test_yaml_role_document(tmp_path: Path) -> None:
    path = tmp_path / "dev.yaml"
    path.write_text(DEV_YAML)
    [doc] = load_resource_file(path)
    msg = parse_role_resource(doc)
    assert role_from_proto(msg) == Role(
        name="dev",
        allow=RoleConditions(
            logins=(INTERNAL_LOGINS, "ubuntu"),
            node_labels={"env": ("dev", "staging"), "team": ("*",)},
        ),
        deny=RoleConditions(logins=("root",), node_labels={"env": ("prod",)}),
        options=RoleOptions(8 * HOUR, True, False, True),
    )


def test_yaml_multi_document(tmp_path: Path) -> None:
    path = tmp_path / "roles.yml"
    path.write_text(
        "---\n" + DEV_YAML + "---\nkind: role\nmetadata: {name: ops}\n---\n"
        "kind: role\nmetadata:\n  name: viewer\nspec:\n  allow:\n"
        "    node_labels: {'*': '*'}\n"
    )
    docs = load_resource_file(path)
    assert [d["metadata"]["name"] for d in docs] == ["dev", "ops", "viewer"]
    roles = load_role_resources(path)
    assert [r.name for r in roles] == ["dev", "ops", "viewer"]
    assert role_from_proto(roles[1]) == Role(name="ops")  # missing spec: nothing allowed
    assert dict(roles[2].allow.node_labels)["*"].values == ["*"]


def test_multi_document_errors_name_file_and_document(tmp_path: Path) -> None:
    path = tmp_path / "roles.yaml"
    path.write_text(DEV_YAML + "---\nkind: role\nmetadata: {name: x}\nspec: {allow: {login: []}}\n")
    with pytest.raises(BadParameter) as info:
        load_role_resources(path)
    assert info.value.message.startswith(f"{path} (document 2): spec.allow.login")


def test_toml_role_document(tmp_path: Path) -> None:
    path = tmp_path / "dev.toml"
    path.write_text(
        'kind = "role"\n'
        'version = "v1"\n'
        "[metadata]\n"
        'name = "dev"\n'
        "[spec.allow]\n"
        'logins = ["{{internal.logins}}", "ubuntu"]\n'
        "[spec.allow.node_labels]\n"
        'env = ["dev", "staging"]\n'
        "[spec.deny]\n"
        'logins = ["root"]\n'
        "[spec.options]\n"
        "max_session_ttl = 3600\n"
        "permit_pty = true\n"
    )
    [msg] = load_role_resources(path)
    role = role_from_proto(msg)
    assert role.allow.logins == (INTERNAL_LOGINS, "ubuntu")
    assert dict(role.allow.node_labels) == {"env": ("dev", "staging")}
    assert role.deny.logins == ("root",)
    assert role.options == RoleOptions(HOUR, True, False, False)


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda d: d.update(extra=1), "extra: unknown key"),
        (lambda d: d["metadata"].update(labels={}), "metadata.labels: unknown key"),
        (lambda d: d["spec"].update(rules=[]), "spec.rules: unknown key"),
        (lambda d: d["spec"]["allow"].update(login=["x"]), "spec.allow.login: unknown key"),
        (lambda d: d["spec"]["deny"].update(nodes={}), "spec.deny.nodes: unknown key"),
        (lambda d: d["spec"]["options"].update(pty=True), "spec.options.pty: unknown key"),
    ],
)
def test_unknown_keys_name_the_dotted_path(mutate: Any, path: str) -> None:
    doc = dev_doc()
    mutate(doc)
    with pytest.raises(BadParameter) as info:
        parse_role_resource(doc)
    assert info.value.message.startswith(path), info.value.message


def test_unknown_key_suggests_the_right_one() -> None:
    doc = dev_doc()
    doc["spec"]["allow"]["login"] = ["x"]
    with pytest.raises(BadParameter) as info:
        parse_role_resource(doc, source="dev.yaml")
    assert info.value.message.startswith("dev.yaml: spec.allow.login: unknown key")
    assert info.value.hint == "did you mean spec.allow.logins?"


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda d: d.update(kind="user"), 'kind: unsupported kind "user"'),
        (lambda d: d.pop("kind"), "kind: missing"),
        (lambda d: d.update(kind=["role"]), "kind: expected a string"),
        (lambda d: d.update(version="v2"), 'version: unsupported version "v2"'),
        (lambda d: d.pop("metadata"), "metadata: expected a mapping, got null"),
        (lambda d: d["metadata"].pop("name"), "metadata.name: missing"),
        (lambda d: d["metadata"].update(name=5), "metadata.name: expected a string"),
        (lambda d: d["metadata"].update(name=""), "metadata.name: must not be empty"),
        (lambda d: d.update(spec=[]), "spec: expected a mapping, got a list"),
        (lambda d: d["spec"].update(allow="x"), "spec.allow: expected a mapping"),
        (lambda d: d["spec"]["allow"].update(logins="root"), "spec.allow.logins: expected a list"),
        (lambda d: d["spec"]["allow"].update(logins=["a", 1]), "spec.allow.logins[1]: expected a"),
        (
            lambda d: d["spec"]["allow"].update(node_labels=["env"]),
            "spec.allow.node_labels: expected a mapping",
        ),
        (
            lambda d: d["spec"]["allow"].update(node_labels={"env": 3}),
            "spec.allow.node_labels.env: expected a string or a list",
        ),
        (
            lambda d: d["spec"]["allow"].update(node_labels={"a.b": ["x", None]}),
            'spec.allow.node_labels."a.b"[1]: expected a string, got null',
        ),
        (
            lambda d: d["spec"]["allow"].update(node_labels={1: ["x"]}),
            "spec.allow.node_labels.1: label names must be strings",
        ),
        (
            lambda d: d["spec"]["options"].update(permit_pty="yes"),
            "spec.options.permit_pty: expected true or false",
        ),
        (
            lambda d: d["spec"]["options"].update(max_session_ttl="8 hours"),
            'spec.options.max_session_ttl: invalid duration "8 hours"',
        ),
        (
            lambda d: d["spec"]["options"].update(max_session_ttl=1.5),
            "spec.options.max_session_ttl: expected a duration string or integer",
        ),
        (
            lambda d: d["spec"]["options"].update(max_session_ttl=-60),
            "spec.options.max_session_ttl: duration -60 must not be negative",
        ),
    ],
)
def test_wrong_values_name_the_dotted_path(mutate: Any, fragment: str) -> None:
    doc = dev_doc()
    mutate(doc)
    with pytest.raises(BadParameter) as info:
        parse_role_resource(doc)
    assert info.value.message.startswith(fragment), info.value.message


def test_not_a_mapping() -> None:
    with pytest.raises(BadParameter, match="resource: expected a mapping, got a list"):
        parse_role_resource(["kind", "role"])


def test_version_defaults_to_v1_and_nulls_are_empty() -> None:
    doc: dict[str, Any] = {
        "kind": "role",
        "metadata": {"name": "x"},
        "spec": {"allow": {"logins": None, "node_labels": None}, "deny": None, "options": None},
    }
    assert role_from_proto(parse_role_resource(doc)) == Role(name="x")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("12h", 43200),
        ("1h30m", 5400),
        ("2d", 172800),
        ("1d2h3m4s", 93784),
        (" 8H ", 28800),
        ("0", 0),
        ("0s", 0),
        ("3600", 3600),
        (3600, 3600),
        (0, 0),
    ],
)
def test_durations(value: str | int, seconds: int) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value", ["", "h", "1x", "1.5h", "30m1h", "1h 30m", "-1h", "-5", -5, 366 * 86400, "366d", None]
)
def test_bad_durations(value: Any) -> None:
    with pytest.raises(BadParameter, match="duration"):
        parse_duration(value, path="ttl")


def test_bool_is_not_a_duration() -> None:
    with pytest.raises(BadParameter, match="got a boolean"):
        parse_duration(True)


@pytest.mark.parametrize("seconds", [0, 59, 60, 3600, 5400, 43200, 30 * 3600, 93784])
def test_format_duration_round_trips(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds
    assert format_duration(5400) == "1h30m"
    assert format_duration(0) == "0s"


def test_resource_round_trip() -> None:
    msg = role_to_proto(FULL_ROLE)
    doc = role_to_resource(msg)
    assert doc["kind"] == "role" and doc["version"] == "v1"
    assert doc["metadata"] == {"name": "dev"}
    assert doc["spec"]["options"]["max_session_ttl"] == "8h"
    assert doc["spec"]["allow"]["node_labels"] == {"env": ["dev", "staging"], "team": ["*"]}
    json.dumps(doc)  # plain data only
    assert parse_role_resource(doc) == msg
    assert role_from_proto(parse_role_resource(json.loads(json.dumps(doc)))) == FULL_ROLE


def test_yaml_output_parses_back(tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "out.yaml"
    docs = [role_to_resource(role_to_proto(role)) for role in PRESET_ROLES]
    path.write_text(yaml.safe_dump_all(docs))
    assert [role_from_proto(m) for m in load_role_resources(path)] == list(PRESET_ROLES)


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("r.json", "{}", "unsupported file type '.json'"),
        ("r", "{}", "unsupported file type '(none)'"),
        ("r.yaml", "kind: [role\n", "invalid YAML"),
        ("r.yaml", "", "contains no resources"),
        ("r.yaml", "---\n---\n", "contains no resources"),
        ("r.yaml", "- kind: role\n", "document 1 is a list"),
        ("r.yaml", "kind: role\n---\njust text\n", "document 2 is a string"),
        ("r.toml", "kind = \n", "invalid TOML"),
        ("r.toml", "", "contains no resources"),
    ],
)
def test_file_errors_name_the_file(tmp_path: Path, name: str, content: str, fragment: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(BadParameter) as info:
        load_resource_file(path)
    assert str(path) in info.value.message
    assert fragment in info.value.message, info.value.message


def test_missing_and_undecodable_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(BadParameter, match=f"cannot read {missing}"):
        load_resource_file(missing)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"kind: \xff\n")
    with pytest.raises(BadParameter, match="not valid UTF-8"):
        load_resource_file(binary)


def test_oversized_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resources, "MAX_RESOURCE_FILE_BYTES", 100)
    path = tmp_path / "big.yaml"
    path.write_text("kind: role\n" + "#" * 200 + "\n")
    with pytest.raises(BadParameter, match="larger than 100 bytes"):
        load_resource_file(path)


def test_single_toml_error_names_file(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text('kind = "node"\n[metadata]\nname = "x"\n')
    with pytest.raises(BadParameter) as info:
        load_role_resources(path)
    assert info.value.message == f'{path}: kind: unsupported kind "node"; expected "role"'


def test_resources_module_imports_nothing_heavy() -> None:
    code = (
        "import sys, proto.resources\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('server', 'yaml', 'grpc', 'grpclib', 'google', 'tomllib')"
        " or m.startswith('proto.v1')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
