"""The diagnostics listener: Prometheus metrics over plain HTTP on an address of its
own (``[auth] diag_addr``, ``[proxy] diag_listen_addr``), never on a public port. Bind it to
loopback or a private network: the counters say who logs in how often."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from proto.addr import HostPort, listen_errors

log = logging.getLogger(__name__)


@dataclass
class DiagnosticsServer:
    """A running metrics listener; ``port`` is the port really bound (port 0 picks)."""

    host: str
    port: int
    _server: Any = field(repr=False)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def serve_metrics(registry: CollectorRegistry, addr: HostPort, what: str) -> DiagnosticsServer:
    """Serve ``registry`` at ``http://addr/metrics`` from a thread of its own until
    ``close()``. A port that cannot be bound is one ConnectionProblem naming it."""
    from prometheus_client import start_http_server

    with listen_errors(addr):
        server, _thread = start_http_server(addr.port, addr.host, registry=registry)
    port = int(server.server_port)
    log.info("%s diagnostics (Prometheus metrics) on http://%s:%d/metrics", what, addr.host, port)
    return DiagnosticsServer(addr.host, port, server)
