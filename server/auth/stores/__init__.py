"""Typed records in the backend (and their in-memory mirrors): users, sessions, roles,
agents, tokens, nodes, locks."""
