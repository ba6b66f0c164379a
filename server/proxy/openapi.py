"""The OpenAPI 3.1 document of the web API, served at ``/v1/webapi/openapi.json``.

Written by hand, but request bodies and query parameters come from the same
declarations the routes enforce (``specs.py``), and a property-based test drives every
operation from this document against a live server, checking responses against it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from proto.errors import ALL_ERRORS
from server.proxy.credentials import CSRF_HEADER, SESSION_COOKIE
from server.proxy.specs import AUDIT_QUERY, CERTS_BODY, LOGIN_BODY, NODES_QUERY
from server.proxy.validation import QueryParam

Doc = dict[str, Any]

OPENAPI_PATH = "/v1/webapi/openapi.json"
SESSION_SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"cookieAuth": []}]

_ERROR_DESCRIPTIONS = {
    "400": "Malformed request: bad JSON, unknown or missing fields, out-of-range values.",
    "401": "No session, a malformed one, or one auth does not accept (expired, logged out).",
    "403": "Refused: a cross-site request, a missing X-Mezite-CSRF header on a "
    "cookie-authenticated change, or the user's roles do not allow it.",
    "413": "The body exceeds the proxy's limit.",
    "415": "The body is not sent as application/json.",
    "429": "Too many attempts (rate limit or account lockout).",
    "503": "The auth service cannot be reached.",
    "default": "Any other error of the vocabulary, e.g. 500 Internal with a request id.",
}


def _string(description: str) -> Doc:
    return {"type": "string", "description": description}


def _number(description: str) -> Doc:
    return {"type": "number", "description": description}


def _strings(description: str) -> Doc:
    return {"type": "array", "items": {"type": "string"}, "description": description}


def _object(properties: dict[str, Doc]) -> Doc:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _ref(name: str) -> Doc:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: Doc) -> Doc:
    return {"application/json": {"schema": schema}}


def _schemas() -> dict[str, Doc]:
    return {
        "Error": _object(
            {
                "error": _object(
                    {
                        "type": {"type": "string", "enum": [c.__name__ for c in ALL_ERRORS]},
                        "message": _string("What went wrong, for people."),
                    }
                )
            }
        ),
        "Status": _object({"status": _string("'ok' or 'ready'.")}),
        "Ping": _object(
            {
                "cluster_name": _string("Cluster name."),
                "auth_addr": _string("Address of the auth service."),
                "proxy_ssh_addr": _string("Address of the proxy's SSH listener ('' if none)."),
                "ca_pins": _strings("'sha256:<hex>' pins of the host X.509 CA."),
                "ca_pem": _string(
                    "The host X.509 CA (PEM). Select it by pin, then verify this proxy with it."
                ),
                "server_version": _string("Server version."),
            }
        ),
        "LoginRequest": LOGIN_BODY.schema(),
        "LoginResponse": _object(
            {
                "session_id": _string("Opaque session id; send as 'Authorization: Bearer <id>'."),
                "expires": _number("Session expiry, epoch seconds."),
            }
        ),
        "CurrentUser": _object(
            {
                "username": _string("User name (or agent id)."),
                "roles": _strings("Role names."),
                "logins": _strings("OS logins the roles allow."),
                "session_expires": _number("Session expiry, epoch seconds (0 for agents)."),
            }
        ),
        "Node": _object(
            {
                "id": _string("Agent id."),
                "name": _string("Node name."),
                "addr": _string("host:port of the node's SSH server."),
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "last_seen": _number("Last heartbeat, epoch seconds."),
            }
        ),
        "NodeList": _object(
            {
                "nodes": {"type": "array", "items": _ref("Node")},
                "next_page_token": _string("Token of the next page; '' at the end."),
            }
        ),
        "AuditEvent": _object(
            {
                "id": _string("Event id."),
                "type": _string("Event type, e.g. 'user.login'."),
                "code": _string("Event code, e.g. 'T1000I'."),
                "time": _number("Epoch seconds."),
                "user": _string("The acting user or agent ('' if unknown)."),
                "session_id": _string("Session id for session events."),
                "fields": {"type": "object", "description": "Event-specific fields."},
                "success": {"type": "boolean"},
            }
        ),
        "AuditEventList": _object(
            {
                "events": {"type": "array", "items": _ref("AuditEvent")},
                "next_page_token": _string("Token of the next page; '' at the end."),
            }
        ),
        "CertsRequest": CERTS_BODY.schema(),
        "CertsResponse": _object(
            {
                "ssh_certificate": _string("OpenSSH user certificate line."),
                "host_ca_keys": _strings("Host SSH CA public keys (for @cert-authority)."),
                "tls_ca_pem": _string("Host X.509 CA bundle, PEM."),
                "valid_before": _number("Certificate validity end, epoch seconds."),
            }
        ),
    }


def _errors(*codes: str) -> dict[str, Doc]:
    return {
        code: {"description": _ERROR_DESCRIPTIONS[code], "content": _json(_ref("Error"))}
        for code in (*codes, "default")
    }


def _ok(schema_name: str, description: str) -> dict[str, Doc]:
    return {"200": {"description": description, "content": _json(_ref(schema_name))}}


def _query(params: Sequence[QueryParam]) -> list[Doc]:
    out: list[Doc] = []
    for p in params:
        param: Doc = {
            "name": p.name,
            "in": "query",
            "required": False,
            "description": p.field.description,
            "schema": p.schema(),
        }
        if p.max_items:
            param.update(style="form", explode=True)
        out.append(param)
    return out


_CSRF_PARAM: Doc = {
    "name": CSRF_HEADER,
    "in": "header",
    "required": False,
    # Not an enum: a bearer request may send anything here (it is ignored), so only the
    # description can say what a cookie request needs.
    "description": "Must be '1' when the request is authenticated by the session cookie; "
    "ignored for bearer requests.",
    "schema": {"type": "string"},
}


def _operation(
    summary: str,
    responses: dict[str, Doc],
    *,
    tag: str = "webapi",
    secured: bool = False,
    params: Sequence[Doc] = (),
    body: str | None = None,
) -> Doc:
    op: Doc = {"summary": summary, "tags": [tag], "responses": responses}
    if params:
        op["parameters"] = list(params)
    if body is not None:
        op["requestBody"] = {"required": True, "content": _json(_ref(body))}
    op["security"] = SESSION_SECURITY if secured else []
    return op


def _paths() -> dict[str, Doc]:
    set_cookie = {
        "Set-Cookie": {
            "description": f"{SESSION_COOKIE}=<id>; HttpOnly; Secure; SameSite=Strict; "
            "Path=/; Max-Age=<seconds, at most the session's remaining life>",
            "schema": {"type": "string"},
        }
    }
    login_ok = _ok("LoginResponse", "Logged in; the session is also set as a cookie.")
    login_ok["200"]["headers"] = set_cookie
    return {
        "/v1/webapi/ping": {
            "get": _operation(
                "Cluster name, addresses, CA pins and version; needs no session.",
                {**_ok("Ping", "The cluster."), **_errors("400")},
            )
        },
        "/v1/webapi/login": {
            "post": _operation(
                "Exchange a username and password for a session. An Origin header, when "
                "sent, must be the proxy's own.",
                {**login_ok, **_errors("400", "401", "403", "413", "415", "429", "503")},
                body="LoginRequest",
            )
        },
        "/v1/webapi/session": {
            "delete": _operation(
                "Log out: auth deletes the session and the response clears the cookie.",
                {
                    "204": {"description": "Logged out; the cookie is cleared."},
                    **_errors("400", "401", "403", "503"),
                },
                secured=True,
                params=[_CSRF_PARAM],
            )
        },
        "/v1/webapi/me": {
            "get": _operation(
                "The caller: user, roles and allowed logins.",
                {**_ok("CurrentUser", "The caller."), **_errors("400", "401", "503")},
                secured=True,
            )
        },
        "/v1/webapi/nodes": {
            "get": _operation(
                "Nodes the caller's roles allow, filtered by labels, one page at a time.",
                {**_ok("NodeList", "One page of nodes."), **_errors("400", "401", "503")},
                secured=True,
                params=_query(NODES_QUERY),
            )
        },
        "/v1/webapi/audit/events": {
            "get": _operation(
                "Search the audit log, oldest first; needs the auditor or admin role.",
                {
                    **_ok("AuditEventList", "One page of events."),
                    **_errors("400", "401", "403", "503"),
                },
                secured=True,
                params=_query(AUDIT_QUERY),
            )
        },
        "/v1/webapi/certs": {
            "post": _operation(
                "Sign the caller's SSH public key into a short-lived user certificate.",
                {
                    **_ok("CertsResponse", "The certificate and the CAs to trust."),
                    **_errors("400", "401", "403", "413", "415", "503"),
                },
                secured=True,
                params=[_CSRF_PARAM],
                body="CertsRequest",
            )
        },
        OPENAPI_PATH: {
            "get": _operation(
                "This document.",
                {"200": {"description": "OpenAPI 3.1.", "content": _json({"type": "object"})}},
            )
        },
        "/healthz": {
            "get": _operation(
                "200 while the process serves.",
                _ok("Status", "Serving."),
                tag="operations",
            )
        },
        "/readyz": {
            "get": _operation(
                "200 when the auth service answers Ping, else 503.",
                {
                    **_ok("Status", "Ready."),
                    "503": {
                        "description": _ERROR_DESCRIPTIONS["503"],
                        "content": _json(_ref("Error")),
                    },
                },
                tag="operations",
            )
        },
        "/metrics": {
            "get": _operation(
                "Prometheus metrics.",
                {
                    "200": {
                        "description": "Prometheus text exposition format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
                tag="operations",
            )
        },
    }


def build_openapi(server_version: str) -> Doc:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Mezite proxy web API",
            "version": server_version,
            "description": (
                "Authenticate with 'Authorization: Bearer <session id>' or the "
                f"{SESSION_COOKIE} cookie that POST /v1/webapi/login sets. A POST, PUT, "
                "PATCH or DELETE authenticated by the cookie must send "
                f"'{CSRF_HEADER}: 1' and, if it sends Origin, the proxy's own origin. "
                'Every error is {"error": {"type": ..., "message": ...}}.'
            ),
        },
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer"},
                "cookieAuth": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE},
            },
        },
    }
