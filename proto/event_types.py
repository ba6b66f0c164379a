"""The audit event types, as one ``Literal``: every place that emits an event (auth,
the proxy, mezd's audit forwarder) names its type through ``EventType``, so mypy
refuses a type the audit log does not know. The log gives each a code
(``server/audit/events.py``'s ``EVENT_CODES``, keyed by this type; a unit test checks
that the two name the same types)."""

from __future__ import annotations

from typing import Literal, cast, get_args

EventType = Literal[
    "user.login",
    "user.login.failed",
    "user.create",
    "user.update",
    "user.delete",
    "user.password_change",
    "user.reset",
    "session.logout",
    "session.start",
    "session.end",
    "session.terminated",
    "exec",
    "port_forward",
    "auth.failed",
    "sftp",
    "scp",
    "access.denied",
    "role.created",
    "role.deleted",
    "cert.create",
    "cert.create.failed",
    "token.create",
    "token.delete",
    "join",
    "join.failed",
    "agent.delete",
    "agent_identity.create",
    "agent_identity.bootstrap",
    "agent_identity.renew",
    "agent_identity.generation_mismatch",
    "agent_identity.lock",
    "agent_identity.unlock",
    "agent_identity.delete",
    "spiffe.authenticate",
    "spiffe.authenticate.failed",
    "spiffe.svid.issue",
    "spiffe.trust.put",
    "spiffe.trust.delete",
    "spiffe.workload.create",
    "spiffe.workload.delete",
    "session.recording",
    "proxy.route",
    "web.terminal",
    "lock.create",
    "lock.delete",
    "krl.export",
]

EVENT_TYPES: frozenset[str] = frozenset(get_args(EventType))


def known_event_type(text: str) -> EventType | None:
    """``text`` as an event type when it is one (a type that came over the wire)."""
    return cast("EventType", text) if text in EVENT_TYPES else None
