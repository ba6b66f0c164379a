"""The auth service's Prometheus metrics, on their own registry, served on the
diagnostics address (``[auth] diag_addr``, see server/diagnostics.py) when one is
configured."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class AuthMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.logins = Counter(
            "mezite_auth_logins_total", "Password logins by result.", ["result"],
            registry=self.registry,
        )  # fmt: skip
        self.certificates = Counter(
            "mezite_auth_certificates_issued_total", "Certificates signed, by type.", ["type"],
            registry=self.registry,
        )  # fmt: skip
        self.sessions = Gauge(
            "mezite_auth_sessions_created_minus_logged_out",
            "Login sessions created minus sessions logged out since start (expired sessions "
            "are not subtracted: not a live count).",
            registry=self.registry,
        )
        self.online_nodes = Gauge(
            "mezite_auth_online_nodes", "Nodes with a live heartbeat.", registry=self.registry
        )
        self.rpc_seconds = Histogram(
            "mezite_auth_rpc_seconds", "RPC handling time by method and status.",
            ["method", "status"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )  # fmt: skip
