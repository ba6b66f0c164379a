"""The proxy's web API over real TLS, in front of a real auth server."""

from __future__ import annotations

import json
import logging
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import SSHCertificate, load_ssh_public_identity

from proto.addr import HostPort
from proto.client import ClientIdentity
from proto.errors import BadParameter, NotAuthenticated
from proto.v1 import auth_pb2 as pb
from server.proxy import GrpcAuthGateway, ProxySettings
from tests.integration.conftest import PASSWORD, add_user, audit_events
from tests.integration.proxy_fixtures import (
    CSRF,
    PUBLIC_ORIGIN,
    RunningProxy,
    closed_port,
    issue_proxy_tls,
    metric_value,
    proxy_for,
    proxy_settings,
    running_proxy,
)
from tests.integration.test_nodes import Beating, join_node
from tests.servers import RunningAuth, running_auth

SECURITY_HEADERS = {
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "strict-transport-security": "max-age=31536000",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "referrer-policy": "no-referrer",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningAuth, RunningProxy]]:
    root = tmp_path_factory.mktemp("proxy-web")
    with running_auth(root / "data") as auth, proxy_for(auth, root / "tls") as proxy:
        yield auth, proxy


@pytest.fixture
def auth(stack: tuple[RunningAuth, RunningProxy]) -> RunningAuth:
    return stack[0]


@pytest.fixture
def proxy(stack: tuple[RunningAuth, RunningProxy]) -> RunningProxy:
    return stack[1]


def web_login(proxy: RunningProxy, name: str, password: str = PASSWORD) -> str:
    # A client of its own: the session must not linger in a shared cookie jar.
    with proxy.client() as client:
        reply = client.post("/v1/webapi/login", json={"username": name, "password": password})
    assert reply.status_code == 200, reply.text
    return str(reply.json()["session_id"])


def bearer(session_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {session_id}"}


def cookie(session_id: str) -> dict[str, str]:
    return {"Cookie": f"mezite_session={session_id}"}


def assert_error(reply: httpx.Response, status: int, type_name: str) -> str:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == "application/json"
    body = reply.json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "message"}
    assert body["error"]["type"] == type_name, body
    return str(body["error"]["message"])


def ssh_public_key() -> str:
    key = ed25519.Ed25519PrivateKey.generate()
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )


def wait_for_events(auth: RunningAuth, type_: str, user: str, count: int) -> list[pb.AuditEvent]:
    """Audit writes are batched: poll until ``count`` events of ``user`` are stored."""
    deadline = time.monotonic() + 10
    while True:
        events = [e for e in audit_events(auth, type_) if e.user == user]
        if len(events) >= count or time.monotonic() > deadline:
            return events
        time.sleep(0.05)


# --- ping, login ---------------------------------------------------------------------


def test_ping_gives_a_remote_client_addresses_it_can_reach(
    auth: RunningAuth, proxy: RunningProxy
) -> None:
    # auth listens on 127.0.0.1 here: a client that reached the proxy by another name is
    # told that name, never this machine's loopback address; a local client keeps it.
    port = HostPort.parse(auth.addr).port
    with proxy.client() as client:
        far = client.get("/v1/webapi/ping", headers={"host": "proxy.example.test:3080"})
        assert far.json()["auth_addr"] == f"proxy.example.test:{port}"
        v6 = client.get("/v1/webapi/ping", headers={"host": "[fd00::5]:3080"})
        assert v6.json()["auth_addr"] == f"[fd00::5]:{port}"
        near = client.get("/v1/webapi/ping")
        assert near.json()["auth_addr"] == auth.addr
        odd = client.get("/v1/webapi/ping", headers={"host": "a b:3080"})
        assert odd.status_code in (200, 400)
        if odd.status_code == 200:
            assert odd.json()["auth_addr"] == auth.addr


def test_ping_describes_the_cluster_with_security_headers(
    auth: RunningAuth, proxy: RunningProxy
) -> None:
    with proxy.client() as client:
        reply = client.get("/v1/webapi/ping")
        assert reply.status_code == 200
        assert reply.json() == {
            "cluster_name": "test-cluster",
            "auth_addr": auth.addr,
            "proxy_ssh_addr": "",
            "ca_pins": list(proxy.settings.ca_pins),
            "ca_pem": proxy.settings.ca_pem,
            "server_version": "0.1.0",
        }
        assert reply.json()["ca_pins"][0].startswith("sha256:")
        for name, value in SECURITY_HEADERS.items():
            assert reply.headers[name] == value
        assert len(reply.headers["x-request-id"]) == 16
        assert "server" not in reply.headers
        assert_error(client.get("/v1/webapi/ping?verbose=1"), 400, "BadParameter")
        # Security headers are on errors too.
        missing = client.get("/v1/webapi/nope")
        assert_error(missing, 404, "NotFound")
        assert all(missing.headers[name] == value for name, value in SECURITY_HEADERS.items())
        assert_error(client.get("/v1/webapi/ping/"), 404, "NotFound")  # exact paths
        wrong_method = client.put("/v1/webapi/ping")
        assert_error(wrong_method, 405, "BadParameter")
        assert "GET" in wrong_method.headers["allow"]


def test_login_sets_a_session_cookie_with_exactly_these_flags(
    auth: RunningAuth, proxy: RunningProxy
) -> None:
    add_user(auth, "cookie-flags")
    with proxy.client() as client:
        reply = client.post(
            "/v1/webapi/login", json={"username": "cookie-flags", "password": PASSWORD}
        )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert set(body) == {"session_id", "expires"}
    assert body["expires"] > time.time() + 11 * 3600
    (set_cookie,) = reply.headers.get_list("set-cookie")
    prefix = (
        f"mezite_session={body['session_id']}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age="
    )
    assert set_cookie.startswith(prefix), set_cookie
    max_age = int(set_cookie.removeprefix(prefix))
    assert 12 * 3600 - 60 <= max_age <= 12 * 3600
    assert reply.headers["cache-control"] == "no-store"
    # The session works over gRPC too: it is auth's own session.
    with auth.client(ClientIdentity(session_id=body["session_id"])) as client_:
        assert client_.rpc.GetCurrentUser(pb.GetCurrentUserRequest()).username == "cookie-flags"


def test_wrong_password_and_unknown_user_get_the_same_401(
    auth: RunningAuth, proxy: RunningProxy
) -> None:
    add_user(auth, "same-401")
    with proxy.client() as client:
        wrong = client.post(
            "/v1/webapi/login", json={"username": "same-401", "password": "not it at all"}
        )
        unknown = client.post(
            "/v1/webapi/login", json={"username": "nobody-here", "password": "not it at all"}
        )
    assert_error(wrong, 401, "NotAuthenticated")
    assert_error(unknown, 401, "NotAuthenticated")
    assert wrong.content == unknown.content
    assert wrong.json()["error"]["message"] == "invalid username or password"
    assert "set-cookie" not in wrong.headers and "set-cookie" not in unknown.headers


def test_login_from_a_foreign_origin_is_refused_before_auth(
    auth: RunningAuth, proxy: RunningProxy
) -> None:
    add_user(auth, "origin-login")
    with proxy.client() as client:
        for origin in ("https://evil.example", "null", PUBLIC_ORIGIN + "/"):
            reply = client.post(
                "/v1/webapi/login",
                json={"username": "origin-login", "password": PASSWORD},
                headers={"Origin": origin},
            )
            assert_error(reply, 403, "AccessDenied")
            assert "set-cookie" not in reply.headers
        ours = client.post(
            "/v1/webapi/login",
            json={"username": "origin-login", "password": PASSWORD},
            headers={"Origin": PUBLIC_ORIGIN},
        )
    assert ours.status_code == 200
    # Only the last login reached auth (events are stored in order, so the refused
    # attempts would be there by now).
    assert len(wait_for_events(auth, "user.login", "origin-login", 1)) == 1
    assert wait_for_events(auth, "user.login.failed", "origin-login", 0) == []


# --- authentication --------------------------------------------------------------------


def test_bearer_and_cookie_both_authenticate_reads(
    auth: RunningAuth, proxy: RunningProxy, tmp_path: Path
) -> None:
    add_user(auth, "reader", logins=("ubuntu",))
    session = web_login(proxy, "reader")
    ident = join_node(auth, tmp_path / "node", "web-proxy-1", env="prod")
    beating = Beating(auth)
    try:
        beating.start(ident)
        with proxy.client() as client:
            for headers in (bearer(session), cookie(session)):
                me = client.get("/v1/webapi/me", headers=headers)
                assert me.status_code == 200, me.text
                assert me.json()["username"] == "reader"
                assert me.json()["roles"] == ["access"] and me.json()["logins"] == ["ubuntu"]
                nodes = client.get("/v1/webapi/nodes", headers=headers)
                assert nodes.status_code == 200, nodes.text
                (node,) = nodes.json()["nodes"]
                assert (node["name"], node["id"], node["labels"]) == (
                    "web-proxy-1",
                    ident.agent_id,
                    {"env": "prod"},
                )
                assert (node["addr"], node["seen_from"]) == ("127.0.0.1:3022", "127.0.0.1")
                assert nodes.json()["next_page_token"] == ""
            prod = client.get("/v1/webapi/nodes?label=env=prod&limit=5", headers=bearer(session))
            assert [n["name"] for n in prod.json()["nodes"]] == ["web-proxy-1"]
            dev = client.get(
                "/v1/webapi/nodes", params={"label": "env=dev"}, headers=bearer(session)
            )
            assert dev.json()["nodes"] == []
            bad = client.get("/v1/webapi/nodes?label=env", headers=bearer(session))
            assert_error(bad, 400, "BadParameter")
            twice = client.get("/v1/webapi/nodes?limit=1&limit=2", headers=bearer(session))
            assert_error(twice, 400, "BadParameter")
            lookups = [
                ("web-proxy-1", ["web-proxy-1"]),
                (ident.agent_id, ["web-proxy-1"]),
                ("web-proxy", []),
                ("WEB-PROXY-1", []),
                ("a&name=web-proxy-1", []),
            ]
            for name, found in lookups:
                named = client.get(
                    "/v1/webapi/nodes", params={"name": name}, headers=bearer(session)
                )
                assert [n["name"] for n in named.json()["nodes"]] == found, name
            for bad_name in ("x" * 129, "", "a b"):
                bad = client.get(
                    "/v1/webapi/nodes", params={"name": bad_name}, headers=bearer(session)
                )
                assert_error(bad, 400, "BadParameter")
            names = client.get("/v1/webapi/nodes?name=a&name=b", headers=bearer(session))
            assert_error(names, 400, "BadParameter")
    finally:
        beating.close()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "bearer " + "a" * 43},
        {"Authorization": "Bearer  " + "a" * 43},
        {"Authorization": "Basic " + "a" * 43},
        {"Authorization": "Bearer " + "a" * 21},
        {"Authorization": "Bearer " + "a" * 129},
        {"Authorization": "Bearer " + "a" * 40 + "+/="},
        {"Authorization": "Bearer " + "a" * 300},
        {"Cookie": "mezite_session=" + "a" * 21},
        {"Cookie": "mezite_session=" + "a" * 40 + "%2F"},
        {"Cookie": "other=" + "a" * 43},
    ],
    ids=lambda h: repr(h)[:40],
)
def test_malformed_or_missing_credentials_are_401(
    proxy: RunningProxy, headers: dict[str, str]
) -> None:
    with proxy.client() as client:
        reply = client.get("/v1/webapi/me", headers=headers)
    assert_error(reply, 401, "NotAuthenticated")
    assert reply.headers["www-authenticate"].startswith("Bearer")


def test_a_bad_bearer_never_falls_back_to_a_good_cookie(
    auth: RunningAuth, proxy: RunningProxy
) -> None:
    add_user(auth, "no-fallback")
    session = web_login(proxy, "no-fallback")
    with proxy.client() as client:
        both = {"Authorization": "Bearer short", **cookie(session)}
        assert_error(client.get("/v1/webapi/me", headers=both), 401, "NotAuthenticated")
        two_cookies = {"Cookie": f"mezite_session={session}; mezite_session={'b' * 43}"}
        assert_error(client.get("/v1/webapi/me", headers=two_cookies), 401, "NotAuthenticated")
        unknown = client.get("/v1/webapi/me", headers=bearer("c" * 43))
        assert_error(unknown, 401, "NotAuthenticated")
        assert client.get("/v1/webapi/me", headers=cookie(session)).status_code == 200


# --- CSRF --------------------------------------------------------------------------------


CROSS_SITE = {
    "none": {},
    "origin-only": {"Origin": PUBLIC_ORIGIN},  # right origin, but no custom header
    "evil-origin": {**CSRF, "Origin": "https://evil.example"},
    "null-origin": {**CSRF, "Origin": "null"},
    "http-origin": {**CSRF, "Origin": PUBLIC_ORIGIN.replace("https", "http")},
    "wrong-value": {"X-Mezite-CSRF": "true", "Origin": PUBLIC_ORIGIN},
}


@pytest.mark.parametrize("case", list(CROSS_SITE))
def test_cross_site_cookie_changes_are_refused_and_change_nothing(
    auth: RunningAuth, proxy: RunningProxy, case: str
) -> None:
    extra = CROSS_SITE[case]
    user = f"csrf-{case}"
    add_user(auth, user)
    session = web_login(proxy, user)
    with proxy.client() as client:
        refused = client.post(
            "/v1/webapi/certs",
            json={"public_key": ssh_public_key()},
            headers={**cookie(session), **extra},
        )
        assert_error(refused, 403, "AccessDenied")
        logout = client.delete("/v1/webapi/session", headers={**cookie(session), **extra})
        assert_error(logout, 403, "AccessDenied")
        assert "set-cookie" not in logout.headers
        # The session survived and a proper request still works; only it was audited.
        assert client.get("/v1/webapi/me", headers=bearer(session)).status_code == 200
        done = client.post(
            "/v1/webapi/certs", json={"public_key": ssh_public_key()}, headers=bearer(session)
        )
        assert done.status_code == 200, done.text
    # Audit events are written in order: once the later one is stored, an event from the
    # refused request would be too.
    assert len(wait_for_events(auth, "cert.create", user, 1)) == 1
    assert wait_for_events(auth, "cert.create.failed", user, 0) == []


@pytest.mark.parametrize("origin", [PUBLIC_ORIGIN, None], ids=["same-origin", "no-origin"])
def test_cookie_changes_with_the_csrf_header_work(
    auth: RunningAuth, proxy: RunningProxy, origin: str | None
) -> None:
    user = "csrf-ok-" + ("origin" if origin else "bare")
    add_user(auth, user)
    session = web_login(proxy, user)
    headers = {**cookie(session), **CSRF, **({"Origin": origin} if origin else {})}
    with proxy.client() as client:
        reply = client.post(
            "/v1/webapi/certs",
            json={"public_key": ssh_public_key(), "ttl_seconds": 3600},
            headers=headers,
        )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert set(body) == {"ssh_certificate", "host_ca_keys", "tls_ca_pem", "valid_before"}
    cert = load_ssh_public_identity(body["ssh_certificate"].encode())
    assert isinstance(cert, SSHCertificate)
    assert cert.valid_principals == [user.encode()]
    assert 3500 <= cert.valid_before - time.time() <= 3600
    assert body["host_ca_keys"][0].startswith("ssh-ed25519 ")
    assert body["tls_ca_pem"].startswith("-----BEGIN CERTIFICATE-----")
    assert len(wait_for_events(auth, "cert.create", user, 1)) == 1


def test_bearer_changes_need_no_csrf_header(auth: RunningAuth, proxy: RunningProxy) -> None:
    add_user(auth, "bearer-post")
    session = web_login(proxy, "bearer-post")
    with proxy.client() as client:
        reply = client.post(
            "/v1/webapi/certs", json={"public_key": ssh_public_key()}, headers=bearer(session)
        )
    assert reply.status_code == 200, reply.text
    cert = load_ssh_public_identity(reply.json()["ssh_certificate"].encode())
    assert isinstance(cert, SSHCertificate)
    # No TTL asked: the role's maximum (12h).
    assert 12 * 3600 - 120 <= cert.valid_before - time.time() <= 12 * 3600


# --- logout --------------------------------------------------------------------------------


@pytest.mark.parametrize("via", ["bearer", "cookie"])
def test_logout_ends_the_session_for_rest_and_grpc(
    auth: RunningAuth, proxy: RunningProxy, via: str
) -> None:
    user = f"logout-{via}"
    add_user(auth, user)
    session = web_login(proxy, user)
    headers = bearer(session) if via == "bearer" else {**cookie(session), **CSRF}
    with proxy.client() as client:
        reply = client.delete("/v1/webapi/session", headers=headers)
        assert reply.status_code == 204, reply.text
        assert reply.content == b""
        assert reply.headers.get_list("set-cookie") == [
            "mezite_session=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0"
        ]
        for creds in (bearer(session), cookie(session)):
            assert_error(client.get("/v1/webapi/me", headers=creds), 401, "NotAuthenticated")
        # Logging out twice: the session is gone, the cookie is cleared again.
        again = client.delete("/v1/webapi/session", headers=headers)
        assert_error(again, 401, "NotAuthenticated")
        assert again.headers["set-cookie"].endswith("Max-Age=0")
    with (
        auth.client(ClientIdentity(session_id=session)) as grpc_client,
        pytest.raises(NotAuthenticated),
    ):
        grpc_client.rpc.GetCurrentUser(pb.GetCurrentUserRequest())
    assert len(wait_for_events(auth, "session.logout", user, 1)) == 1


# --- bodies ----------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413(auth: RunningAuth, proxy: RunningProxy) -> None:
    limit = proxy.settings.max_body_bytes
    add_user(auth, "big-body")
    session = web_login(proxy, "big-body")
    big = json.dumps({"username": "x", "password": "y" * limit}).encode()
    with proxy.client() as client:
        declared = client.post(
            "/v1/webapi/login", content=big, headers={"Content-Type": "application/json"}
        )
        assert_error(declared, 413, "LimitExceeded")

        def chunks() -> Iterator[bytes]:  # no Content-Length: Transfer-Encoding: chunked
            body = b'{"public_key": "' + b"k" * limit + b'"}'
            for i in range(0, len(body), 4096):
                yield body[i : i + 4096]

        chunked = client.post(
            "/v1/webapi/certs",
            content=chunks(),
            headers={"Content-Type": "application/json", **bearer(session)},
        )
        assert_error(chunked, 413, "LimitExceeded")
        assert "content-length" not in chunked.request.headers
    assert wait_for_events(auth, "cert.create.failed", "big-body", 0) == []


def test_a_declared_oversize_body_is_refused_before_it_is_sent(proxy: RunningProxy) -> None:
    """Content-Length alone decides: the server answers without waiting for the body."""
    ctx = proxy.ssl_context()
    with (
        socket.create_connection(("127.0.0.1", proxy.handle.port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(
            b"POST /v1/webapi/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n"
        )
        received = b""
        while chunk := tls.recv(65536):  # the server closes: the body was never read
            received += chunk
    head, _, body = received.decode("latin-1").partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 413 "), head
    assert json.loads(body)["error"]["type"] == "LimitExceeded"


BAD_BODIES: list[tuple[str, bytes]] = [
    ("not-json", b"{"),
    ("empty", b""),
    ("array", b"[]"),
    ("string", b'"x"'),
    ("unknown-field", b'{"username": "a", "password": "b", "admin": true}'),
    ("wrong-type", b'{"username": 1, "password": "b"}'),
    ("null", b'{"username": null, "password": "b"}'),
    ("missing", b'{"username": "a"}'),
    ("duplicate-key", b'{"username": "a", "username": "b", "password": "c"}'),
    ("too-long", json.dumps({"username": "a" * 65, "password": "b"}).encode()),
    ("empty-name", b'{"username": "", "password": "b"}'),
    ("nan", b'{"username": "a", "password": NaN}'),
    ("surrogate", b'{"username": "\\ud800", "password": "b"}'),
    ("not-utf8", b'{"username": "\xff", "password": "b"}'),
    ("utf16", '{"username": "a", "password": "b"}'.encode("utf-16")),
    ("deep", b"[" * 30000 + b"]" * 30000),
    ("huge-int", b'{"username": "a", "password": "b", "x": ' + b"9" * 5000 + b"}"),
]


@pytest.mark.parametrize("body", [b for _, b in BAD_BODIES], ids=[n for n, _ in BAD_BODIES])
def test_malformed_login_bodies_are_400(proxy: RunningProxy, body: bytes) -> None:
    with proxy.client() as client:
        reply = client.post(
            "/v1/webapi/login", content=body, headers={"Content-Type": "application/json"}
        )
    message = assert_error(reply, 400, "BadParameter")
    assert "Traceback" not in message


@pytest.mark.parametrize(
    "body",
    [
        {"public_key": "ssh-ed25519 AAAA", "ttl_seconds": "60"},
        {"public_key": "ssh-ed25519 AAAA", "ttl_seconds": 1.5},
        {"public_key": "ssh-ed25519 AAAA", "ttl_seconds": True},
        {"public_key": "ssh-ed25519 AAAA", "ttl_seconds": -1},
        {"public_key": "ssh-ed25519 AAAA", "ttl_seconds": 30 * 3600 + 1},
        {"public_key": "ssh-ed25519 AAAA\n"},
        {"public_key": ["ssh-ed25519 AAAA"]},
        {"ttl_seconds": 60},
    ],
)
def test_malformed_cert_requests_are_400(
    auth: RunningAuth, proxy: RunningProxy, body: dict[str, Any]
) -> None:
    with auth.admin() as admin:
        users = admin.rpc.ListUsers(pb.ListUsersRequest()).users
    if "bad-certs" not in {u.name for u in users}:
        add_user(auth, "bad-certs")
    session = web_login(proxy, "bad-certs")
    with proxy.client() as client:
        reply = client.post("/v1/webapi/certs", json=body, headers=bearer(session))
    assert_error(reply, 400, "BadParameter")


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"],
)
def test_bodies_must_be_declared_json(proxy: RunningProxy, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    with proxy.client() as client:
        reply = client.post(
            "/v1/webapi/login", content=b'{"username": "a", "password": "b"}', headers=headers
        )
    assert_error(reply, 415, "BadParameter")


# --- audit -------------------------------------------------------------------------------------


def test_the_audit_endpoint_needs_the_auditor_or_admin_role(
    auth: RunningAuth, proxy: RunningProxy
) -> None:
    add_user(auth, "plain-user")
    add_user(auth, "an-auditor", roles=("auditor",), logins=())
    add_user(auth, "an-admin", roles=("admin",))
    with proxy.client() as client:
        refused = client.get(
            "/v1/webapi/audit/events", headers=bearer(web_login(proxy, "plain-user"))
        )
        assert_error(refused, 403, "AccessDenied")
        for name in ("an-auditor", "an-admin"):
            session = web_login(proxy, name)
            wait_for_events(auth, "user.login", name, 1)
            reply = client.get(
                "/v1/webapi/audit/events",
                params={"type": "user.login", "user": name, "since": 0, "limit": 10},
                headers=bearer(session),
            )
            assert reply.status_code == 200, reply.text
            (event,) = reply.json()["events"]
            assert (event["type"], event["user"], event["success"]) == ("user.login", name, True)
            assert event["code"] == "T1000I" and isinstance(event["fields"], dict)
            assert event["fields"]["method"] == "local"
        later = client.get(
            "/v1/webapi/audit/events",
            params={"since": time.time() + 3600, "until": time.time() + 7200},
            headers=bearer(session),
        )
        assert later.json() == {"events": [], "next_page_token": ""}
        bad_type = client.get("/v1/webapi/audit/events?type=no.such.type", headers=bearer(session))
        assert_error(bad_type, 400, "BadParameter")  # refused by auth, mapped here
        backwards = client.get(
            "/v1/webapi/audit/events?since=100&until=50", headers=bearer(session)
        )
        assert_error(backwards, 400, "BadParameter")


# --- health, readiness, metrics, failures ------------------------------------------------------


def test_healthz_and_readyz(proxy: RunningProxy) -> None:
    with proxy.client() as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json() == {"status": "ready"}
        assert ready.headers["cache-control"] == "no-store"


def test_with_auth_unreachable_readyz_is_503_and_calls_are_503(
    auth: RunningAuth, tmp_path: Path
) -> None:
    dead = f"127.0.0.1:{closed_port()}"
    tls = issue_proxy_tls(auth, tmp_path / "tls")
    settings = proxy_settings(auth)
    with (
        running_proxy(lambda: GrpcAuthGateway(dead, auth.ca_pem), settings, tls) as proxy,
        proxy.client() as client,
    ):
        assert client.get("/healthz").status_code == 200
        message = assert_error(client.get("/readyz"), 503, "ConnectionProblem")
        assert "127.0.0.1" not in message
        login = client.post("/v1/webapi/login", json={"username": "a", "password": "b"})
        message = assert_error(login, 503, "ConnectionProblem")
        assert dead not in message and "127.0.0.1" not in message
        text = proxy.metrics_text()
        assert metric_value(text, "mezite_proxy_logins_total", result="error") == 1


class ExplodingGateway:
    def stub(self) -> Any:
        raise RuntimeError("secret internals")

    def metadata(self, session_id: str | None, client_ip: str) -> tuple[tuple[str, str], ...]:
        return ()


def test_unexpected_errors_are_json_500_with_a_request_id(
    auth: RunningAuth, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tls = issue_proxy_tls(auth, tmp_path / "tls")
    with (
        caplog.at_level(logging.ERROR, logger="server.proxy"),
        running_proxy(ExplodingGateway, proxy_settings(auth), tls) as proxy,
        proxy.client() as client,
    ):
        reply = client.post("/v1/webapi/login", json={"username": "a", "password": "b"})
        request_id = reply.headers["x-request-id"]
        message = assert_error(reply, 500, "Internal")
        assert message == f"internal error (request id {request_id})"
        assert "secret" not in reply.text
        assert (
            reply.headers["content-security-policy"] == SECURITY_HEADERS["content-security-policy"]
        )
        assert client.get("/healthz").status_code == 200  # still serving
    assert any(request_id in r.getMessage() and r.exc_info for r in caplog.records)


def test_metrics_move_after_a_login(auth: RunningAuth, proxy: RunningProxy) -> None:
    add_user(auth, "metered")
    with proxy.client() as client:
        assert client.get("/metrics").status_code == 404  # only on the diagnostics address
        old = proxy.metrics_text()
        session = web_login(proxy, "metered")
        web_login_fails = client.post(
            "/v1/webapi/login", json={"username": "metered", "password": "wrong wrong"}
        )
        assert web_login_fails.status_code == 401
        client.post(
            "/v1/webapi/certs", json={"public_key": ssh_public_key()}, headers=bearer(session)
        ).raise_for_status()
        after = proxy.metrics_text()

    def delta(name: str, **labels: str) -> float:
        return metric_value(after, name, **labels) - metric_value(old, name, **labels)

    assert delta("mezite_proxy_logins_total", result="success") == 1
    assert delta("mezite_proxy_logins_total", result="denied") == 1
    assert delta("mezite_proxy_certificates_issued_total") == 1
    assert delta("mezite_proxy_sessions_created_minus_logged_out") == 1
    assert (
        delta(
            "mezite_proxy_http_requests_total",
            route="/v1/webapi/login",
            method="POST",
            status="401",
        )
        == 1
    )
    assert (
        delta("mezite_proxy_upstream_rpc_seconds_count", rpc="AuthenticateLocal", outcome="ok") == 1
    )
    assert (
        delta(
            "mezite_proxy_upstream_rpc_seconds_count",
            rpc="AuthenticateLocal",
            outcome="NotAuthenticated",
        )
        == 1
    )


# --- pieces -------------------------------------------------------------------------------------


def test_the_gateway_forwards_only_well_formed_client_addresses(auth: RunningAuth) -> None:
    gateway = GrpcAuthGateway(auth.addr, auth.ca_pem)
    sid = "s" * 43
    assert gateway.metadata(sid, "10.1.2.3") == (
        ("authorization", f"Bearer {sid}"),
        ("x-forwarded-for", "10.1.2.3"),
    )
    assert gateway.metadata(None, "::FFFF:10.0.0.1") == (("x-forwarded-for", "10.0.0.1"),)
    assert gateway.metadata(None, "2001:DB8::1") == (("x-forwarded-for", "2001:db8::1"),)
    assert gateway.metadata(None, "10.0.0.1\r\nx-agent-id: admin") == ()
    assert gateway.metadata(None, "") == ()


@pytest.mark.parametrize(
    "origin",
    [
        "http://proxy.example",
        "https://proxy.example/",
        "https://Proxy.example",
        "proxy.example",
        "https://proxy.example:99999",
        "https://user@proxy.example",
    ],
)
def test_settings_refuse_an_origin_browsers_would_never_send(origin: str) -> None:
    with pytest.raises(BadParameter):
        ProxySettings(
            cluster_name="c",
            auth_addr="a:1",
            proxy_ssh_addr="",
            ca_pins=[],
            server_version="v",
            public_origin=origin,
        )


def test_tls_1_2_clients_get_forward_secret_aead_suites(proxy: RunningProxy) -> None:
    ctx = proxy.ssl_context()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with (
        socket.create_connection(("127.0.0.1", proxy.handle.port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.version() == "TLSv1.2"
        cipher = tls.cipher()
    assert cipher is not None and cipher[0].startswith("ECDHE-"), cipher
    assert "GCM" in cipher[0] or "CHACHA20" in cipher[0], cipher
    weak = proxy.ssl_context()
    weak.maximum_version = ssl.TLSVersion.TLSv1_2
    weak.set_ciphers("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA")  # CBC: refused
    with (
        pytest.raises(ssl.SSLError),
        socket.create_connection(("127.0.0.1", proxy.handle.port), timeout=10) as raw,
        weak.wrap_socket(raw, server_hostname="127.0.0.1"),
    ):
        pass
