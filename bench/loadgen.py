"""Load generators and statistics.

``open_loop`` sends at a fixed rate whatever the server does and measures each
request's latency from its *scheduled* start, not from when it was actually sent: when
the server (or the generator) falls behind, the waiting counts (no coordinated omission).
``closed_loop`` keeps a fixed number of requests in flight to find the saturated rate."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

Call = Callable[[], Awaitable[object]]
# Told of every request of an open loop: its scheduled start, its completion (both
# loop.time(), i.e. time.monotonic()) and its error, None for a success.
OnDone = Callable[[float, float, BaseException | None], None]


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of ``values``; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class LatencyStats:
    """Latencies in milliseconds."""

    count: int
    errors: int
    p50: float
    p90: float
    p99: float
    max: float
    mean: float
    duration: float
    target_rate: float = 0.0
    achieved_rate: float = 0.0
    max_send_lag_ms: float = 0.0
    first_error: str = ""

    @classmethod
    def of(
        cls, latencies_s: Sequence[float], errors: int, duration: float, **kw: Any
    ) -> LatencyStats:
        ms = [x * 1000 for x in latencies_s]
        return cls(
            count=len(ms),
            errors=errors,
            p50=percentile(ms, 50),
            p90=percentile(ms, 90),
            p99=percentile(ms, 99),
            max=max(ms) if ms else math.nan,
            mean=sum(ms) / len(ms) if ms else math.nan,
            duration=duration,
            achieved_rate=len(ms) / duration if duration else 0.0,
            **kw,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def open_loop(
    call: Call,
    rate: float,
    duration: float,
    call_timeout: float = 10.0,
    *,
    on_done: OnDone | None = None,
    stop: asyncio.Event | None = None,
) -> LatencyStats:
    """``rate`` requests a second for ``duration`` seconds (or until ``stop`` is set);
    latency from schedule. ``on_done`` sees every request, for a timeline."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    errors = 0
    first_error = ""
    max_lag = 0.0
    tasks: set[asyncio.Task[None]] = set()

    async def one(scheduled: float) -> None:
        nonlocal errors, first_error
        try:
            await asyncio.wait_for(call(), call_timeout)
        except Exception as exc:
            errors += 1
            first_error = first_error or f"{type(exc).__name__}: {exc}"[:300]
            if on_done is not None:
                on_done(scheduled, loop.time(), exc)
            return
        latencies.append(loop.time() - scheduled)
        if on_done is not None:
            on_done(scheduled, loop.time(), None)

    start = loop.time() + 0.05
    total = int(rate * duration)
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - loop.time()
        if delay > 0:
            if stop is None:
                await asyncio.sleep(delay)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
        if stop is not None and stop.is_set():
            break
        max_lag = max(max_lag, loop.time() - scheduled)
        task = asyncio.create_task(one(scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=call_timeout + 1)
    elapsed = loop.time() - start
    stats = LatencyStats.of(
        latencies,
        errors,
        elapsed,
        target_rate=rate,
        max_send_lag_ms=max_lag * 1000,
        first_error=first_error,
    )
    return stats


@dataclass
class Throughput:
    ops: int
    errors: int
    seconds: float
    per_second: float
    latency: LatencyStats
    first_error: str = ""

    def as_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["latency"] = self.latency.as_dict()
        return doc


async def closed_loop(
    calls: Sequence[Call], concurrency: int, duration: float, warmup: float = 1.0
) -> Throughput:
    """``concurrency`` workers (spread over ``calls``, e.g. one per channel) call back to
    back; counted after ``warmup`` seconds."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    errors = 0
    first_error = ""
    begin = loop.time() + warmup
    end = begin + duration

    async def worker(call: Call) -> None:
        nonlocal errors, first_error
        while (now := loop.time()) < end:
            try:
                await call()
            except Exception as exc:
                if now >= begin:
                    errors += 1
                    first_error = first_error or f"{type(exc).__name__}: {exc}"[:300]
                continue
            if now >= begin:
                latencies.append(loop.time() - now)

    await asyncio.gather(*(worker(calls[i % len(calls)]) for i in range(concurrency)))
    seconds = loop.time() - begin
    return Throughput(
        ops=len(latencies),
        errors=errors,
        seconds=seconds,
        per_second=len(latencies) / seconds,
        latency=LatencyStats.of(latencies, errors, seconds),
        first_error=first_error,
    )


def timed_loop(fn: Callable[[], object], duration: float) -> LatencyStats:
    """``fn`` back to back in this thread for ``duration`` seconds (raw crypto peers)."""
    latencies: list[float] = []
    end = time.perf_counter() + duration
    start = time.perf_counter()
    while (t0 := time.perf_counter()) < end:
        fn()
        latencies.append(time.perf_counter() - t0)
    return LatencyStats.of(latencies, 0, time.perf_counter() - start)
