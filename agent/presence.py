"""The node's heartbeat: one long-lived gRPC stream to auth, one message per beat (with
jitter), reconnecting with backoff when the stream breaks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

from proto.backoff import HEARTBEAT, BackoffPolicy, StreamBackoff, jittered
from proto.client import AsyncAuthClient
from proto.v1 import auth_pb2 as pb

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 30.0


class Heartbeat:
    def __init__(
        self,
        client: Callable[[], AsyncAuthClient],
        name: str,
        addr: Callable[[], str],
        interval: float = DEFAULT_INTERVAL,
        policy: BackoffPolicy = HEARTBEAT,
    ) -> None:
        self._client = client
        self._name = name
        self._addr = addr
        self.interval = interval
        self.acks = 0
        self.connected = asyncio.Event()
        self.schedule = StreamBackoff(policy)

    async def _beats(self) -> AsyncIterator[pb.HeartbeatRequest]:
        while True:
            yield pb.HeartbeatRequest(name=self._name, addr=self._addr())
            await asyncio.sleep(jittered(self.interval))

    async def _stream_once(self) -> None:
        client = self._client()
        call = client.rpc.Heartbeat(self._beats())
        async for _ack in call:
            self.acks += 1
            self.schedule.acknowledged()
            self.connected.set()

    async def run(self) -> None:
        while True:
            self.schedule.opened()
            try:
                await self._stream_once()
                why = "ended"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # grpc's AioRpcError and transport errors alike
                why = f"failed ({exc})"
            self.connected.clear()
            delay = self.schedule.ended()
            log.warning("heartbeat stream %s; retrying in %.1fs", why, delay)
            await asyncio.sleep(delay)
