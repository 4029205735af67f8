"""The traffic generator: one greet("Ada"), a burst of N, or a steady rate.

Every call it fires ends as exactly one success or one failure with a
status; the counters here are the client's side of the accounting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from app.commands.histogram import LatencyHistogram
from app.greeter.stub import GreeterStub, server_name
from transport import Channel, RpcError, StatusCode


@dataclass(slots=True)
class TrafficStats:
    fired: int = 0
    ok: int = 0
    in_flight: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    #: Successful calls by the server that answered (its reported name).
    landed: dict[str, int] = field(default_factory=dict)
    #: Client-side latency of successful calls by the server that answered, and of every call
    #: (fixed-size histograms: memory does not grow with the number of calls).
    latency: dict[str, LatencyHistogram] = field(default_factory=dict)
    latency_all: LatencyHistogram = field(default_factory=LatencyHistogram)

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())

    def reset(self) -> None:
        """Zero the totals; calls still in flight stay counted as fired."""
        self.fired = self.in_flight
        self.ok = 0
        self.failed = {}
        self.landed = {}
        self.latency = {}
        self.latency_all = LatencyHistogram()


class Traffic:
    """Fires greets on whatever channel ``channel()`` returns at that moment."""

    def __init__(self, channel: Callable[[], Channel], name: str = "Ada", timeout: float = 10.0) -> None:
        self._channel = channel
        self.name = name
        self.timeout = timeout
        self.stats = TrafficStats()
        self._tasks: set[asyncio.Task[None]] = set()
        self._steady: asyncio.Task[None] | None = None
        self.rate = 0.0
        self._idle = asyncio.Event()
        self._idle.set()

    def greet(self) -> asyncio.Task[None]:
        """Fire one greet("Ada")."""
        self.stats.fired += 1
        self.stats.in_flight += 1
        self._idle.clear()
        task = asyncio.get_running_loop().create_task(self._call(self._channel()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def burst(self, n: int) -> list[asyncio.Task[None]]:
        """Fire ``n`` greets at once."""
        return [self.greet() for _ in range(n)]

    async def _call(self, channel: Channel) -> None:
        stats = self.stats
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            result = await GreeterStub(channel).say_hello(self.name, timeout=self.timeout)
        except RpcError as exc:
            stats.failed[exc.code.name] = stats.failed.get(exc.code.name, 0) + 1
        except asyncio.CancelledError:
            stats.failed[StatusCode.CANCELLED.name] = stats.failed.get(StatusCode.CANCELLED.name, 0) + 1
            raise
        else:
            stats.ok += 1
            landed = server_name(result) or str(result.address)
            stats.landed[landed] = stats.landed.get(landed, 0) + 1
            histogram = stats.latency.get(landed)
            if histogram is None:
                histogram = stats.latency[landed] = LatencyHistogram()
            histogram.record(loop.time() - started)
        finally:
            stats.latency_all.record(loop.time() - started)
            stats.in_flight -= 1
            if not stats.in_flight:
                self._idle.set()

    # --- steady traffic -----------------------------------------------------

    @property
    def steady(self) -> bool:
        return self._steady is not None

    def start_steady(self, rate: float) -> None:
        """Fire ``rate`` calls per second until :meth:`stop_steady`."""
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        if self._steady is None:
            self._steady = asyncio.get_running_loop().create_task(self._run_steady())

    def stop_steady(self) -> None:
        if self._steady is not None:
            self._steady.cancel()
            self._steady = None

    async def _run_steady(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            now = loop.time()
            # Fire what is due (catching up after a slow turn, at most one second's worth).
            due = min(int((now - next_at) * self.rate) + 1, max(1, int(self.rate)))
            for _ in range(due):
                self.greet()
            next_at = max(next_at + due / self.rate, now - 1.0)
            await asyncio.sleep(max(0.0, next_at - loop.time()))

    # --- lifecycle ------------------------------------------------------------

    async def drain(self, timeout: float | None = None) -> None:
        """Wait until every fired call has ended."""
        async with asyncio.timeout(timeout):
            await self._idle.wait()

    async def cancel(self) -> int:
        """Stop steady traffic and cancel every call in flight (each ends as CANCELLED); how many were."""
        self.stop_steady()
        tasks = [task for task in self._tasks if not task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return len(tasks)

    async def stop(self) -> None:
        """Stop steady traffic and wait for the calls in flight."""
        self.stop_steady()
        await self.drain(self.timeout + 1)
