"""Property-based run over every operation of the served OpenAPI document.

Schemathesis generates requests from the document the live proxy serves (valid ones,
and invalid ones that break the schema), sends them over TLS to a proxy in front of a
real auth server, with a randomly chosen way of authenticating, and checks that:
nothing is a 5xx, every status, content type and body conforms to the document, invalid
input is refused with a 4xx, and every error is the one JSON shape with the security
headers. Bounded by example counts so the whole run stays well under a minute.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from proto.client import ClientIdentity
from proto.v1 import auth_pb2 as pb
from server.proxy.openapi import build_openapi
from tests.integration.conftest import PASSWORD, add_user
from tests.integration.proxy_fixtures import CSRF, PUBLIC_ORIGIN, RunningProxy, proxy_for
from tests.integration.test_proxy_web import ssh_public_key
from tests.servers import RunningAuth, running_auth

MAX_EXAMPLES = {GenerationMode.POSITIVE: 50, GenerationMode.NEGATIVE: 25}
CONFORMANCE: list[Callable[..., Any]] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
_PATHS: dict[str, dict[str, Any]] = build_openapi("0")["paths"]
OPERATIONS = [(path, method.upper()) for path, item in _PATHS.items() for method in item]
# Negative cases need something to break: operations with parameters or a body.
RUNS = [
    (path, method, mode)
    for path, method in OPERATIONS
    for mode in MAX_EXAMPLES
    if mode is GenerationMode.POSITIVE
    or {"parameters", "requestBody"} & set(_PATHS[path][method.lower()])
]
# "generated": whatever credentials schemathesis made up from the security schemes
# (mostly garbage, which exercises the parsers); the others replace them with real ones.
# Hypothesis favours the first choice, so the made-up credentials come last.
AUTH_MODES = ("bearer-user", "cookie-csrf", "bearer-admin", "cookie-bare", "generated")
SECURITY_HEADERS = ("x-content-type-options", "content-security-policy", "cache-control")


class Stack:
    def __init__(self, auth: RunningAuth, proxy: RunningProxy) -> None:
        self.auth = auth
        self.proxy = proxy
        self.http = requests.Session()
        self.http.verify = str(proxy.tls.ca_file)
        with proxy.client() as client:
            self.document = client.get("/v1/webapi/openapi.json").json()
        self.schema = schemathesis.openapi.from_dict(self.document)
        # A body over the proxy's cap is refused with 413 before it is parsed: as much a
        # rejection of invalid data as a 400 (the default list leaves 413 out).
        rejection = self.schema.config.checks.negative_data_rejection
        rejection.expected_statuses = [*rejection.expected_statuses, "413"]
        self.sessions = {"user": self.login("prop-user"), "admin": self.login("prop-admin")}

    def login(self, name: str) -> str:
        with self.auth.client() as anon:
            reply = anon.rpc.AuthenticateLocal(
                pb.AuthenticateLocalRequest(username=name, password=PASSWORD)
            )
        return str(reply.session_id)

    def headers(self, mode: str, session: str | None = None) -> dict[str, str]:
        """Credentials for one request; ``session`` replaces the shared one (logouts)."""
        user = session or self.sessions["user"]
        if mode == "bearer-user":
            return {"Authorization": f"Bearer {user}"}
        if mode == "bearer-admin":
            return {"Authorization": f"Bearer {session or self.sessions['admin']}"}
        if mode == "cookie-csrf":
            return {"Cookie": f"mezite_session={user}", **CSRF, "Origin": PUBLIC_ORIGIN}
        if mode == "cookie-bare":
            return {"Cookie": f"mezite_session={user}"}
        return {}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root: Path = tmp_path_factory.mktemp("proxy-props")
    with running_auth(root / "data") as auth, proxy_for(auth, root / "tls") as proxy:
        add_user(auth, "prop-user")
        add_user(auth, "prop-admin", roles=("admin",))
        stack = Stack(auth, proxy)
        try:
            yield stack
        finally:
            stack.http.close()


def assert_our_shape(response: Any) -> None:
    assert response.status_code < 500, response.content[:500]
    headers = {k.lower(): v for k, v in response.headers.items()}
    for name in SECURITY_HEADERS:
        assert headers.get(name), f"{name} missing"
    if response.status_code >= 400:
        body = httpx.Response(200, content=response.content).json()
        assert set(body) == {"error"} and set(body["error"]) == {"type", "message"}, body
        assert isinstance(body["error"]["message"], str)


def test_the_served_document_is_the_built_one(stack: Stack) -> None:
    assert stack.document == build_openapi(stack.proxy.settings.server_version)
    assert {(p, m) for p, m in OPERATIONS} >= {
        ("/v1/webapi/login", "POST"),
        ("/v1/webapi/certs", "POST"),
        ("/v1/webapi/session", "DELETE"),
    }


@pytest.mark.parametrize(
    ("path", "method", "mode"), RUNS, ids=[f"{m} {p} {mode.value}" for p, m, mode in RUNS]
)
def test_every_operation_holds_its_contract(
    stack: Stack, path: str, method: str, mode: GenerationMode
) -> None:
    operation = stack.schema[path][method]
    checks = list(CONFORMANCE)
    if mode is GenerationMode.NEGATIVE:
        checks.append(negative_data_rejection)
    logs_out = (path, method) == ("/v1/webapi/session", "DELETE")

    @settings(
        max_examples=MAX_EXAMPLES[mode],
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode), auth_mode=st.sampled_from(AUTH_MODES))
    def run(case: Any, auth_mode: str) -> None:
        # A logout would end the shared sessions: each one logs out a session of its own.
        session = stack.login("prop-user") if logs_out else None
        headers = stack.headers(auth_mode, session)
        if auth_mode != "generated":
            # Else a made-up Authorization header would win over the cookie we send.
            case.headers = {
                k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"
            }
            case.cookies = {}
        response = case.call(
            base_url=stack.proxy.base_url,
            session=stack.http,
            headers=headers,
            verify=str(stack.proxy.tls.ca_file),
        )
        case.validate_response(response, checks=checks, headers=headers)
        assert_our_shape(response)

    run()


def test_the_shared_sessions_survived(stack: Stack) -> None:
    """The run above must not have ended the sessions it relied on (else it tested 401s)."""
    for session in stack.sessions.values():
        with stack.auth.client(ClientIdentity(session_id=session)) as client:
            assert client.rpc.GetCurrentUser(pb.GetCurrentUserRequest()).username


PROP_ROLE = """kind: role
version: v1
metadata: {name: prop-role}
spec: {allow: {logins: [nobody]}}
"""


def test_successful_answers_conform_too(stack: Stack) -> None:
    """Random input rarely gets past validation, so each success path is also taken
    once on purpose and checked against the document."""
    user, admin = stack.headers("bearer-user"), stack.headers("bearer-admin")
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("/v1/webapi/login", "POST", {"body": {"username": "prop-user", "password": PASSWORD}}),
        ("/v1/webapi/me", "GET", {"headers": user}),
        ("/v1/webapi/nodes", "GET", {"headers": user, "query": {"label": ["a=b"], "limit": 3}}),
        (
            "/v1/webapi/audit/events",
            "GET",
            {"headers": admin, "query": {"type": ["user.login"], "since": 0, "limit": 5}},
        ),
        (
            "/v1/webapi/certs",
            "POST",
            {"headers": stack.headers("cookie-csrf"), "body": {"public_key": ssh_public_key()}},
        ),
        (
            "/v1/webapi/session",
            "DELETE",
            {"headers": stack.headers("bearer-user", stack.login("prop-user"))},
        ),
        ("/v1/webapi/users", "GET", {"headers": admin}),
        ("/v1/webapi/users", "POST", {"headers": admin,
                                      "body": {"name": "prop-new", "roles": ["access"]}}),
        ("/v1/webapi/users/{name}/reset", "POST", {"headers": admin, "path": {"name": "prop-new"}}),
        ("/v1/webapi/users/{name}", "DELETE", {"headers": admin, "path": {"name": "prop-new"}}),
        ("/v1/webapi/tokens", "POST", {"headers": admin, "body": {"type": "node"}}),
        ("/v1/webapi/tokens", "GET", {"headers": admin}),
        ("/v1/webapi/roles", "GET", {"headers": admin}),
        ("/v1/webapi/roles/{name}", "PUT", {"headers": admin, "path": {"name": "prop-role"},
                                            "body": {"yaml": PROP_ROLE}}),
        ("/v1/webapi/audit/events", "GET", {"headers": admin, "query": {"order": "desc"}}),
    ]  # fmt: skip
    for path, method, parts in cases:
        operation = stack.schema[path][method]
        case = operation.Case(
            headers=parts.get("headers"),
            query=parts.get("query"),
            path_parameters=parts.get("path"),
            **(
                {"body": parts["body"], "media_type": "application/json"} if "body" in parts else {}
            ),
        )
        response = case.call(
            base_url=stack.proxy.base_url, session=stack.http, verify=str(stack.proxy.tls.ca_file)
        )
        assert response.status_code in (200, 204), (path, response.content[:300])
        case.validate_response(response, checks=CONFORMANCE)
        assert_our_shape(response)
        if path == "/v1/webapi/audit/events":
            assert response.json()["events"], "the audit page should hold the logins so far"
