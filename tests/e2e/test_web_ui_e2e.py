"""The web UI in a real browser (Debian's Chromium driven by Playwright's sync API) against
real processes: `mezctl start` with auth and proxy, one joined `mezd` with labels, users
made by `mezctl users add --password-stdin` and a role by `mezctl create -f`.

The browser trusts exactly the proxy's served certificate: Chromium starts with
``--ignore-certificate-errors-spki-list`` naming the SHA-256 of that certificate's
SubjectPublicKeyInfo (computed here from the certificate the proxy serves, which chains to
the cluster CA that /v1/webapi/ping hands out), so any other certificate is still refused.

Every page is checked for console noise: the README allows "Failed to load resource" for
4xx answers and nothing else (a CSP refusal or a page error fails the test)."""

from __future__ import annotations

import base64
import getpass
import hashlib
import json
import os
import re
import shutil
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Locator,
    Page,
    Response,
    expect,
    sync_playwright,
)

from tests.e2e.procs import AuthProcess, cli, free_port, join_node, mezctl_start, mezd_start

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
# Read at import: tests/conftest.py drops every MEZITE_* variable before each test runs.
ARTIFACTS = Path(os.environ.get("MEZITE_TEST_ARTIFACTS", REPO / "test-artifacts")) / "web-ui"

PASSWORD = "a long enough password"
LOGIN = getpass.getuser()
NODE = "web-1"
DEV_ONLY = """kind: role
version: v1
metadata: {name: dev-only}
spec:
  allow:
    logins: ["{{internal.logins}}"]
    node_labels: {env: [dev]}
"""
CHROMIUM_ARGS = [
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TERMINAL_BG = (0x0F, 0x14, 0x19)  # terminal.js's xterm theme background
CURSOR = (0xF0, 0xB4, 0x29)  # ... and its cursor, left out of pixel counts (it blinks)
XSS_NAME = "<img src=x onerror=alert(1)>"

# Waits, not timings: how long Playwright may wait for something to appear.
WAIT_MS = 20_000
expect.set_options(timeout=WAIT_MS)


# ---- the cluster ----------------------------------------------------------------------


@dataclass
class Cluster:
    auth: AuthProcess
    origin: str  # the proxy's public origin, exactly as the browser must use it
    spki: str  # base64 SHA-256 of the served certificate's SubjectPublicKeyInfo
    tls: ssl.SSLContext  # trusts the cluster CA, for requests made outside the browser

    def mezctl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        done = cli("mezctl", *args, "--data-dir", str(self.auth.data_dir), stdin=stdin)
        assert done.returncode == 0, done.stderr
        return done

    def add_user(self, name: str, roles: str) -> None:
        self.mezctl("users", "add", name, "--roles", roles, "--logins", LOGIN,
                    "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip

    def users(self) -> list[dict[str, Any]]:
        return list(json.loads(self.mezctl("users", "ls", "--format", "json").stdout))

    def tokens(self) -> list[dict[str, Any]]:
        return list(json.loads(self.mezctl("tokens", "ls", "--format", "json").stdout))

    def audit(self, kind: str) -> list[dict[str, Any]]:
        done = self.mezctl("audit", "events", "--type", kind, "--format", "json")
        return list(json.loads(done.stdout))

    def audit_when(
        self, kind: str, ready: Callable[[list[dict[str, Any]]], bool], within: float = 20
    ) -> list[dict[str, Any]]:
        """The events of ``kind`` once ``ready`` holds (audit is written in batches)."""
        deadline = time.monotonic() + within
        while not ready(events := self.audit(kind)):
            assert time.monotonic() < deadline, (kind, events)
            time.sleep(0.3)
        return events

    def me_status(self, cookie: str) -> int:
        with httpx.Client(verify=self.tls) as http:
            reply = http.get(f"{self.origin}/v1/webapi/me",
                             headers={"Cookie": f"mezite_session={cookie}"})  # fmt: skip
        return reply.status_code


def _served_spki(host: str, port: int) -> str:
    pem = ssl.get_server_certificate((host, port))
    cert = x509.load_pem_x509_certificate(pem.encode())
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with ExitStack() as stack:
        auth = stack.enter_context(mezctl_start(tmp_path / "auth"))
        role = tmp_path / "dev-only.yaml"
        role.write_text(DEV_ONLY)
        made = cli("mezctl", "create", "-f", str(role), "--data-dir", str(auth.data_dir))
        assert made.returncode == 0, made.stderr
        port = free_port()
        join_node(auth, tmp_path / "node", NODE, port, labels="env=dev,team=web")
        stack.enter_context(mezd_start(tmp_path / "node", port))
        runtime = json.loads((auth.data_dir / "proxy.json").read_text())
        origin = str(runtime["public_origin"])
        where = urlsplit(origin)
        assert where.hostname and where.port, origin
        with httpx.Client(verify=False) as http:  # noqa: S501 - only to fetch the CA to pin
            ca_pem = http.get(f"{origin}/v1/webapi/ping").json()["ca_pem"]
        tls = ssl.create_default_context(cadata=ca_pem)
        # The served certificate must chain to that CA before the browser is told to trust it.
        with httpx.Client(verify=tls) as http:
            assert http.get(f"{origin}/v1/webapi/ping").status_code == 200
        cluster = Cluster(auth, origin, _served_spki(where.hostname, where.port), tls)
        cluster.add_user("admin1", "admin")
        cluster.add_user("bob", "dev-only")
        yield cluster


# ---- the browser ----------------------------------------------------------------------


@dataclass
class Browsing:
    """One Chromium trusting the cluster's certificate; pages with console watching."""

    browser: Browser
    origin: str
    problems: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def page(self, width: int = 1280, height: int = 800) -> Page:
        context = self.browser.new_context(viewport={"width": width, "height": height})
        return self.watch(context.new_page())

    def watch(self, page: Page) -> Page:
        def console(msg: ConsoleMessage) -> None:
            allowed = "Failed to load resource: the server responded with a status of 4"
            if msg.type == "error" and not msg.text.startswith(allowed):
                self.problems.append(f"console: {msg.text}")

        def dialog(d: Dialog) -> None:
            self.dialogs.append(d.message)
            d.dismiss()

        page.on("console", console)
        page.on("pageerror", lambda err: self.problems.append(f"page error: {err}"))
        page.on("dialog", dialog)
        return page

    def login(self, page: Page, user: str, password: str = PASSWORD) -> None:
        page.goto(f"{self.origin}/")
        submit_login(page, user, password)
        expect(page.locator("#page-nodes")).to_be_visible()


@pytest.fixture
def browsing(cluster: Cluster) -> Iterator[Browsing]:
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=shutil.which("chromium") or "/usr/bin/chromium",
            headless=True,
            args=[*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={cluster.spki}"],
        )
        try:
            run = Browsing(browser, cluster.origin)
            yield run
            assert run.problems == []
            assert run.dialogs == []
        finally:
            browser.close()


def submit_login(page: Page, user: str, password: str) -> None:
    expect(page.locator("#page-login")).to_be_visible()
    page.locator("#login-username").fill(user)
    page.locator("#login-password").fill(password)
    page.locator("#login-submit").click()


def shot(page: Page | Locator, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}.png")


def session_cookie(context: BrowserContext) -> str | None:
    found = [c.get("value") for c in context.cookies() if c.get("name") == "mezite_session"]
    return found[0] if found else None


# ---- the terminal ---------------------------------------------------------------------


def active_panel(page: Page) -> Locator:
    return page.locator(".terminal-panel:not([hidden])")


def screen_text(page: Page) -> str:
    return active_panel(page).locator(".xterm-rows").inner_text().replace("\xa0", " ")


def type_line(page: Page, line: str) -> None:
    active_panel(page).locator("textarea").focus()
    page.keyboard.type(line)
    page.keyboard.press("Enter")


def bright_pixels(counter: Page, png: bytes) -> int:
    """Pixels of a screenshot clearly unlike the terminal background (and unlike the
    blinking cursor), counted by a canvas on an about:blank page outside the UI."""
    data = "data:image/png;base64," + base64.b64encode(png).decode()
    count = counter.evaluate(
        """async ([src, bg, cursor]) => {
            const img = new Image();
            img.src = src;
            await img.decode();
            const canvas = document.createElement("canvas");
            canvas.width = img.width;
            canvas.height = img.height;
            const g = canvas.getContext("2d");
            g.drawImage(img, 0, 0);
            const px = g.getImageData(0, 0, img.width, img.height).data;
            const far = (i, c, d) =>
                Math.abs(px[i] - c[0]) + Math.abs(px[i + 1] - c[1])
                    + Math.abs(px[i + 2] - c[2]) > d;
            let n = 0;
            for (let i = 0; i < px.length; i += 4) if (far(i, bg, 120) && far(i, cursor, 90)) n++;
            return n;
        }""",
        [data, list(TERMINAL_BG), list(CURSOR)],
    )
    return int(count)


def rgb(css: str) -> tuple[int, ...]:
    found = re.fullmatch(r"rgba?\((\d+), (\d+), (\d+)(?:, ([\d.]+))?\)", css)
    assert found, css
    assert found.group(4) in (None, "1"), f"translucent colour {css}"
    return tuple(int(found.group(i)) for i in (1, 2, 3))


def text_and_background_colours(row: Locator) -> tuple[str, str, str]:
    """The computed colour of the row's text, the first opaque background behind it, and
    the text's visibility/opacity (one string)."""
    got = row.evaluate(
        """(row) => {
            let el = row;
            while (el.firstElementChild) el = el.firstElementChild;
            const style = getComputedStyle(el);
            let bg = el;
            const clear = ["transparent", "rgba(0, 0, 0, 0)"];
            while (bg && clear.includes(getComputedStyle(bg).backgroundColor))
                bg = bg.parentElement;
            return [style.color, bg ? getComputedStyle(bg).backgroundColor : "none",
                    `${style.visibility}/${style.opacity}`];
        }"""
    )
    return str(got[0]), str(got[1]), str(got[2])


SIZE = re.compile(r"SIZE=(\d+)x(\d+)")


def stty_size(page: Page, nth: int) -> tuple[int, int]:
    """Ask the shell for its terminal size; the answer is the ``nth`` (from 1) on screen."""
    type_line(page, "echo SIZE=$(stty size | tr ' ' x)")
    rows = active_panel(page).locator(".xterm-rows")
    expect(rows).to_contain_text(re.compile(r"[\s\S]*".join([SIZE.pattern] * nth)))
    found = SIZE.findall(screen_text(page))
    assert len(found) == nth, found
    return int(found[-1][0]), int(found[-1][1])


# ---- 1. the journey -------------------------------------------------------------------


def test_the_journey_of_an_admin(cluster: Cluster, browsing: Browsing) -> None:
    page = browsing.page()
    counter = browsing.watch(page.context.new_page())  # about:blank: counts pixels

    # Login: / redirects to /web/, and without a session the UI shows the form.
    page.goto(f"{cluster.origin}/")
    expect(page.locator("#page-login")).to_be_visible()
    assert urlsplit(page.url).path == "/web/"
    expect(page.locator("#app-header")).to_be_hidden()
    shot(page, "01-login")
    submit_login(page, "admin1", PASSWORD)

    # Nodes: the node with its labels, online.
    row = page.locator(f"tr.node-row[data-node='{NODE}']")
    expect(row).to_be_visible()
    expect(row).to_have_attribute("data-state", "online")
    expect(row.locator(".node-name")).to_have_text(NODE)
    expect(row.locator(".node-state")).to_have_text("online")
    expect(row.locator(".node-labels span.label[data-key='env']")).to_have_text("env=dev")
    expect(row.locator(".node-labels span.label[data-key='team']")).to_have_text("team=web")
    expect(page.locator("#header-user")).to_have_text("admin1")
    expect(page.locator("#header-cluster")).to_have_text("e2e")
    expect(page.locator("#nav-admin")).to_be_visible()
    expect(page.locator("#nav-audit")).to_be_visible()
    shot(page, "02-nodes")
    page.locator("#node-login").select_option(LOGIN)
    row.locator("button.connect-button").click()

    # Terminal: a tab for LOGIN@NODE, connected.
    tabs = page.locator("#terminal-tabs .terminal-tab")
    expect(tabs).to_have_count(1)
    first = tabs.nth(0)
    expect(first).to_have_attribute("data-state", "open")
    expect(first).to_have_attribute("data-login", LOGIN)
    expect(first.locator(".terminal-tab-title")).to_have_text(f"{LOGIN}@{NODE}")
    expect(first.locator(".terminal-status")).to_have_text("connected")
    host = active_panel(page).locator(".terminal-host")
    xrows = active_panel(page).locator(".xterm-rows")
    expect(xrows).to_contain_text(re.compile(r"\S"))  # the shell's prompt
    blank = bright_pixels(counter, host.screenshot())

    type_line(page, "id -un")
    answer = xrows.locator(":scope > div").filter(has_text=re.compile(rf"^\s*{LOGIN}\s*$"))
    expect(answer).to_have_count(1)
    # Visible, not only in the DOM: a CSP slip leaves the text in .xterm-rows unpainted.
    color, background, shown = text_and_background_colours(answer)
    assert shown == "visible/1", shown
    diff = sum(abs(a - b) for a, b in zip(rgb(color), rgb(background), strict=True))
    assert diff > 200, (color, background)
    assert rgb(background) == TERMINAL_BG, background
    typed = bright_pixels(counter, host.screenshot())
    print(
        f"\nterminal: {blank} lit pixels before typing, {typed} after; text {color} on {background}"
    )
    assert typed > blank + 100, (blank, typed)
    shot(page, "03-terminal")

    # Resize: the PTY follows the browser's terminal geometry.
    rows_on_screen = xrows.locator(":scope > div")
    rows0 = rows_on_screen.count()
    size0 = stty_size(page, 1)
    assert size0[0] == rows0, (size0, rows0)
    page.set_viewport_size({"width": 900, "height": 600})
    expect(rows_on_screen).not_to_have_count(rows0)
    rows1 = rows_on_screen.count()
    size1 = stty_size(page, 2)
    assert size1[0] == rows1 < rows0, (size0, size1, rows1)
    assert size1[1] < size0[1], (size0, size1)
    page.set_viewport_size({"width": 1280, "height": 800})

    # A second tab, whose shell exits 3.
    page.locator("#nav-nodes").click()
    page.locator(f"button.connect-button[data-node='{NODE}']").click()
    expect(tabs).to_have_count(2)
    second = tabs.nth(1)
    expect(second).to_have_class(re.compile(r"\bactive\b"))
    expect(second).to_have_attribute("data-state", "open")
    expect(page.locator("#nav-terminal-count")).to_have_text("2")
    expect(active_panel(page).locator(".xterm-rows")).to_contain_text(re.compile(r"\S"))
    type_line(page, "exit 3")
    expect(second).to_have_attribute("data-state", "closed")
    expect(second.locator(".terminal-status")).to_have_text("exit 3")
    expect(active_panel(page).locator(".terminal-banner")).to_have_text(
        "[session ended: exit status 3]"
    )
    expect(first).to_have_attribute("data-state", "open")  # the other tab lives on
    shot(page, "04-terminal-exit")

    # Audit: the session's start, by admin1 on the node.
    cluster.audit_when("session.start", lambda found: len(found) >= 2)
    page.locator("#nav-audit").click()
    expect(page.locator("#page-audit")).to_be_visible()
    page.locator("#audit-type").fill("session.start")
    page.locator("#audit-search").click()
    starts = page.locator("tr.audit-row[data-type='session.start']")
    expect(starts).to_have_count(2)
    expect(starts.first.locator(".audit-user")).to_have_text("admin1")
    starts.first.click()
    expect(starts.first).to_have_class(re.compile(r"\bselected\b"))
    detail = page.locator("#audit-detail")
    expect(detail).to_be_visible()
    shown_event = json.loads(detail.inner_text())
    assert shown_event["type"] == "session.start"
    assert shown_event["user"] == "admin1"
    assert NODE in json.dumps(shown_event["fields"]), shown_event
    assert shown_event["fields"]["login"] == LOGIN, shown_event
    page.locator("#audit-type").fill("")
    page.locator("#audit-search").click()
    expect(page.locator("tr.audit-row[data-type='user.login']").first).to_be_visible()
    shot(page, "05-audit")

    # Admin, users: add one; the invite URL works in a fresh browser context.
    page.locator("#nav-admin").click()
    expect(page.locator("#page-users")).to_be_visible()
    expect(page.locator("tr.user-row[data-user='bob'] .user-password")).to_have_text("set")
    page.locator("#user-add-name").fill("carol")
    page.locator("#user-add-roles").fill("dev-only")
    page.locator("#user-add-logins").fill(LOGIN)
    page.locator("#user-add-submit").click()
    invite = page.locator("#invite-url")
    expect(invite).to_have_value(re.compile(r"/web/#/invite/"))
    invite_url = invite.input_value()
    assert invite_url.startswith(f"{cluster.origin}/web/#/invite/"), invite_url
    carol_row = page.locator("tr.user-row[data-user='carol']")
    expect(carol_row.locator(".user-password")).to_have_text("invited")
    expect(carol_row.locator(".user-roles")).to_have_text("dev-only")
    shot(page, "06-admin-users")

    carol = browsing.page()
    carol.goto(invite_url)
    expect(carol.locator("#page-invite")).to_be_visible()
    carol.locator("#invite-password").fill("carol's own long password")
    carol.locator("#invite-confirm").fill("carol's own long password")
    carol.locator("#invite-submit").click()
    expect(carol.locator("#login-notice")).to_have_text("Password set for carol. Log in.")
    submit_login(carol, "carol", "carol's own long password")
    expect(carol.locator("#page-nodes")).to_be_visible()
    expect(carol.locator("#header-user")).to_have_text("carol")
    expect(carol.locator(f"tr.node-row[data-node='{NODE}']")).to_be_visible()
    expect(carol.locator("#nav-admin")).to_be_hidden()
    expect(carol.locator("#nav-audit")).to_be_hidden()
    carol.goto(f"{cluster.origin}/web/#/admin/users")
    expect(carol.locator("#page-forbidden")).to_be_visible()
    expect(carol.locator("#page-users")).to_have_count(0)
    carol.context.close()
    assert [u["name"] for u in cluster.users() if u["name"] == "carol"] == ["carol"]

    # Admin, tokens: add one (its join command shown), then remove it.
    before = {t["name"] for t in cluster.tokens()}
    page.locator("#nav-admin-tokens").click()
    expect(page.locator("#page-tokens")).to_be_visible()
    page.locator("#token-add-type").select_option("node")
    page.locator("#token-add-labels").fill("env=dev")
    page.locator("#token-add-submit").click()
    join = page.locator("#join-command")
    expect(join).to_have_value(re.compile(r"mezd join --token"))
    (added,) = {t["name"] for t in cluster.tokens()} - before
    token_row = page.locator(f"tr.token-row[data-token='{added}']")
    expect(token_row.locator(".token-type")).to_have_text("node")
    expect(token_row.locator(".token-labels")).to_contain_text("env=dev")
    shot(page, "07-admin-tokens")
    token_row.locator("button.token-remove").click()
    expect(page.locator("#confirm-dialog")).to_be_visible()
    expect(page.locator("#confirm-message")).to_contain_text(added)
    page.locator("#confirm-ok").click()
    expect(token_row).to_have_count(0)
    assert {t["name"] for t in cluster.tokens()} == before

    # Admin, roles: the presets and ours, the open one in the editor.
    page.locator("#nav-admin-roles").click()
    expect(page.locator("#page-roles")).to_be_visible()
    expect(page.locator("button.role-item[data-role='dev-only']")).to_be_visible()
    page.locator("button.role-item[data-role='dev-only']").click()
    expect(page.locator("#role-yaml")).to_have_value(re.compile(r"dev-only"))
    shot(page, "08-admin-roles")

    # Account, then logout: the session ends on the server, not only in this browser.
    page.locator("#nav-account").click()
    expect(page.locator("#account-username")).to_have_text("admin1")
    expect(page.locator("#account-roles")).to_contain_text("admin")
    expect(page.locator("#account-logins")).to_contain_text(LOGIN)
    shot(page, "09-account")
    cookie = session_cookie(page.context)
    assert cookie, page.context.cookies()
    assert cluster.me_status(cookie) == 200
    page.locator("#logout").click()
    expect(page.locator("#login-notice")).to_have_text("Logged out.")
    expect(page.locator("#terminal-tabs .terminal-tab")).to_have_count(0)
    assert cluster.me_status(cookie) == 401
    assert session_cookie(page.context) is None


# ---- 2. refusals ----------------------------------------------------------------------


def test_a_bad_password_is_refused_with_a_message_and_no_cookie(
    cluster: Cluster, browsing: Browsing
) -> None:
    page = browsing.page()
    page.goto(f"{cluster.origin}/")
    submit_login(page, "admin1", "not the password at all")
    error = page.locator("#login-error")
    expect(error).to_be_visible()
    expect(error).to_have_text(re.compile(r"\S"))
    expect(page.locator("#login-submit")).to_be_enabled()
    expect(page.locator("#page-login")).to_be_visible()
    expect(page.locator("#app-header")).to_be_hidden()
    assert session_cookie(page.context) is None
    assert page.context.cookies() == []
    shot(page, "10-login-refused")
    cluster.audit_when("user.login.failed", lambda found: any(e["user"] == "admin1" for e in found))


ADMIN_CALLS = """async (calls) => {
    const out = [];
    for (const [method, path, body] of calls) {
        const init = { method, headers: { "X-Mezite-CSRF": "1" } };
        if (body !== null) {
            init.headers["Content-Type"] = "application/json";
            init.body = JSON.stringify(body);
        }
        const reply = await fetch(`/v1/webapi${path}`, init);
        out.push([method, path, reply.status]);
    }
    return out;
}"""


def test_a_non_admin_page_is_refused_by_the_admin_api(cluster: Cluster, browsing: Browsing) -> None:
    users_before = cluster.users()
    tokens_before = cluster.tokens()
    roles_before = cluster.mezctl("get", "roles", "--format", "json").stdout
    page = browsing.page()
    browsing.login(page, "bob")
    expect(page.locator("#nav-admin")).to_be_hidden()
    calls: list[list[Any]] = [
        ["GET", "/users", None],
        ["POST", "/users", {"name": "mallory", "roles": ["admin"], "logins": [LOGIN]}],
        ["POST", "/users/admin1/reset", None],
        ["DELETE", "/users/admin1", None],
        ["GET", "/tokens", None],
        ["POST", "/tokens", {"type": "node", "ttl_seconds": 600, "labels": ["env=dev"]}],
        ["PUT", "/roles/dev-only", {"yaml": DEV_ONLY.replace("[dev]", "[dev, prod]")}],
        ["PUT", "/roles/bobs-role", {"yaml": DEV_ONLY.replace("dev-only", "bobs-role")}],
        ["GET", "/audit/events", None],
    ]
    answers = page.evaluate(ADMIN_CALLS, calls)
    assert [a[2] for a in answers] == [403] * len(calls), answers
    assert cluster.users() == users_before
    assert cluster.tokens() == tokens_before
    assert cluster.mezctl("get", "roles", "--format", "json").stdout == roles_before
    # Still logged in, still bob: a refusal is not a logout.
    page.goto(f"{cluster.origin}/web/#/admin/tokens")
    expect(page.locator("#page-forbidden")).to_be_visible()
    page.goto(f"{cluster.origin}/web/#/audit")
    expect(page.locator("#page-forbidden")).to_be_visible()
    shot(page, "11-forbidden")


def test_markup_in_an_audit_field_shows_as_text(cluster: Cluster, browsing: Browsing) -> None:
    """A failed login's user name is the attacker's: the audit page shows it literally."""
    stranger = browsing.page()
    stranger.goto(f"{cluster.origin}/")
    submit_login(stranger, XSS_NAME, "whatever it is")
    expect(stranger.locator("#login-error")).to_be_visible()
    stranger.context.close()
    cluster.audit_when("user.login.failed", lambda found: any(e["user"] == XSS_NAME for e in found))

    page = browsing.page()
    browsing.login(page, "admin1")
    page.locator("#nav-audit").click()
    page.locator("#audit-type").fill("user.login.failed")
    page.locator("#audit-search").click()
    rows = page.locator("tr.audit-row[data-type='user.login.failed']")
    expect(rows).to_have_count(1)
    expect(rows.locator(".audit-user")).to_have_text(XSS_NAME)
    rows.click()
    expect(page.locator("#audit-detail")).to_contain_text(XSS_NAME)
    assert json.loads(page.locator("#audit-detail").inner_text())["user"] == XSS_NAME
    # No element was made of it: the only images are the shell's own.
    expect(page.locator("img[src='x']")).to_have_count(0)
    expect(page.locator("#content img")).to_have_count(0)
    expect(page.locator(".audit-user img")).to_have_count(0)
    shot(page, "12-audit-markup")
    assert browsing.dialogs == []


def test_a_session_ended_on_the_server_sends_the_page_to_login(
    cluster: Cluster, browsing: Browsing
) -> None:
    page = browsing.page()
    browsing.login(page, "bob")
    cookie = session_cookie(page.context)
    assert cookie
    cluster.mezctl("users", "reset", "bob")  # clears the password and ends bob's sessions
    assert cluster.me_status(cookie) == 401
    page.locator("#nav-account").click()
    expect(page.locator("#page-account")).to_be_visible()  # drawn from what the page knows
    page.locator("#nav-nodes").click()  # asks the server: 401
    expect(page.locator("#page-login")).to_be_visible()
    expect(page.locator("#login-notice")).to_have_text("Your session has ended. Log in again.")
    expect(page.locator("#app-header")).to_be_hidden()
    page.reload()
    expect(page.locator("#page-login")).to_be_visible()
    # And the old password is gone with the reset.
    submit_login(page, "bob", PASSWORD)
    expect(page.locator("#login-error")).to_be_visible()


# ---- 3. the first load ----------------------------------------------------------------


def test_the_first_load_is_small_and_has_no_xterm(cluster: Cluster, browsing: Browsing) -> None:
    page = browsing.page()
    responses: list[Response] = []
    page.on("response", lambda response: responses.append(response))
    page.goto(f"{cluster.origin}/", wait_until="networkidle")
    expect(page.locator("#page-login")).to_be_visible()
    sizes: dict[str, int] = {}
    for response in responses:
        if 300 <= response.status < 400:
            continue  # the / -> /web/ redirect has no body to speak of
        sizes[response.url] = len(response.body())
    paths = [urlsplit(url).path for url in sizes]
    # Every answer is a good one but the logged-out /me (a wrong URL shows up here as 404).
    refused = [(r.status, urlsplit(r.url).path) for r in responses if r.status >= 400]
    assert refused == [(401, "/v1/webapi/me")], refused
    # The cluster's name comes from ping, which needs no session.
    expect(page.locator("#login-cluster")).to_have_text("e2e")
    assert "/web/" in paths and "/web/static/app.js" in paths, paths
    assert not [p for p in paths if p.startswith("/web/static/vendor/") and p.endswith(".js")]
    assert page.evaluate("() => typeof window.Terminal") == "undefined"
    timing = page.evaluate(
        """() => performance.getEntriesByType("resource").concat(
            performance.getEntriesByType("navigation")).reduce(
            (sum, e) => sum + e.transferSize, 0)"""
    )
    total = sum(sizes.values())
    print(f"\nfirst load: {len(sizes)} responses, {total} body bytes, "
          f"{int(timing)} bytes transferred (resource timing)")  # fmt: skip
    for url, size in sorted(sizes.items(), key=lambda kv: -kv[1]):
        print(f"  {size:8d}  {urlsplit(url).path}")
    assert total < 200_000, sizes
