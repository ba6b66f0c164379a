"""The proxy's web UI over real TLS in front of a real auth server: the pages and their
headers (the page CSP only where a page was found, the API's everywhere else), browser
logins that keep the session out of the body, invites, the admin endpoints (each
refused to non-admins and to cross-site cookies, changing nothing) and the audit search
the audit page uses."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest

from proto.resources import role_from_yaml
from proto.v1 import auth_pb2 as pb
from server.proxy.middleware import PAGE_CSP
from tests.integration.conftest import PASSWORD, add_user
from tests.integration.proxy_fixtures import CSRF, PUBLIC_ORIGIN, RunningProxy, proxy_for
from tests.integration.test_proxy_web import SECURITY_HEADERS, assert_error
from tests.servers import RunningAuth, running_auth

BROWSER = {**CSRF, "Origin": PUBLIC_ORIGIN}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningAuth, RunningProxy]]:
    root = tmp_path_factory.mktemp("proxy-web-ui")
    with running_auth(root / "data") as auth, proxy_for(auth, root / "tls") as proxy:
        add_user(auth, "ui-admin", roles=("admin",))
        add_user(auth, "ui-user")
        yield auth, proxy


@pytest.fixture
def auth(stack: tuple[RunningAuth, RunningProxy]) -> RunningAuth:
    return stack[0]


@pytest.fixture
def proxy(stack: tuple[RunningAuth, RunningProxy]) -> RunningProxy:
    return stack[1]


def bearer(proxy: RunningProxy, user: str, password: str = PASSWORD) -> dict[str, str]:
    with proxy.client() as client:
        reply = client.post("/v1/webapi/login", json={"username": user, "password": password})
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['session_id']}"}


def cookie(headers: dict[str, str]) -> dict[str, str]:
    """The same session as a browser sends it, CSRF header and Origin included."""
    return {"Cookie": f"mezite_session={headers['Authorization'][7:]}", **BROWSER}


def users(auth: RunningAuth) -> list[str]:
    with auth.admin() as admin:
        return sorted(u.name for u in admin.rpc.ListUsers(pb.ListUsersRequest()).users)


def tokens(auth: RunningAuth) -> list[str]:
    with auth.admin() as admin:
        return sorted(t.name for t in admin.rpc.ListTokens(pb.ListTokensRequest()).tokens)


def roles(auth: RunningAuth) -> list[Any]:
    with auth.admin() as admin:
        return sorted(
            (r.SerializeToString(deterministic=True) for r in admin.rpc.ListRoles(
                pb.ListRolesRequest()).roles),
        )  # fmt: skip


# --- pages ------------------------------------------------------------------------------


class _Shell(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inline_scripts = 0
        self.handlers: list[str] = []
        self.assets: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.handlers += [name for name, _ in attrs if name.startswith("on")]
        if tag == "script" and not found.get("src"):
            self.inline_scripts += 1
        for name in ("src", "href"):
            value = found.get(name)
            if value and tag in ("script", "link", "img"):
                self.assets.append(value)


def test_root_and_web_redirect_to_the_app(proxy: RunningProxy) -> None:
    with proxy.client() as client:
        for path in ("/", "/web", "/web/?next=https://evil.example"):
            reply = client.get(path)
            assert reply.status_code == 302, path
            assert reply.headers["location"] == "/web/", path


def test_the_shell_has_the_page_csp_no_inline_script_and_its_assets_exist(
    proxy: RunningProxy,
) -> None:
    with proxy.client() as client:
        page = client.get("/web/")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert page.headers["content-security-policy"] == PAGE_CSP
        assert "script-src 'self'" in PAGE_CSP and "unsafe-eval" not in PAGE_CSP
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["cache-control"] == "no-cache"
        shell = _Shell()
        shell.feed(page.text)
        assert shell.inline_scripts == 0 and shell.handlers == []
        assert shell.assets, "the shell loads its scripts and styles from files"
        for asset in shell.assets:
            assert not re.match(r"^(https?:)?//", asset), f"{asset}: no other origins"
            served = client.get(httpx.URL("/web/").join(asset))
            assert served.status_code == 200, asset
            assert served.headers["content-security-policy"] == PAGE_CSP
        # A static file revalidates: same ETag, 304.
        script = client.get("/web/static/app.js")
        assert script.headers["content-type"].startswith("text/javascript")
        again = client.get("/web/static/app.js", headers={"If-None-Match": script.headers["etag"]})
        assert again.status_code == 304


def test_the_app_never_builds_html_from_strings(proxy: RunningProxy) -> None:
    """Attacker-influenced text (labels, audit fields, names) must reach the DOM as text:
    no innerHTML/outerHTML/insertAdjacentHTML/document.write anywhere in the app."""
    with proxy.client() as client:
        for name in ("app", "api", "dom", "nodes", "terminal", "audit", "admin", "recordings"):
            source = client.get(f"/web/static/{name}.js")
            assert source.status_code == 200, name
            code = re.sub(r"/\*.*?\*/|//[^\n]*", "", source.text, flags=re.S)
            assert not re.search(
                r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function",
                code,
            ), name


@pytest.mark.parametrize(
    "path",
    [
        "/web/static/../index.html",
        "/web/static/%2e%2e/index.html",
        "/web/static/%2e%2e/%2e%2e/pages.py",
        "/web/static/nope.js",
        "/web/index.html",
        "/web/static/",
    ],
)
def test_what_is_not_a_file_of_the_app_is_a_json_404_with_the_api_headers(
    proxy: RunningProxy, path: str
) -> None:
    with proxy.client() as client:
        reply = client.get(path)
    assert reply.status_code == 404, (path, reply.status_code)
    assert reply.headers["content-type"] == "application/json"
    for name, value in SECURITY_HEADERS.items():
        assert reply.headers[name] == value, (path, name)


def test_api_answers_keep_the_strict_api_csp(proxy: RunningProxy) -> None:
    with proxy.client() as client:
        reply = client.get("/v1/webapi/ping")
    assert reply.headers["content-security-policy"] == SECURITY_HEADERS["content-security-policy"]
    assert reply.headers["cache-control"] == "no-store"


# --- browser logins and invites -----------------------------------------------------------


def test_a_browser_login_keeps_the_session_in_the_cookie_only(
    auth: RunningAuth, proxy: RunningProxy
) -> None:
    with proxy.client() as client:
        browser = client.post("/v1/webapi/login", headers={"Origin": PUBLIC_ORIGIN},
                              json={"username": "ui-user", "password": PASSWORD})  # fmt: skip
        script = client.post("/v1/webapi/login", json={"username": "ui-user", "password": PASSWORD})
    assert browser.status_code == 200 and script.status_code == 200
    assert browser.json()["session_id"] == "" and browser.json()["expires"] > 0
    (set_cookie,) = browser.headers.get_list("set-cookie")
    session = set_cookie.split(";")[0].removeprefix("mezite_session=")
    assert len(session) >= 22 and session not in browser.text
    with proxy.client() as client:
        me = client.get("/v1/webapi/me", headers={"Cookie": f"mezite_session={session}"})
    assert me.json()["username"] == "ui-user"
    assert script.json()["session_id"], "a script without Origin still gets its bearer"


def test_an_invite_from_the_admin_api_is_accepted_once_and_only_same_origin(
    auth: RunningAuth, proxy: RunningProxy
) -> None:
    admin = bearer(proxy, "ui-admin")
    with proxy.client() as client:
        body = {"name": "invited-1", "roles": ["access"], "logins": ["inv"]}
        made = client.post("/v1/webapi/users", headers=admin, json=body)
        assert made.status_code == 200, made.text
        invite = made.json()
        token = invite["invite_token"]
        assert invite["invite_url"] == f"{PUBLIC_ORIGIN}/web/#/invite/{token}"
        new_password = "the invited user's own password"
        foreign = client.post("/v1/webapi/invite", headers={"Origin": "https://evil.example"},
                              json={"token": token, "password": new_password})  # fmt: skip
        assert_error(foreign, 403, "AccessDenied")
        accepted = client.post("/v1/webapi/invite", headers={"Origin": PUBLIC_ORIGIN},
                               json={"token": token, "password": new_password})  # fmt: skip
        assert accepted.status_code == 200, accepted.text
        assert accepted.json() == {"username": "invited-1"}
        again = client.post(
            "/v1/webapi/invite", json={"token": token, "password": "another password again"}
        )
        assert again.status_code in (401, 404), again.text
    assert bearer(proxy, "invited-1", new_password)


# --- admin endpoints -------------------------------------------------------------------------

ADMIN_CALLS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/v1/webapi/users", None),
    ("POST", "/v1/webapi/users", {"name": "made-by-nonadmin", "roles": ["admin"]}),
    ("POST", "/v1/webapi/users/ui-admin/reset", None),
    ("DELETE", "/v1/webapi/users/ui-admin", None),
    ("GET", "/v1/webapi/tokens", None),
    ("POST", "/v1/webapi/tokens", {"type": "node"}),
    ("GET", "/v1/webapi/roles", None),
    ("PUT", "/v1/webapi/roles/access",
     {"yaml": "kind: role\nversion: v1\nmetadata: {name: access}\nspec: {}\n"}),
]  # fmt: skip


def _call(client: httpx.Client, method: str, path: str, headers: dict[str, str],
          body: dict[str, Any] | None) -> httpx.Response:  # fmt: skip
    return client.request(method, path, headers=headers, json=body)


def test_admin_calls_are_refused_to_non_admins_and_change_nothing(
    auth: RunningAuth, proxy: RunningProxy
) -> None:
    user = bearer(proxy, "ui-user")
    before = (users(auth), tokens(auth), roles(auth))
    with proxy.client() as client:
        for method, path, body in ADMIN_CALLS:
            for headers in (user, cookie(user)):
                reply = _call(client, method, path, headers, body)
                assert_error(reply, 403, "AccessDenied")
    assert (users(auth), tokens(auth), roles(auth)) == before
    assert bearer(proxy, "ui-admin")  # not reset, not removed


def test_admin_changes_by_cookie_need_the_csrf_header_and_our_origin(
    auth: RunningAuth, proxy: RunningProxy
) -> None:
    admin = cookie(bearer(proxy, "ui-admin"))
    before = (users(auth), tokens(auth), roles(auth))
    no_csrf = {k: v for k, v in admin.items() if k != "X-Mezite-CSRF"}
    foreign = {**admin, "Origin": "https://evil.example"}
    with proxy.client() as client:
        for method, path, body in ADMIN_CALLS:
            if method == "GET":
                continue
            for headers in (no_csrf, foreign):
                assert_error(_call(client, method, path, headers, body), 403, "AccessDenied")
    assert (users(auth), tokens(auth), roles(auth)) == before


def test_users_add_reset_remove(auth: RunningAuth, proxy: RunningProxy) -> None:
    admin = cookie(bearer(proxy, "ui-admin"))
    with proxy.client() as client:
        body = {"name": "cycle-1", "roles": ["access"], "logins": ["cyc"]}
        made = client.post("/v1/webapi/users", headers=admin, json=body)
        assert made.status_code == 200, made.text
        assert_error(client.post("/v1/webapi/users", headers=admin, json=body), 409,
                     "AlreadyExists")  # fmt: skip
        listed = client.get("/v1/webapi/users", headers=admin).json()["users"]
        (row,) = [u for u in listed if u["name"] == "cycle-1"]
        assert (row["roles"], row["logins"], row["has_password"]) == (["access"], ["cyc"], False)
        reset = client.post("/v1/webapi/users/cycle-1/reset", headers=admin)
        assert reset.status_code == 200
        assert reset.json()["invite_token"] != made.json()["invite_token"]
        assert client.delete("/v1/webapi/users/cycle-1", headers=admin).status_code == 204
        assert_error(client.delete("/v1/webapi/users/cycle-1", headers=admin), 404, "NotFound")
        for bad in ({"name": "../x", "roles": ["access"]}, {"name": "ok", "roles": "access"},
                    {"name": "ok", "roles": ["access"], "extra": 1},
                    {"name": "ok2", "roles": ["no-such-role"]}):  # fmt: skip
            assert client.post("/v1/webapi/users", headers=admin, json=bad).status_code in (
                400, 404,
            ), bad  # fmt: skip
        assert_error(client.delete("/v1/webapi/users/a%20b", headers=admin), 400, "BadParameter")
    assert "cycle-1" not in users(auth) and "ok" not in users(auth) and "ok2" not in users(auth)


def test_tokens_add_shows_the_join_line_and_remove(auth: RunningAuth, proxy: RunningProxy) -> None:
    admin = cookie(bearer(proxy, "ui-admin"))
    with proxy.client() as client:
        body = {"type": "node", "ttl_seconds": 600, "labels": ["env=dev"]}
        made = client.post("/v1/webapi/tokens", headers=admin, json=body)
        assert made.status_code == 200, made.text
        token = made.json()
        pin = proxy.settings.ca_pins[0]
        assert token["join_command"] == (
            f"mezd join --token {token['token']} --auth-server {auth.addr} --ca-pin {pin}"
        )
        (listed,) = [t for t in client.get("/v1/webapi/tokens", headers=admin).json()["tokens"]
                     if t["name"] == token["name"]]  # fmt: skip
        assert listed["labels"] == {"env": "dev"}
        before = tokens(auth)
        for bad in ({"type": "agent"}, {"type": "node", "labels": ["env"]},
                    {"type": "node", "labels": ["a=1", "a=2"]},
                    {"type": "node", "ttl_seconds": -1}):  # fmt: skip
            assert_error(client.post("/v1/webapi/tokens", headers=admin, json=bad), 400,
                         "BadParameter")  # fmt: skip
        assert tokens(auth) == before
        gone = client.delete(f"/v1/webapi/tokens/{token['name']}", headers=admin)
        assert gone.status_code == 204
    assert token["name"] not in tokens(auth)


ROLE = """kind: role
version: v1
metadata: {name: web-edited}
spec:
  allow:
    logins: [deploy]
    node_labels: {env: [dev]}
"""


def test_roles_round_trip_as_yaml_and_bad_yaml_names_the_field(
    auth: RunningAuth, proxy: RunningProxy
) -> None:
    admin = cookie(bearer(proxy, "ui-admin"))
    with proxy.client() as client:
        put = client.put("/v1/webapi/roles/web-edited", headers=admin, json={"yaml": ROLE})
        assert put.json() == {"created": True}, put.text
        again = client.put("/v1/webapi/roles/web-edited", headers=admin, json={"yaml": ROLE})
        assert again.json() == {"created": False}
        listed = client.get("/v1/webapi/roles", headers=admin).json()["roles"]
        (edited,) = [r for r in listed if r["name"] == "web-edited"]
        assert list(role_from_yaml(edited["yaml"]).allow.logins) == ["deploy"]
        before = roles(auth)
        cases = {
            "metadata.name": ROLE.replace("web-edited", "other-name"),
            "spec.allow.logins": ROLE.replace("[deploy]", "{deploy: 1}"),
            "invalid YAML": "kind: [",
            "exactly one": ROLE + "---\n" + ROLE,
            "spec.allow.bogus": ROLE + "    bogus: 1\n",
        }
        for named, text in cases.items():
            message = assert_error(
                client.put("/v1/webapi/roles/web-edited", headers=admin, json={"yaml": text}),
                400, "BadParameter",
            )  # fmt: skip
            assert named in message, (named, message)
    assert roles(auth) == before


def test_audit_search_newest_first_and_by_node(auth: RunningAuth, proxy: RunningProxy) -> None:
    admin = bearer(proxy, "ui-admin")
    with proxy.client() as client:
        newest = client.get("/v1/webapi/audit/events", headers=admin,
                            params={"order": "desc", "limit": 50}).json()["events"]  # fmt: skip
        oldest = client.get("/v1/webapi/audit/events", headers=admin,
                            params={"limit": 50}).json()["events"]  # fmt: skip
        times = [e["time"] for e in newest]
        assert times == sorted(times, reverse=True) and len(times) > 2
        assert [e["time"] for e in oldest] == sorted(e["time"] for e in oldest)
        none = client.get("/v1/webapi/audit/events", headers=admin, params={"node": "no-node"})
        assert none.json()["events"] == []
        for bad in ({"order": "up"}, {"node": "a b"}, {"node": "x" * 200}):
            assert_error(client.get("/v1/webapi/audit/events", headers=admin, params=bad), 400,
                         "BadParameter")  # fmt: skip
