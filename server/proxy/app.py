"""The proxy's HTTPS API as one Starlette application."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from proto.errors import MeziteError
from server.proxy.admin_routes import AdminAPI
from server.proxy.errors import handle_http_exception, handle_mezite_error
from server.proxy.gateway import AuthGateway
from server.proxy.metrics import ProxyMetrics
from server.proxy.middleware import EdgeMiddleware
from server.proxy.openapi import OPENAPI_PATH, build_openapi
from server.proxy.pages import page_routes
from server.proxy.routes import WebAPI
from server.proxy.settings import ProxySettings
from server.proxy.terminal import TERMINAL_PATH, WebTerminals


def create_app(
    settings: ProxySettings,
    auth: AuthGateway,
    *,
    metrics: ProxyMetrics | None = None,
    terminals: WebTerminals | None = None,
) -> Starlette:
    """The web API and the web UI over ``auth``. The caller owns ``auth`` and closes it
    after serving, and serves ``metrics`` where it chooses (a diagnostics address, never
    this app). The browser terminal is there when ``terminals`` is given (a proxy with
    an SSH router to share)."""
    metrics = metrics or ProxyMetrics()
    api = WebAPI(settings, auth, metrics)
    admin = AdminAPI(api)
    document = build_openapi(settings.server_version)

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    routes = [
        Route("/v1/webapi/ping", api.ping, methods=["GET"]),
        Route("/v1/webapi/login", api.login, methods=["POST"]),
        Route("/v1/webapi/session", api.logout, methods=["DELETE"]),
        Route("/v1/webapi/invite", api.accept_invite, methods=["POST"]),
        Route("/v1/webapi/me", api.me, methods=["GET"]),
        Route("/v1/webapi/nodes", api.nodes, methods=["GET"]),
        Route("/v1/webapi/audit/events", api.audit_events, methods=["GET"]),
        Route("/v1/webapi/certs", api.certs, methods=["POST"]),
        Route("/v1/webapi/spiffe/bundle", api.spiffe_bundle, methods=["GET"]),
        Route("/v1/webapi/spiffe/certs", api.spiffe_certs, methods=["POST"]),
        Route("/v1/webapi/recordings", api.recordings, methods=["GET"]),
        Route("/v1/webapi/sessions/{session_id}/recording", api.session_recording, methods=["GET"]),
        Route("/v1/webapi/users", admin.users, methods=["GET"]),
        Route("/v1/webapi/users", admin.add_user, methods=["POST"]),
        Route("/v1/webapi/users/{name}", admin.remove_user, methods=["DELETE"]),
        Route("/v1/webapi/users/{name}/reset", admin.reset_user, methods=["POST"]),
        Route("/v1/webapi/tokens", admin.tokens, methods=["GET"]),
        Route("/v1/webapi/tokens", admin.add_token, methods=["POST"]),
        Route("/v1/webapi/tokens/{name}", admin.remove_token, methods=["DELETE"]),
        Route("/v1/webapi/roles", admin.roles, methods=["GET"]),
        Route("/v1/webapi/roles/{name}", admin.put_role, methods=["PUT"]),
        Route(OPENAPI_PATH, openapi, methods=["GET"]),
        Route("/healthz", api.healthz, methods=["GET"]),
        Route("/readyz", api.readyz, methods=["GET"]),
        *page_routes(),
    ]
    if terminals is not None:
        routes.append(WebSocketRoute(TERMINAL_PATH, terminals.serve))
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(EdgeMiddleware, metrics=metrics, body_timeout=settings.request_body_timeout)
        ],
        exception_handlers={
            MeziteError: handle_mezite_error,
            HTTPException: handle_http_exception,
        },
    )
    # Exact paths only: a redirect from "/x/" to "/x" would be a non-JSON answer, and
    # DESIGN.md asks for exact matching everywhere.
    app.router.redirect_slashes = False
    app.state.metrics = metrics
    app.state.settings = settings
    return app
