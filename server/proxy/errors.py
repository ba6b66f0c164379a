"""Every error the web API returns, as JSON in one shape:

    {"error": {"type": "<a class of proto.errors>", "message": "..."}}

The HTTP status is the class's ``http_status`` except for the few HTTP-only refinements
below (413, 415, 408, 405), which keep the vocabulary's type name so that clients need to
know only one list. Messages from auth are passed through (auth writes them for end
users and keeps them generic where it matters, e.g. logins); two kinds are replaced:
``ConnectionProblem`` (its text names internal addresses and transport details) and
``Internal`` (only a request id, the details go to the log).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from proto.errors import (
    ALL_ERRORS,
    BadParameter,
    ConnectionProblem,
    Internal,
    LimitExceeded,
    MeziteError,
    NotAuthenticated,
    NotFound,
    from_http_status,
)

log = logging.getLogger(__name__)

AUTH_UNAVAILABLE = "the auth service is unavailable; try again later"


class ContentTooLarge(LimitExceeded):
    http_status = 413


class UnsupportedMediaType(BadParameter):
    http_status = 415


class RequestTimeout(LimitExceeded):
    http_status = 408


def new_request_id() -> str:
    return secrets.token_hex(8)


def request_id_of(request: Request) -> str:
    """The id the edge middleware gave this request (it is in every response header)."""
    value = getattr(request.state, "request_id", None)
    return value if isinstance(value, str) else new_request_id()


def vocabulary_name(err: MeziteError) -> str:
    """The name of the vocabulary class ``err`` is, or refines."""
    for cls in type(err).__mro__:
        if cls in ALL_ERRORS:
            return cls.__name__
    return Internal.__name__


def error_body(type_name: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"type": type_name, "message": message}}


def internal_error_response(request_id: str) -> JSONResponse:
    return JSONResponse(
        error_body("Internal", f"internal error (request id {request_id})"), status_code=500
    )


def error_response(
    err: MeziteError, request_id: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    if isinstance(err, Internal) or vocabulary_name(err) == Internal.__name__:
        log.error("internal error (request id %s): %s", request_id, err.message)
        return internal_error_response(request_id)
    message = err.message
    if isinstance(err, ConnectionProblem):
        log.warning("auth unreachable (request id %s): %s", request_id, err.message)
        message = AUTH_UNAVAILABLE
    all_headers = dict(headers or {})
    if isinstance(err, ContentTooLarge | RequestTimeout):
        # The rest of the body is unread: close rather than wait for it to drain.
        all_headers["Connection"] = "close"
    if isinstance(err, NotAuthenticated):
        all_headers.setdefault("WWW-Authenticate", 'Bearer realm="mezite"')
    return JSONResponse(
        error_body(vocabulary_name(err), message),
        status_code=err.http_status,
        headers=all_headers,
    )


async def handle_mezite_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MeziteError)
    return error_response(exc, request_id_of(request))


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such route, wrong method) in our shape."""
    assert isinstance(exc, HTTPException)
    request_id = request_id_of(request)
    if exc.status_code == 404:
        return error_response(NotFound("no such endpoint"), request_id)
    if exc.status_code == 405:
        return JSONResponse(
            error_body(BadParameter.__name__, "method not allowed on this endpoint"),
            status_code=405,
            headers=dict(exc.headers or {}),
        )
    err = from_http_status(exc.status_code, "request refused")
    if isinstance(err, Internal) and exc.status_code < 500:
        err = BadParameter("request refused")
    return error_response(err, request_id, exc.headers)
