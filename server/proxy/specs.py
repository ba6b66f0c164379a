"""The request bodies and query strings of the web API, declared once for both the
routes (which enforce them) and the OpenAPI document (which describes them).

Bounds mirror what auth accepts (usernames up to 64 characters, passwords up to 256,
at most 32 labels, pages of at most 1000, certificates of at most 30 hours) so that a
request the proxy lets through is one auth can judge on its merits.
"""

from __future__ import annotations

from server.proxy.validation import BodySpec, IntegerField, NumberField, QueryParam, StringField

MAX_CERT_TTL_SECONDS = 30 * 3600
MAX_PAGE = 1000
MAX_LABELS = 32
# Epoch seconds up to the end of year 9999: far enough, and finite.
MAX_EPOCH = 253402300799.0
LABEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}=[A-Za-z0-9._:/@+=-]{0,253}$"
PAGE_TOKEN_PATTERN = r"^[A-Za-z0-9_=-]*$"  # noqa: S105 - a regex, not a secret
EVENT_TYPE_PATTERN = r"^[a-z][a-z0-9_.]{0,63}$"
PRINCIPAL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$"

LOGIN_BODY = BodySpec(
    {
        "username": StringField("The user's name.", max_length=64, min_length=1),
        "password": StringField(
            "The user's password (never logged or audited).", max_length=256, min_length=1
        ),
    }
)

CERTS_BODY = BodySpec(
    {
        "public_key": StringField(
            "OpenSSH public key line to certify, e.g. 'ssh-ed25519 AAAA... comment'.",
            max_length=8192,
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

_LIMIT = QueryParam(
    "limit",
    IntegerField("Page size; 0 means the server's default.", minimum=0, maximum=MAX_PAGE),
)
_PAGE_TOKEN = QueryParam(
    "page_token",
    StringField(
        "next_page_token of the previous page.",
        max_length=512,
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
    _LIMIT,
    _PAGE_TOKEN,
)

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
            max_length=128,
            min_length=1,
            pattern=PRINCIPAL_PATTERN,
            required=False,
        ),
    ),
    _LIMIT,
    _PAGE_TOKEN,
)
