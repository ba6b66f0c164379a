"""Key-value storage for the auth server: the ``Backend`` contract and its SQLite
implementation."""

from .atomic import MAX_ATOMIC_OPS, Condition, Delete, DeleteRange, Put
from .base import (
    DEFAULT_SWEEP_INTERVAL,
    DEFAULT_WATCH_QUEUE,
    KEYSPACE_END,
    MAX_KEY_BYTES,
    MAX_VALUE_BYTES,
    Backend,
    Event,
    EventType,
    Item,
    Watcher,
    prefix_range,
    validate_key,
)
from .sqlite import SQLiteBackend

__all__ = [
    "DEFAULT_SWEEP_INTERVAL",
    "DEFAULT_WATCH_QUEUE",
    "KEYSPACE_END",
    "MAX_ATOMIC_OPS",
    "MAX_KEY_BYTES",
    "MAX_VALUE_BYTES",
    "Backend",
    "Condition",
    "Delete",
    "DeleteRange",
    "Event",
    "EventType",
    "Item",
    "Put",
    "SQLiteBackend",
    "Watcher",
    "prefix_range",
    "validate_key",
]
