"""The node's certificate-only SSH server (``mezd start``)."""

from agent.sshd.config import AuditSink, NodeSSHConfig
from agent.sshd.server import NodeSSHServer, start_node_ssh_server
from agent.sshd.users import OSUser, SystemUserLookup, UserLookup

__all__ = [
    "AuditSink",
    "NodeSSHConfig",
    "NodeSSHServer",
    "OSUser",
    "SystemUserLookup",
    "UserLookup",
    "start_node_ssh_server",
]
