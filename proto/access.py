"""Node access, shared by the auth service (which writes it into user certificates) and
the node agent (which enforces it).

A user certificate carries the node-label rules of the user's roles in the extension
``mezite-node-access@mezite.dev``, as compact JSON ``{"allow": [rule...], "deny":
[rule...]}``, where a rule maps a label name to allowed values. Signed by the user CA,
it lets a node decide without asking auth; it lives as long as the short-lived
certificate, so role changes reach nodes within one certificate lifetime.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

NODE_ACCESS_EXT = "mezite-node-access@mezite.dev"
USER_EXT = "mezite-user@mezite.dev"
ROLES_EXT = "mezite-roles@mezite.dev"
# Whose certificate it is: "user" or "agent_identity", and which incarnation of it (the
# random id made when the user or identity was created), so that locks can tell a
# deleted account's certificates from those of a new one of the same name.
KIND_EXT = "mezite-kind@mezite.dev"
INCARNATION_EXT = "mezite-incarnation@mezite.dev"
CERT_KINDS = frozenset({"user", "agent_identity", "spiffe"})
# Present only when none of the holder's roles records sessions: a node records every PTY
# session of a certificate without it (the default, and every older certificate).
NO_RECORD_EXT = "mezite-no-record@mezite.dev"
WILDCARD = "*"
MAX_NODE_ACCESS_BYTES = 64 * 1024

LabelRule = Mapping[str, Sequence[str]]


def label_rule_matches(rule: LabelRule, labels: Mapping[str, str]) -> bool:
    """Whether a node with ``labels`` matches a node-label ``rule``.

    It does when, for every key of the rule, the node has that label with one of the
    rule's values, or the values include ``"*"``. The key ``"*"`` with the value ``"*"``
    matches every node. An empty rule matches nothing.
    """
    if not rule:
        return False
    for key, values in rule.items():
        if key == WILDCARD:
            if WILDCARD not in values:
                return False
            continue
        if key not in labels:
            return False
        if WILDCARD not in values and labels[key] not in values:
            return False
    return True


def encode_node_access(allow: Sequence[LabelRule], deny: Sequence[LabelRule]) -> str:
    def plain(rules: Sequence[LabelRule]) -> list[dict[str, list[str]]]:
        return [{k: list(v) for k, v in sorted(rule.items())} for rule in rules if rule]

    doc = {"allow": plain(allow), "deny": plain(deny)}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def _rules(value: Any) -> list[dict[str, list[str]]] | None:
    if not isinstance(value, list):
        return None
    rules = []
    for rule in value:
        if not isinstance(rule, dict):
            return None
        for key, values in rule.items():
            if not isinstance(key, str) or not isinstance(values, list):
                return None
            if not all(isinstance(v, str) for v in values):
                return None
        rules.append(rule)
    return rules


def node_access_allows(encoded: str | bytes | None, labels: Mapping[str, str]) -> bool:
    """Some allow rule matches the node and no deny rule does. Missing or malformed
    access data allows nothing: default deny."""
    if not encoded or len(encoded) > MAX_NODE_ACCESS_BYTES:
        return False
    try:
        doc = json.loads(encoded)
    except ValueError:
        return False
    if not isinstance(doc, dict):
        return False
    allow, deny = _rules(doc.get("allow")), _rules(doc.get("deny"))
    if allow is None or deny is None:
        return False
    if any(label_rule_matches(rule, labels) for rule in deny):
        return False
    return any(label_rule_matches(rule, labels) for rule in allow)
