"""Who a web request speaks for, and whether a browser could have been tricked into it.

A request names its session in one of two ways:
- ``Authorization: Bearer <session id>`` (scripts, the CLI). When this header is present
  it alone counts, even if a cookie is sent too, and a malformed one is refused rather
  than passed over in favour of the cookie.
- the ``mezite_session`` cookie that ``POST /v1/webapi/login`` sets (browsers).

CSRF: browsers attach cookies to cross-site requests, never custom headers or a forged
``Origin``. So a state-changing request (POST, PUT, PATCH, DELETE) authenticated by the
cookie must carry ``X-Mezite-CSRF: 1``, which a cross-site page cannot send without a CORS
preflight, and we answer no preflight; and when it carries ``Origin`` (every modern
browser does on such requests) that must be exactly ``settings.public_origin``. Bearer
requests need neither: no browser adds an Authorization header on its own.
Login, which sets the cookie, refuses a foreign ``Origin`` too (login CSRF).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from starlette.requests import HTTPConnection, Request

from proto.errors import AccessDenied, NotAuthenticated
from server.proxy.settings import ProxySettings

log = logging.getLogger(__name__)

SESSION_COOKIE = "mezite_session"
CSRF_HEADER = "X-Mezite-CSRF"
STATE_CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The same bounds auth applies to the session ids it issues (server/auth/rpc/guard.py);
# repeated here because the proxy only ever reaches auth over the wire.
MAX_AUTHORIZATION_LEN = 256
SESSION_ID_RE = re.compile(r"[A-Za-z0-9_-]{22,128}")
NEEDS_SESSION = (
    "this endpoint needs a session: send 'Authorization: Bearer <session id>' "
    f"or the {SESSION_COOKIE} cookie from POST /v1/webapi/login"
)
_COOKIE_ATTRIBUTES = "HttpOnly; Secure; SameSite=Strict; Path=/"


@dataclass(frozen=True)
class SessionCredential:
    session_id: str = field(repr=False)
    via_cookie: bool


def parse_bearer(value: str) -> str:
    if len(value) > MAX_AUTHORIZATION_LEN:
        raise NotAuthenticated("authorization header too long")
    scheme, sep, token = value.partition(" ")
    if scheme != "Bearer" or not sep or not SESSION_ID_RE.fullmatch(token):
        raise NotAuthenticated("malformed authorization header; expected 'Bearer <session id>'")
    return token


def _session_cookies(request: HTTPConnection) -> list[str]:
    """Every ``mezite_session`` value in the Cookie header(s), parsed by hand: a lenient
    parser would quietly pick one of two conflicting cookies (cookie tossing)."""
    found: list[str] = []
    for header in request.headers.getlist("cookie"):
        for pair in header.split(";"):
            name, sep, value = pair.strip().partition("=")
            if sep and name.strip() == SESSION_COOKIE:
                found.append(value.strip())
    return found


def session_from_request(request: HTTPConnection) -> SessionCredential:
    authorization = request.headers.getlist("authorization")
    if authorization:
        if len(authorization) != 1:
            raise NotAuthenticated("exactly one authorization header is allowed")
        return SessionCredential(parse_bearer(authorization[0]), via_cookie=False)
    cookies = _session_cookies(request)
    if len(cookies) > 1:
        raise NotAuthenticated(f"more than one {SESSION_COOKIE} cookie")
    if not cookies:
        raise NotAuthenticated(NEEDS_SESSION)
    if not SESSION_ID_RE.fullmatch(cookies[0]):
        raise NotAuthenticated(f"malformed {SESSION_COOKIE} cookie")
    return SessionCredential(cookies[0], via_cookie=True)


def check_origin(request: Request, settings: ProxySettings) -> None:
    """Refuse a request whose Origin, when sent, is not our own."""
    origins = request.headers.getlist("origin")
    if not origins:
        return
    if len(origins) != 1 or origins[0] != settings.public_origin:
        # Logged because it never reaches auth, whose audit log sees only what we forward.
        log.info(
            "refused %s %s from origin %s",
            request.method,
            request.url.path[:200],
            repr(origins)[:200],
        )
        raise AccessDenied("cross-origin request refused")


def check_csrf(request: Request, credential: SessionCredential, settings: ProxySettings) -> None:
    if not credential.via_cookie or request.method not in STATE_CHANGING_METHODS:
        return
    check_origin(request, settings)
    if request.headers.getlist(CSRF_HEADER) != ["1"]:
        log.info(
            "refused %s %s: cookie without %s", request.method, request.url.path[:200], CSRF_HEADER
        )
        raise AccessDenied(
            f"a change authenticated by the session cookie needs the header '{CSRF_HEADER}: 1'"
        )


def session_cookie(session_id: str, max_age: int) -> str:
    return f"{SESSION_COOKIE}={session_id}; {_COOKIE_ATTRIBUTES}; Max-Age={max(0, max_age)}"


def cleared_session_cookie() -> str:
    return f"{SESSION_COOKIE}=; {_COOKIE_ATTRIBUTES}; Max-Age=0"
