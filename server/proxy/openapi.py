"""The OpenAPI 3.1 document of the web API, served at ``/v1/webapi/openapi.json``.

The paths are written by hand. Request bodies and query parameters come from the same
declarations the routes enforce (``specs.py``); response schemas are derived from the
protobuf messages the routes render (``proto.webjson``), with the proto's comments as
their descriptions, so neither can drift from the server. A property-based test drives
every operation from this document against a live server, checking responses against it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from proto.errors import ALL_ERRORS
from proto.v1 import auth_pb2 as pb
from proto.v1.auth_docs import DOCS
from proto.webjson import JSON_OBJECT_FIELDS
from server.proxy.credentials import CSRF_HEADER, SESSION_COOKIE
from server.proxy.specs import (
    AUDIT_QUERY,
    CERTS_BODY,
    INVITE_BODY,
    LOGIN_BODY,
    NAME_PATTERN,
    NODES_QUERY,
    RECORDINGS_QUERY,
    ROLE_BODY,
    SESSION_ID_PATTERN,
    SPIFFE_BODY,
    TOKEN_BODY,
    USER_BODY,
)
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
    "404": "No such thing that the caller may see.",
    "409": "It exists already.",
    "415": "The body is not sent as application/json.",
    "429": "Too many attempts (rate limit or account lockout).",
    "503": "The auth service cannot be reached.",
    "default": "Any other error of the vocabulary, e.g. 500 Internal with a request id.",
}


def _string(description: str) -> Doc:
    return {"type": "string", "description": description}


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


_SCALARS: dict[int, Doc] = {
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_DOUBLE: {"type": "number"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number"},
    FieldDescriptor.TYPE_INT32: {"type": "integer"},
    FieldDescriptor.TYPE_SINT32: {"type": "integer"},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "minimum": 0},
    # protobuf's JSON mapping writes 64-bit integers as decimal strings
    FieldDescriptor.TYPE_INT64: {"type": "string", "pattern": "^-?[0-9]+$"},
    FieldDescriptor.TYPE_UINT64: {"type": "string", "pattern": "^[0-9]+$"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
}


def _field_schema(fld: FieldDescriptor, schemas: dict[str, Doc]) -> Doc:
    if fld.message_type is not None and fld.message_type.GetOptions().map_entry:
        value = _field_schema(fld.message_type.fields_by_name["value"], schemas)
        return {"type": "object", "additionalProperties": value}
    if fld.message_type is not None:
        item = _ref(_message_schema(fld.message_type, schemas))
    elif fld.enum_type is not None:
        item = {"type": "string", "enum": [v.name for v in fld.enum_type.values]}
    else:
        item = dict(_SCALARS[fld.type])
    if fld.is_repeated:
        return {"type": "array", "items": item}
    return item


def _message_schema(message: Any, schemas: dict[str, Doc]) -> str:
    # Any: protobuf types descriptors as a union of its pure-Python and upb classes.
    """Register ``message``'s JSON schema (and those it refers to); return its name."""
    name = str(message.name)
    if name in schemas:
        return name
    schemas[name] = {}  # placeholder: a message may refer to itself
    properties: dict[str, Doc] = {}
    required: list[str] = []
    for fld in message.fields:
        doc = DOCS.get(f"{message.full_name}.{fld.name}", "")
        renamed = JSON_OBJECT_FIELDS.get((message.full_name, fld.name))
        if renamed is not None:
            properties[renamed] = {"type": "object", "description": doc}
            required.append(renamed)
            continue
        schema = _field_schema(fld, schemas)
        if doc and "$ref" not in schema:  # a $ref takes no siblings in the schema
            schema = {**schema, "description": doc}
        properties[fld.name] = schema
        if fld.message_type is None or fld.is_repeated:
            required.append(fld.name)  # present even when empty; a sub-message may be absent
    schemas[name] = {
        "type": "object",
        "description": DOCS.get(message.full_name, ""),
        "properties": properties,
        "required": required,
        # This server's replies exactly (clients ignore fields added by newer servers).
        "additionalProperties": False,
    }
    return name


# The messages the routes render; the paths refer to them by message name.
REPLIES: tuple[type[Message], ...] = (
    pb.ProxyPingResponse,
    pb.AuthenticateLocalResponse,
    pb.GetCurrentUserResponse,
    pb.ListNodesResponse,
    pb.SearchAuditEventsResponse,
    pb.IssueUserCertsResponse,
    pb.GetSPIFFEBundleResponse,
    pb.AuthenticateSPIFFEResponse,
    pb.ListSessionRecordingsResponse,
    pb.AcceptInviteResponse,
    pb.ListUsersResponse,
    pb.ListTokensResponse,
)


def _schemas() -> dict[str, Doc]:
    schemas: dict[str, Doc] = {
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
        "LoginRequest": LOGIN_BODY.schema(),
        "CertsRequest": CERTS_BODY.schema(),
        "SPIFFECertsRequest": SPIFFE_BODY.schema(),
        "InviteRequest": INVITE_BODY.schema(),
        "UserRequest": USER_BODY.schema(),
        "TokenRequest": TOKEN_BODY.schema(),
        "RoleRequest": ROLE_BODY.schema(),
        "Invite": _object(
            {
                "invite_token": _string("The one-time invite token."),
                "invite_expires": {"type": "number", "description": "Expiry, epoch seconds."},
                "invite_url": _string("The web UI's page that accepts it."),
            }
        ),
        "CreatedToken": _object(
            {
                "token": _string("The token secret; shown once."),
                "name": _string("Its public name."),
                "expires": {"type": "number", "description": "Expiry, epoch seconds."},
                "join_command": _string("The command line that joins with it."),
            }
        ),
        "Roles": _object(
            {
                "roles": {
                    "type": "array",
                    "items": _object(
                        {"name": _string("Role name."), "yaml": _string("The role as YAML.")}
                    ),
                }
            }
        ),
        "RoleSaved": _object({"created": {"type": "boolean", "description": "Was it new."}}),
    }
    for reply in REPLIES:
        _message_schema(reply.DESCRIPTOR, schemas)
    return schemas


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


_NAME_PARAM: Doc = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "The name.",
    "schema": {"type": "string", "pattern": NAME_PATTERN},
}


def _done(description: str) -> dict[str, Doc]:
    return {"204": {"description": description}}


def _admin(
    summary: str, ok: dict[str, Doc], *, params: Sequence[Doc] = (), body: str | None = None
) -> Doc:
    """An admin operation: a session whose roles include admin (auth checks; else 403)."""
    changes = body is not None or "204" in ok or bool(params)
    codes = ("400", "401", "403", "404", "409", "413", "415", "503") if changes else (
        "400", "401", "403", "503")  # fmt: skip
    return _operation(
        f"{summary} Needs the admin role.",
        {**ok, **_errors(*codes)},
        secured=True,
        params=[*params, *([_CSRF_PARAM] if changes else [])],
        body=body,
    )


def _paths() -> dict[str, Doc]:
    set_cookie = {
        "Set-Cookie": {
            "description": f"{SESSION_COOKIE}=<id>; HttpOnly; Secure; SameSite=Strict; "
            "Path=/; Max-Age=<seconds, at most the session's remaining life>",
            "schema": {"type": "string"},
        }
    }
    login_ok = _ok("AuthenticateLocalResponse", "Logged in; the session is also set as a cookie.")
    login_ok["200"]["headers"] = set_cookie
    return {
        "/v1/webapi/ping": {
            "get": _operation(
                "Cluster name, addresses, CA pins and version; needs no session.",
                {**_ok("ProxyPingResponse", "The cluster."), **_errors("400")},
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
        "/v1/webapi/invite": {
            "post": _operation(
                "Set a password with the invite token mezctl or an admin page gave; needs no "
                "session. An Origin header, when sent, must be the proxy's own.",
                {
                    **_ok("AcceptInviteResponse", "The password is set."),
                    **_errors("400", "401", "403", "413", "415", "429", "503"),
                },
                body="InviteRequest",
            )
        },
        "/v1/webapi/users": {
            "get": _admin("List users.", _ok("ListUsersResponse", "The users.")),
            "post": _admin(
                "Add a user; the answer holds the invite and its web link.",
                _ok("Invite", "The invite."),
                body="UserRequest",
            ),
        },
        "/v1/webapi/users/{name}": {
            "delete": _admin(
                "Remove a user (their sessions end).", _done("Removed."), params=[_NAME_PARAM]
            ),
        },
        "/v1/webapi/users/{name}/reset": {
            "post": _admin(
                "Clear a user's password, end their sessions, give a new invite.",
                _ok("Invite", "The new invite."),
                params=[_NAME_PARAM],
            ),
        },
        "/v1/webapi/tokens": {
            "get": _admin("List join tokens.", _ok("ListTokensResponse", "The tokens.")),
            "post": _admin(
                "Add a one-time join token; the answer holds the command line that uses it.",
                _ok("CreatedToken", "The token."),
                body="TokenRequest",
            ),
        },
        "/v1/webapi/tokens/{name}": {
            "delete": _admin("Remove a join token.", _done("Removed."), params=[_NAME_PARAM]),
        },
        "/v1/webapi/roles": {
            "get": _admin("Roles, each as YAML.", _ok("Roles", "The roles.")),
        },
        "/v1/webapi/roles/{name}": {
            "put": _admin(
                "Create or replace a role from one YAML document naming the same role.",
                _ok("RoleSaved", "Saved."),
                params=[_NAME_PARAM],
                body="RoleRequest",
            ),
        },
        "/v1/webapi/me": {
            "get": _operation(
                "The caller: user, roles and allowed logins.",
                {**_ok("GetCurrentUserResponse", "The caller."), **_errors("400", "401", "503")},
                secured=True,
            )
        },
        "/v1/webapi/nodes": {
            "get": _operation(
                "Nodes the caller's roles allow, filtered by labels, one page at a time.",
                {**_ok("ListNodesResponse", "One page of nodes."), **_errors("400", "401", "503")},
                secured=True,
                params=_query(NODES_QUERY),
            )
        },
        "/v1/webapi/audit/events": {
            "get": _operation(
                "Search the audit log, oldest first (order=desc: newest first); needs the "
                "auditor or admin role.",
                {
                    **_ok("SearchAuditEventsResponse", "One page of events."),
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
                    **_ok("IssueUserCertsResponse", "The certificate and the CAs to trust."),
                    **_errors("400", "401", "403", "413", "415", "503"),
                },
                secured=True,
                params=[_CSRF_PARAM],
                body="CertsRequest",
            )
        },
        "/v1/webapi/spiffe/bundle": {
            "get": _operation(
                "The cluster's SPIFFE trust bundle (PEM and JWKS); needs no session.",
                {**_ok("GetSPIFFEBundleResponse", "The bundle."), **_errors("400", "503")},
            )
        },
        "/v1/webapi/spiffe/certs": {
            "post": _operation(
                "Exchange an X.509 SVID and a proof of its key for an SSH certificate for "
                "the role its SPIFFE ID names; needs no session.",
                {
                    **_ok("AuthenticateSPIFFEResponse", "The certificate."),
                    **_errors("400", "401", "413", "415", "429", "503"),
                },
                body="SPIFFECertsRequest",
            )
        },
        "/v1/webapi/recordings": {
            "get": _operation(
                "Session recordings, newest first: admins and auditors see all, users their own.",
                {
                    **_ok("ListSessionRecordingsResponse", "The recordings."),
                    **_errors("400", "401", "503"),
                },
                secured=True,
                params=_query(RECORDINGS_QUERY),
            )
        },
        "/v1/webapi/sessions/{session_id}/recording": {
            "get": _operation(
                "A session's recording, streamed as asciicast v2 (plays in asciinema).",
                {
                    "200": {
                        "description": "The cast.",
                        "content": {"application/x-asciicast": {"schema": {"type": "string"}}},
                    },
                    **_errors("400", "401", "404", "503"),
                },
                secured=True,
                params=[
                    {
                        "name": "session_id",
                        "in": "path",
                        "required": True,
                        "description": "The session id (a UUID).",
                        "schema": {"type": "string", "pattern": SESSION_ID_PATTERN},
                    }
                ],
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
