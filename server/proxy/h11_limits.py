"""uvicorn's h11 protocol with a deadline on every request head, and a bounded wait
for the rest of a body the answer did not need.

uvicorn bounds the idle time between requests (``timeout_keep_alive``) but not the
time a client takes to send a head once it has started: a client that sends half a
head and stops holds its connection (and a place under ``limit_concurrency``) for
ever. Here a timer runs whenever the connection waits for a head, from the TLS
handshake or from the end of the previous response, and the connection is aborted
when it fires; the head complete, the timer stops. (The body has its own deadline in
the edge middleware, which can still answer 408.)

An answer can also come before the client has sent its whole body: a 413 from the
declared length, a 401 before the body is read. uvicorn then either reads and drops
the rest for as long as the client sends it (keep-alive) or closes the connection at
once, and a client still writing its body gets a reset or a TLS EOF instead of the
answer. So the rest of an unneeded body is read and dropped, up to ``DISCARD_BYTES``
and ``DISCARD_SECONDS``, before the connection is closed or reused; over either bound
the connection ends there."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

DISCARD_BYTES = 16 * 1024 * 1024  # the largest body cap the proxy accepts
DISCARD_SECONDS = 5.0


class _DeferredClose(asyncio.Transport):
    """The TLS transport as uvicorn sees it: a ``close`` while the client is still
    sending its body is the protocol's to carry out once the body is in."""

    def __init__(self, inner: asyncio.Transport, owner: HeadDeadlineH11) -> None:
        super().__init__()
        self.inner = inner
        self._owner = owner
        self.closing = False

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            self._owner.close_requested()

    def is_closing(self) -> bool:
        return self.closing or self.inner.is_closing()

    def abort(self) -> None:
        self.closing = True
        self.inner.abort()

    def write(self, data: Any) -> None:
        self.inner.write(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.inner.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self.inner.pause_reading()

    def resume_reading(self) -> None:
        self.inner.resume_reading()

    def is_reading(self) -> bool:
        return self.inner.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.inner.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.inner.get_protocol()

    def get_write_buffer_size(self) -> int:
        return self.inner.get_write_buffer_size()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.inner.set_write_buffer_limits(high, low)


class HeadDeadlineH11(H11Protocol):
    def __init__(self, *args: Any, head_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timeout = head_timeout
        self._head_timer: asyncio.TimerHandle | None = None
        self._tls: _DeferredClose | None = None
        self._discard_timer: asyncio.TimerHandle | None = None
        self._discarded = 0
        self._close_pending = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._tls = _DeferredClose(transport, self)
        super().connection_made(self._tls)
        self._watch_head()

    def data_received(self, data: bytes) -> None:
        if self._discard_timer is not None:
            self._discarded += len(data)
            if self._discarded > DISCARD_BYTES:
                self._give_up(f"over {DISCARD_BYTES} bytes")
                return
        if self._close_pending:
            self._drop_body(data)
            return
        super().data_received(data)
        self._watch_head()
        self._watch_body()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch_head()
        self._watch_body()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        self._stop_discard_timer()
        super().connection_lost(exc)

    def close_requested(self) -> None:
        """uvicorn closes (``Connection: close``, an error): at once, unless the client
        is still sending a body short enough to wait for."""
        assert self._tls is not None
        if self._body_unread() and self._declared_length() <= DISCARD_BYTES:
            self._close_pending = True
            self._tls.inner.resume_reading()  # uvicorn may have paused it
            self._watch_body()
        else:
            self._tls.inner.close()

    def _body_unread(self) -> bool:
        cycle = self.cycle
        answered = cycle is not None and cycle.response_complete
        return answered and self.conn.their_state is h11.SEND_BODY

    def _declared_length(self) -> int:
        for name, value in self.headers:
            if name == b"content-length" and value.isdigit():
                return int(value)
        return 0  # chunked: bounded as it arrives

    def _drop_body(self, data: bytes) -> None:
        assert self._tls is not None
        try:
            self.conn.receive_data(data)
            while self.conn.their_state is h11.SEND_BODY:
                if self.conn.next_event() is h11.NEED_DATA:
                    return
        except h11.RemoteProtocolError:
            self._tls.abort()
            return
        self._stop_discard_timer()
        self._tls.inner.close()

    def _watch_body(self) -> None:
        if not self._body_unread():
            self._stop_discard_timer()
        elif self._discard_timer is None:
            self._discarded = 0
            self._discard_timer = self.loop.call_later(
                DISCARD_SECONDS, self._give_up, f"not over within {DISCARD_SECONDS:g}s"
            )

    def _stop_discard_timer(self) -> None:
        if self._discard_timer is not None:
            self._discard_timer.cancel()
            self._discard_timer = None

    def _give_up(self, what: str) -> None:
        self._discard_timer = None
        log.debug("unneeded body from %s %s: closing", self.client, what)
        assert self._tls is not None
        self._tls.abort()

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
