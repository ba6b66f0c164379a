"""Prometheus metrics of the proxy's web API.

Each app gets its own registry rather than prometheus_client's global one: config and
state are passed explicitly here, and two proxies in one process (tests, or a future
multi-listener setup) must not share or double-register series. Label values are all
from closed sets (route templates, not paths; error class names, not messages) so that
no request can create new series.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LOGIN_RESULTS = ("success", "denied", "error")
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_RPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0)


class ProxyMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.logins = Counter(
            "mezite_proxy_logins",
            "Password logins through this proxy, by result "
            "(denied: auth refused the credentials; error: any other failure).",
            ["result"],
            registry=self.registry,
        )
        for result in LOGIN_RESULTS:
            self.logins.labels(result=result)
        self.certificates_issued = Counter(
            "mezite_proxy_certificates_issued",
            "SSH user certificates issued through this proxy.",
            registry=self.registry,
        )
        self.requests = Counter(
            "mezite_proxy_http_requests",
            "HTTP requests by route template, method and response status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.upstream_seconds = Histogram(
            "mezite_proxy_upstream_rpc_seconds",
            "Latency of calls to the auth service, by RPC and outcome (ok, or the error class).",
            ["rpc", "outcome"],
            buckets=_RPC_BUCKETS,
            registry=self.registry,
        )
        # Named for what it is: this proxy cannot see sessions that expire, that other
        # proxies or the CLI end, or that a restart forgot.
        self.sessions_created_minus_logged_out = Gauge(
            "mezite_proxy_sessions_created_minus_logged_out",
            "Sessions created by logins through this proxy minus sessions logged out "
            "through it since it started; not a count of live sessions.",
            registry=self.registry,
        )

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    @staticmethod
    def method_label(method: str) -> str:
        return method if method in KNOWN_METHODS else "other"
