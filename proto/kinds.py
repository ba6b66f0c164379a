"""The kinds of agent (holders of an X.509 client certificate from the host CA). The
certificate names its kind, the agent record stores it, and the guard's principal
carries it, so each is this one enum rather than a string compared by hand."""

from __future__ import annotations

from enum import StrEnum


class AgentKind(StrEnum):
    NODE = "node"
    PROXY = "proxy"
    BOT = "bot"  # an agent identity
    ADMIN = "admin"  # the local admin identity on the auth host
