"""mezd, the node agent: join, presence, the SSH server, agent-identity renewal."""
