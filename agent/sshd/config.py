"""What the node's SSH server is given: its identity, its trust, and where it reports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import asyncssh

from agent.sshd.sftp import SFTP_AUTO, SFTP_SERVER_PATHS
from proto.event_types import EventType
from proto.sshserver import LOGIN_TIMEOUT_SECONDS, UNAUTHENTICATED_PER_ADDRESS

AuditValue = str | int | float | bool | None | list[str]

# Commands are recorded, not replayed: a bounded prefix is enough to tell what ran.
MAX_AUDITED_COMMAND = 1024


@dataclass(frozen=True)
class NodeSSHConfig:
    host_id: str
    node_name: str
    labels: Mapping[str, str]
    host_key: asyncssh.SSHKey
    host_cert: asyncssh.SSHCertificate
    user_ca_keys: Sequence[str]
    listen_host: str = "0.0.0.0"  # noqa: S104 - a node serves SSH on every interface
    listen_port: int = 3022
    # `mezd start --sftp-server`: auto, builtin, none or the path of an sftp-server.
    sftp_server: str = SFTP_AUTO
    # Where "auto" looks for the system's sftp-server (tests point it at nothing).
    sftp_search: Sequence[str] = field(default=SFTP_SERVER_PATHS, compare=False)
    # Pre-authentication bounds (see proto.sshserver).
    login_timeout: float = LOGIN_TIMEOUT_SECONDS
    unauthenticated_per_address: int = UNAUTHENTICATED_PER_ADDRESS


class AuditSink(Protocol):
    """Where the node's audit events go (the agent batches them to the auth service)."""

    def emit(
        self,
        type: EventType,
        *,
        user: str = "",
        success: bool = True,
        session_id: str = "",
        **fields: AuditValue,
    ) -> None: ...


def truncate_command(command: str) -> str:
    return command[:MAX_AUDITED_COMMAND]
