"""The outer edge of every request: a request id, security headers, the request
counter, a deadline on reading the body, and the last line of defence that turns an
unexpected exception into a JSON 500 naming the request id (the traceback goes to the
log, never to the client)."""

from __future__ import annotations

import asyncio
import logging

from starlette.datastructures import MutableHeaders
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.proxy.errors import RequestTimeout, internal_error_response, new_request_id
from server.proxy.metrics import ProxyMetrics
from server.proxy.pages import PAGE_PREFIX

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-Id"
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    # API answers are per user and often secret (certificates, session ids).
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("Strict-Transport-Security", "max-age=31536000"),
    # Nothing here is a page: no scripts, frames or embedding of any kind.
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
    ("Referrer-Policy", "no-referrer"),
)
# The web UI's pages and files (``pages.py``): scripts only from this origin and never
# inline; inline styles because xterm.js sets them at run time (without them its text
# renders invisible); fetches and the terminal's WebSocket only to this origin. Not
# secret, so cached, but revalidated (ETag) so an upgrade shows at once.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS: tuple[tuple[str, str], ...] = (
    ("Cache-Control", "no-cache"),
    ("X-Content-Type-Options", "nosniff"),
    ("Strict-Transport-Security", "max-age=31536000"),
    ("Content-Security-Policy", PAGE_CSP),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Referrer-Policy", "no-referrer"),
)


def headers_for(path: str, status: int) -> tuple[tuple[str, str], ...]:
    """The page headers for a page or file of the web UI that was found; the API's for
    everything else (an error under /web/ is a JSON answer like any other)."""
    if path.startswith(PAGE_PREFIX) and status < 400:
        return PAGE_HEADERS
    return SECURITY_HEADERS


def route_label(route: object) -> str:
    """The route template ("/v1/webapi/nodes"), never the raw path, which a client could
    vary without bound."""
    if isinstance(route, Route):
        return route.path
    if isinstance(route, BaseRoute):
        return "other"
    return "unmatched"


def body_deadline(receive: Receive, seconds: float) -> Receive:
    """``receive`` that raises RequestTimeout (408, and the connection is closed) when
    the body has not all arrived ``seconds`` after the head; past the body's end it is
    ``receive`` itself (a wait for the client to disconnect is no body read)."""
    deadline = asyncio.get_running_loop().time() + seconds
    body_done = False

    async def bounded() -> Message:
        nonlocal body_done
        if body_done:
            return await receive()
        left = deadline - asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(max(left, 0.0)):
                message = await receive()
        except TimeoutError:
            raise RequestTimeout(f"the request body did not arrive within {seconds:g}s") from None
        if message["type"] != "http.request" or not message.get("more_body", False):
            body_done = True
        return message

    return bounded


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, metrics: ProxyMetrics, body_timeout: float) -> None:
        self.app = app
        self.metrics = metrics
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = int(message["status"])
                headers = MutableHeaders(scope=message)
                for name, value in headers_for(str(scope.get("path", "")), status):
                    headers[name] = value
                headers[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, body_deadline(receive, self.body_timeout), send_with_headers)
        except Exception:
            log.exception("unhandled error (request id %s)", request_id)
            if not started:
                await internal_error_response(request_id)(scope, receive, send_with_headers)
            # Otherwise the response is half sent: the server closes the connection.
        finally:
            self.metrics.requests.labels(
                route=route_label(scope.get("route")),
                method=ProxyMetrics.method_label(str(scope.get("method", ""))),
                status=str(status),
            ).inc()
