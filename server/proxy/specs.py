"""The request bodies and query strings of the web API, declared once for both the
routes (which enforce them) and the OpenAPI document (which describes them).

Bounds are auth's own (``proto.limits``) so that a request the proxy lets through is one
auth can judge on its merits; a few are stricter here (a public key line for a user's
certificate is far shorter than auth's cap).
"""

from __future__ import annotations

from proto.limits import (
    LABEL_KEY_PATTERN,
    LABEL_VALUE_PATTERN,
    MAX_AGENT_ID_CHARS,
    MAX_CERT_TTL_SECONDS,
    MAX_LABELS,
    MAX_PAGE,
    MAX_PAGE_TOKEN_CHARS,
    MAX_PASSWORD_BYTES,
    MAX_USERNAME_CHARS,
)
from server.proxy.validation import (
    BodySpec,
    IntegerField,
    ListField,
    NumberField,
    QueryParam,
    StringField,
)

# Epoch seconds up to the end of year 9999: far enough, and finite.
MAX_EPOCH = 253402300799.0
LABEL_PATTERN = f"^{LABEL_KEY_PATTERN}={LABEL_VALUE_PATTERN}$"
PAGE_TOKEN_PATTERN = r"^[A-Za-z0-9_=-]*$"  # noqa: S105 - a regex, not a secret
EVENT_TYPE_PATTERN = r"^[a-z][a-z0-9_.]{0,63}$"
PRINCIPAL_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9._@-]{{0,{MAX_AGENT_ID_CHARS - 1}}}$"
MAX_PUBLIC_KEY_CHARS = 8192

LOGIN_BODY = BodySpec(
    {
        "username": StringField("The user's name.", max_length=MAX_USERNAME_CHARS, min_length=1),
        "password": StringField(
            "The user's password (never logged or audited).",
            max_length=MAX_PASSWORD_BYTES,
            min_length=1,
        ),
    }
)

CERTS_BODY = BodySpec(
    {
        "public_key": StringField(
            "OpenSSH public key line to certify, e.g. 'ssh-ed25519 AAAA... comment'.",
            max_length=MAX_PUBLIC_KEY_CHARS,
            min_length=1,
            pattern=r"^[ -~]+$",
        ),
        "ttl_seconds": IntegerField(
            "Requested validity in seconds; 0 asks for the longest the user's roles allow. "
            "Auth clamps it to the roles' maximum.",
            minimum=0,
            maximum=MAX_CERT_TTL_SECONDS,
        ),
    }
)

SPIFFE_BODY = BodySpec(
    {
        "svid_chain_pem": StringField(
            "The X.509 SVID, PEM, leaf first (at most 4 certificates).",
            max_length=60 * 1024,
            min_length=1,
        ),
        "proof_signature": StringField(
            "Base64 signature by the SVID's key over 'mezite-spiffe-proof-v1' NUL cluster "
            "NUL ssh_public_key NUL proof_time (ECDSA SHA-256/384, Ed25519, RSA-PSS SHA-256).",
            max_length=2048,
            min_length=1,
            pattern=r"^[A-Za-z0-9+/]+={0,2}$",
        ),
        "proof_time": IntegerField(
            "Whole epoch seconds the proof was made at (within 5 minutes of auth's clock).",
            minimum=0,
            maximum=int(MAX_EPOCH),
        ),
        "ssh_public_key": StringField(
            "OpenSSH public key line to certify.",
            max_length=MAX_PUBLIC_KEY_CHARS,
            min_length=1,
            pattern=r"^[ -~]+$",
        ),
    }
)

_LIMIT = QueryParam(
    "limit",
    IntegerField("Page size; 0 means the server's default.", minimum=0, maximum=MAX_PAGE),
)
_PAGE_TOKEN = QueryParam(
    "page_token",
    StringField(
        "next_page_token of the previous page.",
        max_length=MAX_PAGE_TOKEN_CHARS,
        pattern=PAGE_TOKEN_PATTERN,
        required=False,
    ),
)

NODES_QUERY = (
    QueryParam(
        "label",
        StringField(
            "A label 'name=value' every returned node must carry (repeatable).",
            max_length=317,
            min_length=2,
            pattern=LABEL_PATTERN,
            required=False,
        ),
        max_items=MAX_LABELS,
    ),
    QueryParam(
        "name",
        StringField(
            "Only the node with this name or id, exactly.",
            max_length=MAX_AGENT_ID_CHARS,
            min_length=1,
            pattern=r"^[!-~]+$",
            required=False,
        ),
    ),
    _LIMIT,
    _PAGE_TOKEN,
)

RECORDINGS_QUERY = (
    QueryParam(
        "user",
        StringField("Only this user's recordings (admins and auditors).", max_length=255,
                    min_length=1, pattern=r"^[!-~]+$", required=False),
    ),
    QueryParam(
        "node",
        StringField("Only this node's (name or id).", max_length=MAX_AGENT_ID_CHARS,
                    min_length=1, pattern=PRINCIPAL_PATTERN, required=False),
    ),
    QueryParam(
        "since",
        NumberField("Recordings started at or after, epoch seconds.", minimum=0,
                    maximum=MAX_EPOCH),
    ),
)  # fmt: skip
SESSION_ID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"

AUDIT_QUERY = (
    QueryParam(
        "since",
        NumberField("Events at or after this time, epoch seconds.", minimum=0, maximum=MAX_EPOCH),
    ),
    QueryParam(
        "until",
        NumberField(
            "Events before this time, epoch seconds; absent or 0 means now.",
            minimum=0,
            maximum=MAX_EPOCH,
        ),
    ),
    QueryParam(
        "type",
        StringField(
            "An event type to match, e.g. 'user.login' (repeatable; none means all).",
            max_length=64,
            min_length=1,
            pattern=EVENT_TYPE_PATTERN,
            required=False,
        ),
        max_items=32,
    ),
    QueryParam(
        "user",
        StringField(
            "Only events of this user or agent.",
            max_length=MAX_AGENT_ID_CHARS,
            min_length=1,
            pattern=PRINCIPAL_PATTERN,
            required=False,
        ),
    ),
    QueryParam(
        "node",
        StringField(
            "Only events about this node (its name or id).",
            max_length=MAX_AGENT_ID_CHARS,
            min_length=1,
            pattern=PRINCIPAL_PATTERN,
            required=False,
        ),
    ),
    QueryParam(
        "order",
        StringField(
            "'asc' (oldest first, the default) or 'desc' (newest first).",
            max_length=4,
            min_length=3,
            pattern="^(asc|desc)$",
            required=False,
        ),
    ),
    _LIMIT,
    _PAGE_TOKEN,
)

# Users, roles and tokens as auth names them (server/auth/rpc/guard.py validate_name).
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"
_NAME = StringField("A name.", max_length=64, min_length=1, pattern=NAME_PATTERN)
MAX_ROLE_YAML_CHARS = 64 * 1024


INVITE_BODY = BodySpec(
    {
        "token": StringField("The invite token mezctl printed (or the link carried).",
                             max_length=256, min_length=1, pattern=r"^[A-Za-z0-9._-]+$"),
        "password": StringField("The new password (never logged or audited).",
                                max_length=MAX_PASSWORD_BYTES, min_length=1),
    }
)  # fmt: skip

USER_BODY = BodySpec(
    {
        "name": StringField("The user's name.", max_length=64, min_length=1,
                            pattern=NAME_PATTERN),
        "roles": ListField("Role names; each must exist.", _NAME, max_items=32, required=True),
        "logins": ListField(
            "OS logins the user's roles may use through {{internal.logins}}.",
            StringField("An OS login.", max_length=64, min_length=1, pattern=r"^[!-~]+$"),
            max_items=32,
        ),
    }
)  # fmt: skip

TOKEN_BODY = BodySpec(
    {
        "type": StringField("'node' or 'proxy'.", max_length=5, min_length=4,
                            pattern="^(node|proxy)$"),
        "ttl_seconds": IntegerField("Lifetime in seconds; 0 means 30 minutes.", minimum=0,
                                    maximum=7 * 24 * 3600),
        "labels": ListField(
            "Labels 'name=value' for nodes that join with it.",
            StringField("A label.", max_length=317, min_length=2, pattern=LABEL_PATTERN),
            max_items=MAX_LABELS,
        ),
    }
)  # fmt: skip

ROLE_BODY = BodySpec(
    {
        "yaml": StringField("One role as YAML (the form `mezctl get roles` prints).",
                            max_length=MAX_ROLE_YAML_CHARS, min_length=1),
    }
)  # fmt: skip
