"""uvicorn's h11 protocol with a deadline on every request head.

uvicorn bounds the idle time between requests (``timeout_keep_alive``) but not the
time a client takes to send a head once it has started: a client that sends half a
head and stops holds its connection (and a place under ``limit_concurrency``) for
ever. Here a timer runs whenever the connection waits for a head, from the TLS
handshake or from the end of the previous response, and the connection is aborted
when it fires; the head complete, the timer stops. (The body has its own deadline in
the edge middleware, which can still answer 408.)"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)


class HeadDeadlineH11(H11Protocol):
    def __init__(self, *args: Any, head_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timeout = head_timeout
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_head()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def _watch_head(self) -> None:
        waiting = self.conn.their_state is h11.IDLE and not self.transport.is_closing()
        if not waiting:
            self._stop_head_timer()
        elif self._head_timer is None:
            self._head_timer = self.loop.call_later(self._head_timeout, self._head_expired)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_expired(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            log.debug("no request head from %s within %.0fs: closing", self.client,
                      self._head_timeout)  # fmt: skip
            # Abort, not close: a TLS close would wait for the peer's close_notify.
            self.transport.abort()
