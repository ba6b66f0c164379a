"""The proxy service's HTTPS web API (``/v1/webapi/``): a Starlette app in front of the
auth service, served by uvicorn. SSH routing lives beside it in ``server.proxy.ssh*``."""

from server.proxy.app import create_app
from server.proxy.gateway import AuthGateway, GrpcAuthGateway
from server.proxy.metrics import ProxyMetrics
from server.proxy.settings import ProxySettings
from server.proxy.webserver import WebServerHandle, serve_web

__all__ = [
    "AuthGateway",
    "GrpcAuthGateway",
    "ProxyMetrics",
    "ProxySettings",
    "WebServerHandle",
    "create_app",
    "serve_web",
]
