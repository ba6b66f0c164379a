"""The browser terminal's WebSocket end to end, with real processes (`mezctl start` with
auth and proxy, a joined `mezd`) and a real WebSocket client: a PTY session as the
login, resize, exit status; and every refusal (another Origin, no Origin, no session, a
logged-out one, an unknown node, a login or node the roles do not allow, bad input, an
oversized frame, idle time) ends with its code and opens no session on the node."""

from __future__ import annotations

import getpass
import json
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.e2e.procs import (
    AuthProcess,
    cli,
    free_port,
    join_node,
    mezctl_start,
    mezd_start,
)

pytestmark = pytest.mark.e2e

PASSWORD = "a long enough password"
LOGIN = getpass.getuser()
PROD_ONLY = """kind: role
version: v1
metadata: {name: prod-only}
spec:
  allow:
    logins: ["{{internal.logins}}"]
    node_labels: {env: [prod]}
"""


@dataclass
class Web:
    auth: AuthProcess
    origin: str
    tls: ssl.SSLContext

    def login(self, user: str) -> str:
        with httpx.Client(verify=self.tls) as http:
            reply = http.post(f"{self.origin}/v1/webapi/login",
                              json={"username": user, "password": PASSWORD})  # fmt: skip
        assert reply.status_code == 200, reply.text
        return str(reply.json()["session_id"])

    def logout(self, session: str) -> None:
        with httpx.Client(verify=self.tls) as http:
            done = http.delete(f"{self.origin}/v1/webapi/session",
                               headers={"Authorization": f"Bearer {session}"})  # fmt: skip
        assert done.status_code == 204, done.text

    def terminal(
        self, session: str | None, node: str = "web-1", query: str = "", *,
        origin: str | None = "", login: str = LOGIN,
    ) -> ClientConnection:  # fmt: skip
        url = self.origin.replace("https://", "wss://")
        params = query or f"login={quote(login)}&cols=100&rows=30"
        headers = {"Cookie": f"mezite_session={session}"} if session else {}
        return connect(
            f"{url}/v1/webapi/nodes/{node}/terminal?{params}",
            ssl=self.tls, origin=self.origin if origin == "" else origin,  # type: ignore[arg-type]
            additional_headers=headers, open_timeout=20, close_timeout=5,
        )  # fmt: skip

    def audit_when(
        self, kind: str, ready: Callable[[list[dict[str, Any]]], bool], within: float = 20
    ) -> list[dict[str, Any]]:
        """The events of ``kind`` once ``ready`` holds of them (proxies and nodes forward
        their events in batches)."""
        deadline = time.monotonic() + within
        while not ready(events := self.audit(kind)):
            assert time.monotonic() < deadline, (kind, events)
            time.sleep(0.3)
        return events

    def audit(self, kind: str) -> list[dict[str, Any]]:
        done = cli("mezctl", "audit", "events", "--type", kind, "--format", "json",
                   "--data-dir", str(self.auth.data_dir))  # fmt: skip
        assert done.returncode == 0, done.stderr
        return list(json.loads(done.stdout))


def _add_user(auth: AuthProcess, name: str, roles: str) -> None:
    done = cli("mezctl", "users", "add", name, "--roles", roles, "--logins", LOGIN,
               "--password-stdin", "--data-dir", str(auth.data_dir),
               stdin=PASSWORD + "\n")  # fmt: skip
    assert done.returncode == 0, done.stderr


@pytest.fixture
def web(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Web]:
    env = getattr(request, "param", {})
    with ExitStack() as stack:
        auth = stack.enter_context(mezctl_start(tmp_path / "auth", env=env))
        role = tmp_path / "prod-only.yaml"
        role.write_text(PROD_ONLY)
        made = cli("mezctl", "create", "-f", str(role), "--data-dir", str(auth.data_dir))
        assert made.returncode == 0, made.stderr
        _add_user(auth, "alice", "access")
        _add_user(auth, "bob", "prod-only")
        port = free_port()
        join_node(auth, tmp_path / "node", "web-1", port, labels="env=dev")
        stack.enter_context(mezd_start(tmp_path / "node", port))
        runtime = json.loads((auth.data_dir / "proxy.json").read_text())
        with httpx.Client(verify=False) as http:  # noqa: S501 - only to fetch the CA to pin
            ca_pem = http.get(f"https://{runtime['web_addr']}/v1/webapi/ping").json()["ca_pem"]
        tls = ssl.create_default_context(cadata=ca_pem)
        yield Web(auth, runtime["public_origin"], tls)


def _until_closed(ws: ClientConnection, within: float = 30) -> tuple[bytes, list[Any]]:
    """Everything the terminal sent until it closed: output bytes and control messages."""
    output, control = b"", []
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            frame = ws.recv(timeout=deadline - time.monotonic())
            if isinstance(frame, bytes):
                output += frame
            else:
                control.append(json.loads(frame))
    except ConnectionClosed:
        return output, control
    raise AssertionError(f"still open after {within:.0f}s: {output[-300:]!r}")


def _wait_for(ws: ClientConnection, text: bytes, within: float = 20) -> bytes:
    seen = b""
    deadline = time.monotonic() + within
    while text not in seen:
        frame = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
        if isinstance(frame, bytes):
            seen += frame
    return seen


def _close_code(ws: ClientConnection) -> tuple[int, str]:
    _until_closed(ws)
    assert ws.close_code is not None
    return ws.close_code, ws.close_reason or ""


def test_a_pty_session_as_the_login_with_resize_and_exit_status(web: Web) -> None:
    session = web.login("alice")
    with web.terminal(session) as ws:
        ws.send(b"stty size\n")
        assert b"30 100" in _wait_for(ws, b"30 100")
        ws.send(json.dumps({"type": "resize", "cols": 132, "rows": 43}))
        ws.send(b"stty size; printf 'caf\\303\\251 %s\\n' $(id -un); exit 3\n")
        output, control = _until_closed(ws)
        assert ws.close_code == 1000
    assert b"43 132" in output
    assert f"café {LOGIN}".encode() in output
    assert control == [{"type": "exit", "status": 3}]
    events = web.audit_when("web.terminal", lambda found: any(e["success"] for e in found))
    (opened,) = [e for e in events if e["success"]]
    assert (opened["user"], opened["fields"]["node"], opened["fields"]["login"]) == (
        "alice", "web-1", LOGIN,
    )  # fmt: skip
    assert opened["fields"]["remote_addr"] == "127.0.0.1"
    starts = web.audit_when("session.start", bool)
    assert [(e["user"], e["fields"]["login"]) for e in starts] == [("alice", LOGIN)]


def test_paste_bigger_than_a_frame_arrives_whole(web: Web) -> None:
    """Backpressure from the browser side: 40 frames of 60 KiB into `wc -c`."""
    session = web.login("alice")
    with web.terminal(session) as ws:
        ws.send(b"stty -echo -icanon; head -c 2457600 | wc -c; exit\n")
        time.sleep(0.5)
        for _ in range(40):
            ws.send(b"x" * 61440)
        output, control = _until_closed(ws, within=60)
    assert b"2457600" in output
    assert control == [{"type": "exit", "status": 0}]


def _refused_handshake(web: Web, session: str, origin: str | None) -> int:
    with pytest.raises(InvalidStatus) as refused:
        web.terminal(session, origin=origin)
    return refused.value.response.status_code


def test_refusals_end_with_their_code_and_open_nothing(web: Web) -> None:
    alice, bob = web.login("alice"), web.login("bob")
    # Cross-site WebSocket hijacking: the handshake itself is refused.
    assert _refused_handshake(web, alice, "https://evil.example") == 403
    assert _refused_handshake(web, alice, None) == 403
    assert _refused_handshake(web, alice, web.origin + ".evil.example") == 403
    certs_before = len(web.audit("cert.create"))
    cases = [
        (None, "web-1", "", 4401),  # no session at all
        ("x" * 43, "web-1", "", 4401),  # a session auth does not know
        (alice, "nowhere", "", 4404),
        (alice, "web-1", "login=root2&cols=80&rows=24", 4403),  # not one of her logins
        (alice, "web-1", f"login={LOGIN}&cols=0&rows=24", 4400),
        (alice, "web-1", f"login={LOGIN}&cols=80&rows=24&host=10.0.0.1", 4400),
        (alice, "web-1", f"login={LOGIN}&login=root", 4400),
    ]
    for session, node, query, code in cases:
        with web.terminal(session, node, query) as ws:
            got, reason = _close_code(ws)
        assert got == code, (node, query, got, reason)
        assert reason, (node, query)
    # None of those got as far as a certificate.
    assert len(web.audit("cert.create")) == certs_before
    # Bob's role reaches env=prod only: a certificate is made (in memory), judged by the
    # node policy with web-1's labels, and nothing is dialled. He gets the answer a node
    # that is not there gets: the terminal names no node `mez ls` does not show him.
    with web.terminal(bob) as ws:
        got, reason = _close_code(ws)
    with web.terminal(bob, "web-9") as ws:
        absent = _close_code(ws)
    assert (got, reason.replace("web-1", "N")) == (absent[0], absent[1].replace("web-9", "N"))
    assert got == 4404 and "no node named 'web-1' that you can reach" in reason, reason
    # A logged-out session is dead for the terminal too.
    web.logout(alice)
    with web.terminal(alice) as ws:
        assert _close_code(ws)[0] == 4401
    wanted = {"cross-origin or no Origin", "no such node", "login not allowed"}
    refusals = web.audit_when(
        "web.terminal",
        lambda found: (
            {e["fields"].get("reason") for e in found} >= wanted
            and any(e["user"] == "bob" for e in found)
        ),
    )
    assert not any(e["success"] for e in refusals)
    assert web.audit("session.start") == []
    assert any(e["user"] == "bob" and e["fields"]["node"] == "web-1" for e in refusals)


def test_an_oversized_frame_closes_with_1009(web: Web) -> None:
    with web.terminal(web.login("alice")) as ws:
        ws.recv(timeout=20)  # the shell's first output: the session is up
        ws.send(b"y" * (70 * 1024))
        assert _close_code(ws)[0] == 1009


@pytest.mark.parametrize("web", [{"MEZITE_PROXY_WEB_IDLE_TIMEOUT": "2s"}], indirect=True)
def test_an_idle_terminal_is_closed(web: Web) -> None:
    with web.terminal(web.login("alice")) as ws:
        code, reason = _close_code(ws)
    assert code == 4408 and "idle" in reason


def test_the_terminal_through_a_proxy_on_its_own(tmp_path: Path) -> None:
    """The same path with the proxy in a process of its own (as on another host): it dials
    the node's registered address and verifies its host certificate the same way."""
    from tests.e2e.test_lone_proxy_e2e import _proxy_token

    with ExitStack() as stack:
        auth = stack.enter_context(mezctl_start(tmp_path / "auth", roles="auth"))
        join_args = _proxy_token(auth)
        _add_user(auth, "alice", "access")
        port = free_port()
        join_node(auth, tmp_path / "node", "web-1", port)
        stack.enter_context(mezd_start(tmp_path / "node", port))
        lone = stack.enter_context(
            mezctl_start(tmp_path / "proxy", *join_args, "--name", "edge-1", roles="proxy")
        )
        runtime = json.loads((lone.data_dir / "proxy.json").read_text())
        ca_pem = (auth.data_dir / "admin" / "ca.pem").read_text()
        web = Web(auth, runtime["public_origin"], ssl.create_default_context(cadata=ca_pem))
        with web.terminal(web.login("alice")) as ws:
            ws.send(b"id -un; exit 7\n")
            output, control = _until_closed(ws)
        assert LOGIN.encode() in output
        assert control == [{"type": "exit", "status": 7}]
        (opened,) = web.audit_when("web.terminal", bool)
        assert opened["success"] and opened["fields"]["node"] == "web-1"
        assert opened["fields"]["proxy_id"], opened  # stamped by auth: the lone proxy's own


def test_a_browser_gone_mid_output_ends_the_session_quietly(web: Web) -> None:
    """Backpressure from the node's side and a closed tab: output the browser never reads
    stays in the SSH window (the proxy reads no faster than it sends), and when the
    socket goes the node's session ends, with no error at the proxy."""
    with web.terminal(web.login("alice")) as ws:
        ws.send(b"yes mezite-flood\n")
        _wait_for(ws, b"mezite-flood\r\nmezite-flood")
        time.sleep(1)  # the browser stops reading while the node keeps writing
    ended = web.audit_when("session.end", bool)
    assert [e["user"] for e in ended] == ["alice"]
    log = web.auth.log.read_text()
    assert "web terminal failed" not in log and "Traceback" not in log, log[-2000:]


def test_a_web_terminal_session_is_recorded_like_any_pty_session(web: Web) -> None:
    """The node records the browser's session as it does `mez ssh -t`: its output and its
    resizes reach auth, listed for its user and played through the proxy's REST routes."""
    session = web.login("alice")
    with web.terminal(session) as ws:
        ws.send(b"stty size\n")
        _wait_for(ws, b"30 100")
        ws.send(json.dumps({"type": "resize", "cols": 120, "rows": 40}))
        ws.send(b"stty size; printf 'web-%s\\n' recorded; exit\n")
        output, _ = _until_closed(ws)
    assert b"40 120" in output and b"web-recorded" in output
    bearer = {"Authorization": f"Bearer {session}"}
    deadline = time.monotonic() + 30
    with httpx.Client(verify=web.tls, base_url=web.origin) as http:
        while not (
            (found := http.get("/v1/webapi/recordings", headers=bearer).json()["recordings"])
            and all(rec["complete"] for rec in found)
        ):
            assert time.monotonic() < deadline, "the web terminal's recording never arrived"
            time.sleep(0.3)
        (rec,) = found
        assert (rec["user"], rec["login"], rec["node_name"], rec["truncated"]) == (
            "alice", LOGIN, "web-1", False,
        ), rec  # fmt: skip
        cast = http.get(f"/v1/webapi/sessions/{rec['session_id']}/recording", headers=bearer)
        assert cast.status_code == 200, cast.text
        others = {"Authorization": f"Bearer {web.login('bob')}"}
        assert http.get("/v1/webapi/recordings", headers=others).json()["recordings"] == []
    header, *events = [json.loads(line) for line in cast.text.splitlines()]
    assert (header["version"], header["width"], header["height"]) == (2, 100, 30)
    assert [e[2] for e in events if e[1] == "r"] == ["120x40"]
    assert "web-recorded" in "".join(e[2] for e in events if e[1] == "o")
    assert not [e for e in events if e[1] == "i"]  # input is not recorded
