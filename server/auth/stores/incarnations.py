"""Incarnations: the immutable random id every user, agent identity, node and proxy gets
when it is created. Sessions, invites, renewal and bootstrap tokens, certificates and
automatic locks name it, and every check compares it, so a name deleted and created
again is a stranger to the old credentials."""

from __future__ import annotations

import hashlib
import re
import secrets

INCARNATION_RE = re.compile(r"[0-9a-f]{32}")


def new_incarnation() -> str:
    return secrets.token_hex(16)


def legacy_incarnation(*parts: object) -> str:
    """A stable id for a record stored before incarnations existed (derived from what
    never changes in it: name and creation time)."""
    text = "\0".join(str(p) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:32]
