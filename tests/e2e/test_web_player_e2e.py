"""The web UI's session-recording player in a real browser (Debian's Chromium through
Playwright), against real processes: `mezctl start`, a joined `mezd`, and a session made
with `mez ssh -tt`. Once the recording is listed, the owner opens Recordings, plays it at
8x and sees the output appear in the terminal (its text and its pixels), pauses (the clock
stops), resumes with Space, and seeks back to the start (the screen clears). Another user
sees no row, and opening the player by URL shows the proxy's refusal."""

from __future__ import annotations

import getpass
import json
import os
import re
import shutil
import ssl
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Locator, Page, expect, sync_playwright

from tests.e2e.procs import (
    AuthProcess,
    cli,
    free_port,
    join_node,
    mez_env,
    mezctl_start,
    mezd_start,
)

pytestmark = pytest.mark.e2e

PASSWORD = "a long enough password"
LOGIN = getpass.getuser()
SCRIPT = "printf 'played-%s\\n' $((6*7)); sleep 1; echo after-pause"
# Read at import: tests/conftest.py drops MEZITE_* variables before each test.
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("MEZITE_TEST_ARTIFACTS", REPO / "test-artifacts")) / "web-player"
BACKGROUND = (0x0F, 0x14, 0x19)  # the terminal theme's background


@dataclass
class Cluster:
    auth: AuthProcess
    origin: str
    tls: ssl.SSLContext
    session_id: str  # alice's recording


def wait_for(what: str, check: Callable[[], Any], within: float = 60) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"not within {within:.0f}s: {what}")


def _add_user(auth: AuthProcess, name: str) -> None:
    done = cli("mezctl", "users", "add", name, "--roles", "access", "--logins", LOGIN,
               "--password-stdin", "--data-dir", str(auth.data_dir),
               stdin=PASSWORD + "\n")  # fmt: skip
    assert done.returncode == 0, done.stderr


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    env = mez_env(tmp_path / "user")
    with ExitStack() as stack:
        auth = stack.enter_context(mezctl_start(tmp_path / "auth"))
        _add_user(auth, "alice")
        _add_user(auth, "carol")
        status = cli("mezctl", "status", "--data-dir", str(auth.data_dir), "--format", "json")
        assert status.returncode == 0, status.stderr
        login = cli("mez", "login", "--auth", auth.addr, "--user", "alice", "--password-stdin",
                    "--ca-pin", json.loads(status.stdout)["ca_pin"], stdin=PASSWORD + "\n",
                    env=env)  # fmt: skip
        assert login.returncode == 0, login.stderr
        port = free_port()
        join_node(auth, tmp_path / "node", "web-1", port)
        stack.enter_context(mezd_start(tmp_path / "node", port))
        ran = cli("mez", "ssh", "-tt", "web-1", SCRIPT, env=env)
        assert ran.returncode == 0, ran.stderr
        assert "played-42" in ran.stdout and "after-pause" in ran.stdout

        def listed() -> list[dict[str, Any]]:
            done = cli("mez", "recordings", "ls", "--format", "json", env=env)
            assert done.returncode == 0, done.stderr
            return [r for r in json.loads(done.stdout) if r.get("complete", True)]

        (rec,) = wait_for("the recording listed", listed)
        runtime = json.loads((auth.data_dir / "proxy.json").read_text())
        with httpx.Client(verify=False) as http:  # noqa: S501 - only to fetch the CA to pin
            ca_pem = http.get(f"https://{runtime['web_addr']}/v1/webapi/ping").json()["ca_pem"]
        tls = ssl.create_default_context(cadata=ca_pem)
        yield Cluster(auth, runtime["public_origin"], tls, str(rec["session_id"]))


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=shutil.which("chromium") or "/usr/bin/chromium",
            headless=True,
            args=["--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        try:
            yield chromium
        finally:
            chromium.close()


class Console:
    """A page's console errors and page errors, less the 4xx loads the README expects."""

    def __init__(self, page: Page) -> None:
        self.problems: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda err: self.problems.append(f"pageerror: {err}"))

    def _console(self, msg: ConsoleMessage) -> None:
        if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
            self.problems.append(msg.text)


def _open(browser: Browser, cluster: Cluster, user: str) -> tuple[Page, Console]:
    # The proxy's certificate is from the cluster's own CA, which this browser profile does
    # not trust; the API checks above pin that CA.
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    console = Console(page)
    page.goto(f"{cluster.origin}/web/#/login")
    page.locator("#login-username").fill(user)
    page.locator("#login-password").fill(PASSWORD)
    page.locator("#login-submit").click()
    expect(page.locator("#app-header")).to_be_visible()
    expect(page.locator("#header-user")).to_have_text(user)
    return page, console


def _shot(target: Page | Locator, name: str) -> bytes:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return target.screenshot(path=str(ARTIFACTS / name))


def _bright_pixels(png: bytes) -> int:
    """Pixels of a screenshot much lighter than the terminal's background: drawn text."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, body = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and interlace == 0 and colour in (2, 6), (depth, colour, interlace)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
    raw, stride = zlib.decompress(idat), width * channels
    rows: list[bytearray] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = prev[i], prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + pred) & 0xFF
        rows.append(line)
        prev = line
    return sum(
        1
        for line in rows
        for x in range(0, stride, channels)
        if min(line[x : x + 3]) > 0x90 and line[x : x + 3] != bytearray(BACKGROUND)
    )


def _stays(locator: Locator, text: str, seconds: float) -> None:
    """The locator keeps exactly ``text`` for ``seconds`` (checked over and over)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        expect(locator).to_have_text(text, timeout=100)
        locator.page.wait_for_timeout(100)


def test_the_owner_plays_pauses_and_seeks_a_recording(cluster: Cluster, browser: Browser) -> None:
    page, console = _open(browser, cluster, "alice")
    page.locator("#nav-recordings").click()
    expect(page.locator("#page-recordings")).to_be_visible()
    row = page.locator(f'tr.recording-row[data-session-id="{cluster.session_id}"]')
    expect(row).to_have_count(1)
    expect(row.locator(".recording-user")).to_have_text("alice")
    expect(row.locator(".recording-login")).to_have_text(LOGIN)
    expect(row.locator(".recording-node")).to_have_text("web-1")
    expect(row.locator(".recording-truncated")).to_have_text("")
    expect(row).to_have_attribute("data-truncated", "false")
    _shot(page, "list.png")

    row.locator(".play-button").click()
    expect(page).to_have_url(f"{cluster.origin}/web/#/recordings/{cluster.session_id}")
    expect(page.locator("#page-player")).to_be_visible()
    play, time_text = page.locator("#player-play"), page.locator("#player-time")
    rows = page.locator("#player-terminal .xterm-rows")
    expect(play).to_be_enabled()
    expect(page.locator("#player-user")).to_have_text("alice")
    expect(page.locator("#player-login")).to_have_text(LOGIN)
    expect(page.locator("#player-node")).to_have_text("web-1")
    expect(page.locator("#player-truncated")).to_be_hidden()
    expect(page.locator("#player-error")).to_be_hidden()
    expect(time_text).to_have_text(re.compile(r"^0:00\.0 / 0:0[1-9]\.\d$"))
    terminal = page.locator("#player-terminal")
    blank = _bright_pixels(_shot(terminal, "blank.png"))

    # 8x: everything shows, in order, and the player ends.
    page.locator("#player-speed").select_option("8")
    play.click()
    expect(rows).to_contain_text("played-42")
    expect(rows).to_contain_text("after-pause")
    expect(play).to_have_attribute("data-state", "ended")
    text = rows.inner_text()
    assert text.index("played-42") < text.index("after-pause"), text
    ended = page.locator("#player-timeline").input_value()
    total = time_text.inner_text().split(" / ")[1]
    expect(time_text).to_have_text(f"{total} / {total}")
    played = _bright_pixels(_shot(terminal, "played-8x.png"))
    _shot(page, "player.png")
    assert played > blank + 200, (blank, played)
    assert float(ended) > 0.9

    # Seeking to 0 starts over on a cleared screen.
    page.locator("#player-timeline").fill("0")
    expect(time_text).to_have_text(f"0:00.0 / {total}")
    expect(rows).not_to_contain_text("after-pause")
    at_start = _bright_pixels(_shot(terminal, "seek-0.png"))
    assert at_start < played, (at_start, played)

    # 0.5x: the first line shows; pausing stops the clock and the output.
    page.locator("#player-speed").select_option("0.5")
    play.click()
    expect(rows).to_contain_text("played-42")
    play.click()
    expect(play).to_have_attribute("data-state", "paused")
    paused_at = time_text.inner_text()
    _stays(time_text, paused_at, 1.5)
    expect(rows).not_to_contain_text("after-pause")
    paused = _bright_pixels(_shot(terminal, "paused.png"))
    assert blank + 50 < paused < played, (blank, paused, played)

    # Space (with the focus on the terminal, not a button) resumes it to the end.
    terminal.click()
    page.keyboard.press("Space")
    expect(play).to_have_attribute("data-state", "playing")
    expect(rows).to_contain_text("after-pause", timeout=10_000)
    expect(play).to_have_attribute("data-state", "ended", timeout=10_000)
    resumed = _bright_pixels(_shot(terminal, "resumed.png"))
    assert resumed > paused, (paused, resumed)

    # Seeking forward from the start writes everything up to there at once.
    page.locator("#player-timeline").fill("0")
    expect(rows).not_to_contain_text("after-pause")
    page.locator("#player-timeline").fill(ended)
    expect(rows).to_contain_text("after-pause")
    expect(play).to_have_attribute("data-state", "ended")

    # A path that is not a session id is refused before any request.
    page.goto(f"{cluster.origin}/web/#/recordings/..%2Fnodes")
    expect(page.locator("#player-error")).to_have_text("This is not a session id (a UUID).")
    assert console.problems == [], console.problems


def test_another_user_sees_no_row_and_the_player_shows_the_refusal(
    cluster: Cluster, browser: Browser
) -> None:
    with httpx.Client(verify=cluster.tls, base_url=cluster.origin) as http:
        login = http.post("/v1/webapi/login", json={"username": "carol", "password": PASSWORD})
        assert login.status_code == 200, login.text
        bearer = {"Authorization": f"Bearer {login.json()['session_id']}"}
        refused = http.get(f"/v1/webapi/sessions/{cluster.session_id}/recording", headers=bearer)
        listing = http.get("/v1/webapi/recordings", headers=bearer)
    assert refused.status_code in (403, 404), refused.text
    message = refused.json()["error"]["message"]
    assert listing.status_code == 200 and listing.json()["recordings"] == [], listing.text

    page, console = _open(browser, cluster, "carol")
    page.locator("#nav-recordings").click()
    expect(page.locator("#page-recordings")).to_be_visible()
    expect(page.locator("#recordings-empty")).to_have_text("No recordings match.")
    expect(page.locator("tr.recording-row")).to_have_count(0)
    _shot(page, "other-user-list.png")

    page.goto(f"{cluster.origin}/web/#/recordings/{cluster.session_id}")
    expect(page.locator("#page-player")).to_be_visible()
    expect(page.locator("#player-error")).to_have_text(message)
    expect(page.locator("#player-play")).to_be_disabled()
    expect(page.locator("#player-terminal .xterm-rows")).to_have_count(0)
    _shot(page, "other-user-refused.png")
    assert console.problems == [], console.problems
