"""The audit log: typed, Teleport-style events in an append-only store with batched
writes."""

from .events import (
    EVENT_CODES,
    MAX_FIELDS,
    MAX_LIST_ITEMS,
    MAX_STRING_CHARS,
    AuditEvent,
    FieldValue,
    check_field_name,
    event_code,
    is_failure_type,
    new_event,
)
from .log import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_FLUSH_INTERVAL,
    DEFAULT_MAX_QUEUE,
    DEFAULT_SEARCH_LIMIT,
    MAX_SEARCH_LIMIT,
    AuditLog,
    Query,
)
from .sqlite import SQLiteAuditLog

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_FLUSH_INTERVAL",
    "DEFAULT_MAX_QUEUE",
    "DEFAULT_SEARCH_LIMIT",
    "EVENT_CODES",
    "MAX_FIELDS",
    "MAX_LIST_ITEMS",
    "MAX_SEARCH_LIMIT",
    "MAX_STRING_CHARS",
    "AuditEvent",
    "AuditLog",
    "FieldValue",
    "Query",
    "SQLiteAuditLog",
    "check_field_name",
    "event_code",
    "is_failure_type",
    "new_event",
]
