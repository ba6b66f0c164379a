"""The browser terminal: a WebSocket from the web UI, through the proxy, to a PTY
session on a node.

The checks, in order, before anything is dialled:
1. ``Origin`` must be exactly this proxy's public origin, and must be there: a browser
   cannot add the CSRF header to a WebSocket handshake, and ``SameSite=Strict`` does
   not stop a same-site page on another origin (cross-site WebSocket hijacking). A
   refusal here is a refused handshake (HTTP 403): the socket is never opened.
2. The session (the cookie, or a bearer header) must be live: auth's GetCurrentUser.
3. The login must be one of the user's, and the node a registered one.
4. A certificate for a fresh key that lives only in this process's memory, for minutes
   (IssueUserCerts with the session: auth applies the user's roles, locks and TTL
   caps), judged by the same SSH policy the hop and the nodes apply
   (``check_user_certificate`` with the node's labels), and the proxy's locks.
Then the proxy dials the node's registered address by the one dial rule
(``node_dial.py``), verifies the node's host certificate against the host CA for the
node's id, and opens a PTY session. Each outcome is audited (``web.terminal``: who,
which node and login, from which browser address); the node audits the session as for
any other.

The wire: binary frames are terminal bytes both ways; text frames are JSON control
messages (browser: ``{"type": "resize", "cols", "rows"}``; proxy: ``{"type": "exit",
"status"}``, ``{"type": "error", "message"}``). Every failure after the handshake is a
close with a code from ``CLOSE_CODES`` and a one-line reason. Backpressure: uvicorn
reads the next browser frame only once this one is written to the node, and the node's
output is read only as fast as the browser takes it (the SSH window does the rest).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncssh
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from proto.errors import (
    AccessDenied,
    BadParameter,
    ConnectionProblem,
    LimitExceeded,
    MeziteError,
    NotAuthenticated,
    NotFound,
)
from proto.sshpolicy import NODE_ACCESS_REFUSED, AuthRefused, check_user_certificate
from proto.v1 import auth_pb2 as pb
from server.proxy import credentials
from server.proxy.gateway import AuthGateway
from server.proxy.settings import ProxySettings
from server.proxy.ssh_router import unreachable

if TYPE_CHECKING:
    from server.proxy.ssh_router import ProxySSHRouter, RoutedNode

log = logging.getLogger(__name__)

TERMINAL_PATH = "/v1/webapi/nodes/{node}/terminal"
# Long enough to authenticate to the node; sessions outlive the certificate, as with
# OpenSSH (a certificate is checked when the session is opened).
CERT_TTL_SECONDS = 120
MAX_FRAME_BYTES = 64 * 1024
READ_CHUNK = 64 * 1024
CONNECT_TIMEOUT = 15.0
MAX_COLS, MAX_ROWS = 1000, 500
TERM_TYPE = "xterm-256color"
_NODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")
_LOGIN = re.compile(r"[!-~]{1,64}")
_INTEGER = re.compile(r"[1-9][0-9]{0,3}")

NORMAL = 1000
CLOSE_CODES: dict[type[MeziteError], int] = {
    BadParameter: 4400,
    NotAuthenticated: 4401,
    AccessDenied: 4403,
    NotFound: 4404,
    LimitExceeded: 4429,
    ConnectionProblem: 4502,
}
IDLE_CODE = 4408
INTERNAL_CODE = 1011


def close_code(err: MeziteError) -> int:
    for kind, code in CLOSE_CODES.items():
        if isinstance(err, kind):
            return code
    return INTERNAL_CODE


def _reason(text: str) -> str:
    """A close reason fits a control frame: 123 bytes of UTF-8."""
    data = text.replace("\n", " ").encode()[:123]
    return data.decode("utf-8", "ignore")


@dataclass(frozen=True)
class TerminalRequest:
    node: str
    login: str
    cols: int
    rows: int


def _size(name: str, text: str, bound: int) -> int:
    if not _INTEGER.fullmatch(text) or int(text) > bound:
        raise BadParameter(f"{name} must be a whole number from 1 to {bound}")
    return int(text)


def parse_request(websocket: WebSocket) -> TerminalRequest:
    node = str(websocket.path_params["node"])
    if not _NODE.fullmatch(node):
        raise BadParameter("the node is named by its name or id")
    query: dict[str, str] = {}
    for key, value in websocket.query_params.multi_items():
        if key not in ("login", "cols", "rows"):
            raise BadParameter(f"unknown query parameter {key[:64]!r}")
        if key in query:
            raise BadParameter(f"query parameter {key!r} given more than once")
        query[key] = value
    login = query.get("login", "")
    if not _LOGIN.fullmatch(login):
        raise BadParameter("login= names the OS login to use on the node")
    return TerminalRequest(
        node=node,
        login=login,
        cols=_size("cols", query.get("cols", "80"), MAX_COLS),
        rows=_size("rows", query.get("rows", "24"), MAX_ROWS),
    )


def parse_control(text: str) -> tuple[int, int]:
    """A resize message's (cols, rows); anything else is a bad request."""
    try:
        message = json.loads(text)
    except ValueError:
        raise BadParameter("a text frame must be a JSON control message") from None
    if (
        not isinstance(message, dict)
        or message.get("type") != "resize"
        or set(message) != {"type", "cols", "rows"}
    ):
        raise BadParameter('the only control message is {"type": "resize", "cols", "rows"}')
    cols, rows = message["cols"], message["rows"]
    for name, value, bound in (("cols", cols, MAX_COLS), ("rows", rows, MAX_ROWS)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= bound:
            raise BadParameter(f"{name} must be a whole number from 1 to {bound}")
    return cols, rows


class _Idle(Exception):
    pass


class WebTerminals:
    """The WebSocket endpoint, bound to one proxy's settings, auth gateway and SSH
    router (whose node directory, dial rule, locks, user CAs and audit it shares, so
    the browser path and the SSH hop cannot disagree)."""

    def __init__(
        self,
        settings: ProxySettings,
        auth: AuthGateway,
        router: ProxySSHRouter,
        *,
        idle_timeout: float,
    ) -> None:
        self.settings = settings
        self.auth = auth
        self.router = router
        self.idle_timeout = idle_timeout
        self.live = 0

    async def serve(self, websocket: WebSocket) -> None:
        client_ip = websocket.client.host if websocket.client else ""
        origins = websocket.headers.getlist("origin")
        if origins != [self.settings.public_origin]:
            log.info("refused a terminal WebSocket from origin %s (%s)",
                     repr(origins)[:200], client_ip)  # fmt: skip
            self.router.audit("web.terminal", user="", success=False, remote_addr=client_ip,
                              reason="cross-origin or no Origin")  # fmt: skip
            await websocket.close(code=4403)  # before accept: the handshake gets 403
            return
        await websocket.accept()
        self.live += 1
        try:
            await self._serve(websocket, client_ip)
        except MeziteError as err:
            await self._close(websocket, close_code(err), err.message)
        except WebSocketDisconnect:
            pass  # the browser went away (a closed tab): the SSH session ends with it
        except _Idle:
            minutes = self.idle_timeout / 60
            await self._close(websocket, IDLE_CODE, f"closed after {minutes:g} minutes idle")
        except Exception as exc:
            # Not the message: a failed send's error can quote the terminal's bytes.
            where = traceback.extract_tb(exc.__traceback__)[-1]
            log.error("web terminal failed: %s at %s:%s", type(exc).__name__,
                      where.filename, where.lineno)  # fmt: skip
            await self._close(websocket, INTERNAL_CODE, "internal error")
        finally:
            self.live -= 1

    async def _close(self, websocket: WebSocket, code: int, reason: str) -> None:
        if websocket.application_state != WebSocketState.DISCONNECTED:
            with contextlib.suppress(Exception):
                if code not in (NORMAL, IDLE_CODE, INTERNAL_CODE):
                    await websocket.send_text(json.dumps({"type": "error", "message": reason}))
                await websocket.close(code=code, reason=_reason(reason))

    async def _serve(self, websocket: WebSocket, client_ip: str) -> None:
        session = credentials.session_from_request(websocket)
        request = parse_request(websocket)
        stub = self.auth.stub()
        metadata = self.auth.metadata(session.session_id, client_ip)
        me = await stub.GetCurrentUser(pb.GetCurrentUserRequest(), metadata=metadata)
        refusal: dict[str, Any] = {
            "user": me.username, "login": request.login, "requested": request.node,
            "remote_addr": client_ip,
            "user_agent": websocket.headers.get("user-agent", "")[:200],
        }  # fmt: skip
        if request.login not in me.logins:
            self.router.audit("web.terminal", success=False, reason="login not allowed",
                              **refusal)  # fmt: skip
            raise AccessDenied(f"your roles do not allow the login {request.login!r}")
        node = await self._node(request.node)
        if node is None:
            self.router.audit("web.terminal", success=False, reason="no such node", **refusal)
            raise NotFound(unreachable(request.node))
        refusal.update(node=node.name, node_id=node.id)
        key = asyncssh.generate_private_key("ssh-ed25519")
        issued = await stub.IssueUserCerts(
            pb.IssueUserCertsRequest(
                ssh_public_key=key.export_public_key().decode(), ttl_seconds=CERT_TTL_SECONDS
            ),
            metadata=metadata,
        )
        cert = asyncssh.import_certificate(issued.ssh_certificate)
        try:
            identity = check_user_certificate(
                cert.public_data, request.login, signature=b"", trusted=self.router.trusted,
                labels=node.labels, now=self.router.clock.now(),
            )  # fmt: skip
        except AuthRefused as refused:
            self.router.audit("web.terminal", success=False, reason=refused.reason, **refusal)
            if refused.reason == NODE_ACCESS_REFUSED:  # the same answer as no such node
                raise NotFound(unreachable(request.node)) from None
            raise AccessDenied(f"access to {node.name} denied: {refused.reason}") from None
        locked = self.router.locks.refusal(identity.subject(login=request.login, node=node.id))
        if locked is not None:
            self.router.audit("web.terminal", success=False, reason=locked[:200], **refusal)
            raise AccessDenied(locked)
        target = self.router.dial.target(node.addr, node.seen_from)
        if target is None:
            self.router.audit("web.terminal", success=False, reason="no dialable address",
                              **refusal)  # fmt: skip
            raise ConnectionProblem(f"{node.name} has no address the proxy may dial")
        self.router.audit("web.terminal", success=True, key_id=identity.key_id, **refusal)
        host_cas = [asyncssh.import_public_key(line) for line in issued.host_ca_keys]
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                conn = await asyncssh.connect(
                    target.host, target.port, username=request.login,
                    client_keys=[(key, cert)], known_hosts=([], host_cas, []),
                    host_key_alias=node.id, config=None, agent_path=None,
                    preferred_auth="publickey", keepalive_interval=30,
                )  # fmt: skip
        except asyncssh.PermissionDenied:
            raise AccessDenied(f"{node.name} refused the login {request.login!r}") from None
        except (OSError, asyncssh.Error, TimeoutError) as exc:
            log.info("web terminal cannot reach %s at %s: %s", node.name, target, exc)
            raise ConnectionProblem(f"cannot reach {node.name}") from None
        async with conn:
            await self._relay(websocket, conn, request)

    async def _node(self, name: str) -> RoutedNode | None:
        directory = self.router.directory
        node = directory.resolve(name)
        if node is None:
            await directory.refresh_for_miss()
            node = directory.resolve(name)
        return node

    async def _relay(
        self, websocket: WebSocket, conn: asyncssh.SSHClientConnection, request: TerminalRequest
    ) -> None:
        process = await conn.create_process(
            term_type=TERM_TYPE, term_size=(request.cols, request.rows), encoding=None
        )
        loop = asyncio.get_running_loop()
        last = loop.time()

        async def output() -> None:
            nonlocal last
            while data := await process.stdout.read(READ_CHUNK):
                await websocket.send_bytes(data)
                last = loop.time()
            result = await process.wait(check=False)
            status = result.exit_status if result.exit_status is not None else -1
            await websocket.send_text(json.dumps({"type": "exit", "status": status}))
            await websocket.close(code=NORMAL, reason=f"exit status {status}")

        async def browser() -> None:
            nonlocal last
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                last = loop.time()
                data = message.get("bytes")
                if data is not None:
                    if len(data) > MAX_FRAME_BYTES:
                        raise LimitExceeded(f"a frame is at most {MAX_FRAME_BYTES} bytes")
                    process.stdin.write(data)
                    await process.stdin.drain()
                else:
                    process.change_terminal_size(*parse_control(message.get("text") or ""))

        async def idle() -> None:
            while True:
                left = last + self.idle_timeout - loop.time()
                if left <= 0:
                    raise _Idle
                await asyncio.sleep(left)

        tasks = [asyncio.create_task(t()) for t in (output, browser, idle)]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            error = task.exception()
            if error is not None:
                raise error
