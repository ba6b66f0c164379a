"""Role-based access evaluation: which logins, which nodes, which session options.

Everything is default deny: no role, no access; an empty node-label rule matches no
node. Where a role can deny (logins, node labels), deny always wins over allow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from proto.access import encode_node_access, label_rule_matches
from proto.errors import AccessDenied
from server.auth.stores.roles import (
    DEFAULT_SESSION_TTL,
    INTERNAL_LOGINS,
    MAX_SESSION_TTL,
    Role,
    RoleStore,
    is_valid_login,
)
from server.auth.stores.users import User, UserStore

__all__ = ["AccessChecker", "SessionOptions", "label_rule_matches"]


@dataclass(frozen=True, slots=True)
class SessionOptions:
    """The session options a user's roles add up to."""

    max_session_ttl: float
    permit_pty: bool
    port_forwarding: bool
    agent_forwarding: bool
    record_sessions: bool = True


def _expand(logins: Sequence[str], traits: Sequence[str]) -> set[str]:
    expanded: set[str] = set()
    for login in logins:
        if login == INTERNAL_LOGINS:
            expanded.update(traits)
        else:
            expanded.add(login)
    return expanded


class AccessChecker:
    """Evaluates one user's roles.

    ``roles`` are the user's roles (already loaded; missing ones simply absent) and
    ``logins`` is the user's ``logins`` trait, substituted for ``{{internal.logins}}``.
    """

    def __init__(self, roles: Sequence[Role], logins: Sequence[str] = ()) -> None:
        self._roles = tuple(roles)
        traits = (logins,) if isinstance(logins, str) else tuple(logins)
        allowed: set[str] = set()
        denied: set[str] = set()
        for role in self._roles:
            allowed |= _expand(role.allow.logins, traits)
            denied |= _expand(role.deny.logins, traits)
        # Every login is re-validated: a trait value that is not a valid login (or a
        # template that was never expanded) is dropped, never passed through.
        self._logins = tuple(sorted(x for x in allowed - denied if is_valid_login(x)))

    @property
    def roles(self) -> tuple[Role, ...]:
        return self._roles

    @property
    def role_names(self) -> tuple[str, ...]:
        return tuple(role.name for role in self._roles)

    def logins(self) -> tuple[str, ...]:
        """The OS logins the user may use: allowed by some role and denied by none, with
        ``{{internal.logins}}`` expanded on both sides; sorted and de-duplicated."""
        return self._logins

    def check_login(self, login: str) -> None:
        """``AccessDenied`` unless ``login`` is one of ``logins()``."""
        if login not in self._logins:
            raise AccessDenied(f"not allowed to log in as {login!r}")

    def can_access_node(self, labels: Mapping[str, str]) -> bool:
        """Some role's allow rule matches the node and no role's deny rule does."""
        if any(label_rule_matches(role.deny.node_labels, labels) for role in self._roles):
            return False
        return any(label_rule_matches(role.allow.node_labels, labels) for role in self._roles)

    def node_access(self) -> str:
        """The node-label rules of the roles, for the certificate's node-access extension."""
        return encode_node_access(
            [role.allow.node_labels for role in self._roles],
            [role.deny.node_labels for role in self._roles],
        )

    def max_session_ttl(self) -> float:
        """The strictest (smallest) non-zero ``max_session_ttl`` over the roles; 12h when
        no role sets one; never more than 30h."""
        limits = [
            role.options.max_session_ttl
            for role in self._roles
            if role.options.max_session_ttl > 0  # 0 means "default"; NaN is ignored
        ]
        ttl = min(limits) if limits else DEFAULT_SESSION_TTL
        return min(ttl, MAX_SESSION_TTL)

    def options(self) -> SessionOptions:
        """The session options the roles add up to.

        ``permit_pty``, ``port_forwarding`` and ``agent_forwarding`` are each granted iff
        ANY of the user's roles grants it. A role's options have no deny side: ``false``
        means "this role does not grant it", not "forbid it". To withhold an option from a
        user, take away every role that grants it. (Deny-wins applies to what roles can
        deny: logins and node labels.) ``max_session_ttl`` is ``max_session_ttl()``.
        """
        return SessionOptions(
            max_session_ttl=self.max_session_ttl(),
            permit_pty=any(role.options.permit_pty for role in self._roles),
            port_forwarding=any(role.options.port_forwarding for role in self._roles),
            agent_forwarding=any(role.options.agent_forwarding for role in self._roles),
            # The strictest role wins: any role that records (the default) records.
            record_sessions=not self._roles
            or any(role.options.record_sessions for role in self._roles),
        )


async def load_checker(
    users: UserStore, roles: RoleStore, username: str
) -> tuple[User, AccessChecker]:
    """A user's record and the checker for their current roles."""
    user = await users.get(username)
    return user, AccessChecker(await roles.get_many(user.roles), user.logins)
