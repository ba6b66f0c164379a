"""Atomic writes: several changes that commit together, only if conditions hold.

Teleport's backend has the same shape (``AtomicWrite``): conditions on keys (a live
item is there, none is, or the live item has a given revision), then actions applied in
order (put, delete, delete a range). Either every action commits, in one transaction,
or ``CompareFailed`` is raised and nothing changes. Resources use it where one thing
and what hangs off it must change together: a user and its sessions, an identity and
its pending tokens, a deletion and the lock it implies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from proto.errors import BadParameter

from .base import Item, is_live, validate_item, validate_key, validate_range

MAX_ATOMIC_OPS = 64


@dataclass(frozen=True, slots=True)
class Condition:
    """What must hold at ``key``: a live item with exactly ``revision``; or, with
    ``revision`` None, a live item (``exists=True``) or none (``exists=False``)."""

    key: str
    exists: bool = True
    revision: int | None = None

    @classmethod
    def unchanged(cls, item: Item) -> Condition:
        """``item`` is still there as it was read (same revision)."""
        return cls(item.key, revision=item.revision)

    @classmethod
    def absent(cls, key: str) -> Condition:
        return cls(key, exists=False)

    def holds(self, current: Item | None, now: float) -> bool:
        live = current is not None and is_live(current, now)
        if self.revision is not None:
            return live and current is not None and current.revision == self.revision
        return live == self.exists


@dataclass(frozen=True, slots=True)
class Put:
    item: Item


@dataclass(frozen=True, slots=True)
class Delete:
    """Remove the item at ``key`` if there is one (no error if there is none)."""

    key: str


@dataclass(frozen=True, slots=True)
class DeleteRange:
    """Remove the live items with ``start <= key < end``."""

    start: str
    end: str


Action = Put | Delete | DeleteRange


def validate_atomic(conditions: Sequence[Condition], actions: Sequence[Action]) -> None:
    if not actions:
        raise BadParameter("an atomic write needs at least one action")
    if len(conditions) + len(actions) > MAX_ATOMIC_OPS:
        raise BadParameter(f"an atomic write takes at most {MAX_ATOMIC_OPS} conditions and actions")
    for condition in conditions:
        if not isinstance(condition, Condition):
            raise BadParameter("conditions must be Condition objects")
        validate_key(condition.key)
        if condition.revision is not None and not condition.exists:
            raise BadParameter("a revision condition requires the item to exist")
    if len({c.key for c in conditions}) != len(conditions):
        raise BadParameter("at most one condition per key")
    keys: set[str] = set()
    for action in actions:
        if isinstance(action, Put):
            validate_item(action.item)
            key = action.item.key
        elif isinstance(action, Delete):
            validate_key(action.key)
            key = action.key
        elif isinstance(action, DeleteRange):
            validate_range(action.start, action.end)
            continue
        else:
            raise BadParameter("actions must be Put, Delete or DeleteRange")
        if key in keys:
            raise BadParameter("at most one put or delete per key")
        keys.add(key)
