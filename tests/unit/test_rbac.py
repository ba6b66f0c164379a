"""server.auth.rbac.AccessChecker: logins, node labels, TTLs and options; default deny and
deny wins."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from proto.errors import AccessDenied
from server.auth.rbac import AccessChecker, SessionOptions, label_rule_matches
from server.auth.stores.roles import (
    INTERNAL_LOGINS,
    PRESET_ROLES,
    Role,
    RoleConditions,
    RoleOptions,
)

HOUR = 3600.0
PRESETS = {role.name: role for role in PRESET_ROLES}


def role(
    name: str = "r",
    *,
    logins: tuple[str, ...] = (),
    labels: Mapping[str, tuple[str, ...]] | None = None,
    deny_logins: tuple[str, ...] = (),
    deny_labels: Mapping[str, tuple[str, ...]] | None = None,
    ttl: float = 0,
    pty: bool = False,
    port: bool = False,
    agent: bool = False,
) -> Role:
    return Role(
        name=name,
        allow=RoleConditions(logins=logins, node_labels=labels or {}),
        deny=RoleConditions(logins=deny_logins, node_labels=deny_labels or {}),
        options=RoleOptions(ttl, pty, port, agent),
    )


# --- logins ---------------------------------------------------------------------------


def test_no_roles_no_access() -> None:
    checker = AccessChecker([], ["ubuntu"])
    assert checker.logins() == ()
    assert not checker.can_access_node({"env": "dev"})
    assert not checker.can_access_node({})
    with pytest.raises(AccessDenied):
        checker.check_login("ubuntu")
    assert checker.options() == SessionOptions(12 * HOUR, False, False, False)


def test_template_expands_to_the_logins_trait() -> None:
    checker = AccessChecker([role(logins=(INTERNAL_LOGINS, "deploy"))], ("ubuntu", "alice"))
    assert checker.logins() == ("alice", "deploy", "ubuntu")
    checker.check_login("alice")
    checker.check_login("deploy")
    with pytest.raises(AccessDenied, match="root"):
        checker.check_login("root")
    with pytest.raises(AccessDenied):
        checker.check_login(INTERNAL_LOGINS)  # the template itself is never a login


def test_template_with_no_trait_gives_nothing() -> None:
    checker = AccessChecker([role(logins=(INTERNAL_LOGINS,))])
    assert checker.logins() == ()


def test_logins_without_template_ignore_the_trait() -> None:
    checker = AccessChecker([role(logins=("deploy",))], ("ubuntu",))
    assert checker.logins() == ("deploy",)


def test_logins_union_over_roles_sorted_and_deduplicated() -> None:
    checker = AccessChecker(
        [role("a", logins=("zed", "bob")), role("b", logins=("bob", INTERNAL_LOGINS))],
        ("amy", "zed", "amy"),
    )
    assert checker.logins() == ("amy", "bob", "zed")


def test_invalid_trait_values_are_dropped() -> None:
    trait = (
        "ubuntu",
        "-oProxyCommand=evil",
        "a b",
        "x,y",
        "*",
        "",
        "a" * 256,
        "{{internal.logins}}",
        "{{internal.other}}",
        "bad\nline",
    )
    checker = AccessChecker([role(logins=(INTERNAL_LOGINS,))], trait)
    assert checker.logins() == ("ubuntu",)
    with pytest.raises(AccessDenied):
        checker.check_login("-oProxyCommand=evil")


def test_a_bare_string_trait_is_one_login_not_characters() -> None:
    checker = AccessChecker([role(logins=(INTERNAL_LOGINS,))], "ubuntu")
    assert checker.logins() == ("ubuntu",)


def test_unvalidated_role_logins_are_not_passed_through() -> None:
    # Roles are validated when stored, but the checker must not rely on it.
    checker = AccessChecker([role(logins=("ok", "not ok", "{{internal.x}}"))])
    assert checker.logins() == ("ok",)


def test_deny_wins_for_logins() -> None:
    checker = AccessChecker(
        [role("a", logins=("root", "ubuntu", INTERNAL_LOGINS)), role("b", deny_logins=("root",))],
        ("alice",),
    )
    assert checker.logins() == ("alice", "ubuntu")
    with pytest.raises(AccessDenied):
        checker.check_login("root")


def test_deny_wins_within_one_role() -> None:
    checker = AccessChecker([role(logins=("root", "ubuntu"), deny_logins=("root",))])
    assert checker.logins() == ("ubuntu",)


def test_deny_template_expands_too() -> None:
    checker = AccessChecker(
        [role("a", logins=("deploy", INTERNAL_LOGINS)), role("b", deny_logins=(INTERNAL_LOGINS,))],
        ("alice", "deploy"),
    )
    assert checker.logins() == ()


def test_admin_preset_logins_come_from_the_trait() -> None:
    checker = AccessChecker([PRESETS["admin"]], ("root", "ubuntu"))
    assert checker.logins() == ("root", "ubuntu")
    assert AccessChecker([PRESETS["auditor"]], ("root",)).logins() == ()


# --- node labels ----------------------------------------------------------------------


def test_label_rule_exact_values() -> None:
    rule = {"env": ("dev", "staging")}
    assert label_rule_matches(rule, {"env": "dev"})
    assert label_rule_matches(rule, {"env": "staging", "team": "x"})
    assert not label_rule_matches(rule, {"env": "prod"})
    assert not label_rule_matches(rule, {"team": "dev"})
    assert not label_rule_matches(rule, {})
    assert not label_rule_matches(rule, {"env": "Dev"})


def test_label_rule_needs_every_key() -> None:
    rule = {"env": ("dev",), "team": ("web",)}
    assert label_rule_matches(rule, {"env": "dev", "team": "web"})
    assert not label_rule_matches(rule, {"env": "dev"})
    assert not label_rule_matches(rule, {"env": "dev", "team": "db"})


def test_label_rule_wildcard_value_needs_the_key() -> None:
    rule = {"env": ("*",)}
    assert label_rule_matches(rule, {"env": "anything"})
    assert label_rule_matches(rule, {"env": ""})
    assert not label_rule_matches(rule, {"team": "x"})
    assert label_rule_matches({"env": ("prod", "*")}, {"env": "dev"})


def test_label_rule_wildcard_key() -> None:
    assert label_rule_matches({"*": ("*",)}, {})
    assert label_rule_matches({"*": ("*",)}, {"env": "prod"})
    assert not label_rule_matches({"*": ("prod",)}, {"env": "prod"})  # invalid: no match
    both = {"*": ("*",), "env": ("dev",)}
    assert label_rule_matches(both, {"env": "dev"})
    assert not label_rule_matches(both, {"env": "prod"})


def test_empty_rule_matches_nothing() -> None:
    assert not label_rule_matches({}, {})
    assert not label_rule_matches({}, {"env": "dev"})
    checker = AccessChecker([role(logins=("ubuntu",))])
    assert not checker.can_access_node({})
    assert not checker.can_access_node({"env": "dev"})


def test_some_role_allows() -> None:
    checker = AccessChecker(
        [role("a", labels={"env": ("dev",)}), role("b", labels={"env": ("qa",)})]
    )
    assert checker.can_access_node({"env": "dev"})
    assert checker.can_access_node({"env": "qa"})
    assert not checker.can_access_node({"env": "prod"})


def test_deny_wins_for_labels() -> None:
    checker = AccessChecker(
        [role("a", labels={"*": ("*",)}), role("b", deny_labels={"env": ("prod",)})]
    )
    assert checker.can_access_node({"env": "dev"})
    assert checker.can_access_node({})
    assert not checker.can_access_node({"env": "prod", "team": "web"})


def test_deny_wildcard_denies_everything() -> None:
    checker = AccessChecker([PRESETS["admin"], role("lock", deny_labels={"*": ("*",)})])
    assert not checker.can_access_node({})
    assert not checker.can_access_node({"env": "dev"})


def test_deny_wildcard_value_denies_nodes_with_the_label() -> None:
    checker = AccessChecker([role(labels={"*": ("*",)}, deny_labels={"secret": ("*",)})])
    assert not checker.can_access_node({"secret": "yes"})
    assert checker.can_access_node({"env": "dev"})


def test_empty_deny_rule_denies_nothing() -> None:
    checker = AccessChecker([role(labels={"env": ("dev",)}, deny_labels={})])
    assert checker.can_access_node({"env": "dev"})


def test_presets_node_access() -> None:
    assert AccessChecker([PRESETS["admin"]]).can_access_node({"env": "prod"})
    assert AccessChecker([PRESETS["access"]]).can_access_node({})
    assert not AccessChecker([PRESETS["auditor"]]).can_access_node({})


# --- ttl and options --------------------------------------------------------------------


def test_ttl_default_when_unset() -> None:
    assert AccessChecker([role("a"), role("b")]).max_session_ttl() == 12 * HOUR


def test_ttl_is_the_minimum_nonzero() -> None:
    checker = AccessChecker([role("a", ttl=8 * HOUR), role("b", ttl=0), role("c", ttl=2 * HOUR)])
    assert checker.max_session_ttl() == 2 * HOUR
    assert AccessChecker([role("a", ttl=20 * HOUR), role("b")]).max_session_ttl() == 20 * HOUR


def test_ttl_is_capped_at_30h() -> None:
    assert AccessChecker([role(ttl=100 * HOUR)]).max_session_ttl() == 30 * HOUR
    assert AccessChecker([role(ttl=float("inf"))]).max_session_ttl() == 30 * HOUR
    assert AccessChecker([role(ttl=float("nan"))]).max_session_ttl() == 12 * HOUR
    assert AccessChecker([role(ttl=-5)]).max_session_ttl() == 12 * HOUR


def test_options_granted_iff_any_role_grants() -> None:
    checker = AccessChecker(
        [role("a", pty=True), role("b", port=True), role("c", ttl=HOUR)],
    )
    assert checker.options() == SessionOptions(
        max_session_ttl=HOUR, permit_pty=True, port_forwarding=True, agent_forwarding=False
    )
    none = AccessChecker([role("a"), role("b")])
    assert none.options() == SessionOptions(12 * HOUR, False, False, False)
    admin = AccessChecker([PRESETS["admin"], PRESETS["auditor"]])
    assert admin.options() == SessionOptions(12 * HOUR, True, True, True)


def test_roles_exposed() -> None:
    checker = AccessChecker([PRESETS["admin"], PRESETS["auditor"]])
    assert checker.role_names == ("admin", "auditor")
    assert checker.roles == (PRESETS["admin"], PRESETS["auditor"])
