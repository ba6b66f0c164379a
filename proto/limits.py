"""The bounds auth enforces on what clients send, in one place: auth checks them, and the
proxy's web API declares the same ones (``server/proxy/specs.py``) so that a request the
proxy lets through is one auth can judge on its merits."""

from __future__ import annotations

MAX_USERNAME_CHARS = 64
# Hashing cost grows with the input; a cap keeps a login from being a CPU lever.
MAX_PASSWORD_BYTES = 256
MAX_CERT_TTL_SECONDS = 30 * 3600
MAX_PUBLIC_KEY_LINE = 16 * 1024
MAX_LABELS = 32
# A label as key=value: the key and value forms join tokens and nodes accept.
LABEL_KEY_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._/-]{0,62}"
LABEL_VALUE_PATTERN = r"[A-Za-z0-9._:/@+=-]{0,253}"
MAX_PAGE = 1000  # nodes and audit events alike
MAX_PAGE_TOKEN_CHARS = 512
MAX_AGENT_ID_CHARS = 128
