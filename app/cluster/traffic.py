"""The traffic generator: one greet("Ada"), a burst of N, a steady rate, or steady users.

Every call it fires ends as exactly one success or one failure with a
status; the counters here are the client's side of the accounting. Calls are
also counted by the channel they were fired on, so after a switch the new
channel's picks are told apart from the old channel's calls still finishing.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from app.commands.histogram import LatencyHistogram
from app.greeter.stub import GreeterStub, server_name
from transport import Channel, RpcError, StatusCode

#: The window the measured call rate is taken over, seconds.
RATE_WINDOW = 1.0


@dataclass(slots=True)
class ChannelCalls:
    """The calls fired on one channel: how many are still in flight, and where its OK ones landed."""

    in_flight: int = 0
    landed: dict[str, int] = field(default_factory=dict)


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
    #: The same calls by the channel they were fired on (the current one, and older ones while
    #: their calls finish).
    channels: dict[Channel, ChannelCalls] = field(default_factory=dict)

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())

    def landed_on(self, channels: Collection[Channel]) -> dict[str, int]:
        """Successful calls fired on ``channels`` (the client's current ones), by the server that answered."""
        landed: dict[str, int] = {}
        for channel in channels:
            for name, n in self.on(channel).landed.items():
                landed[name] = landed.get(name, 0) + n
        return landed

    def on(self, channel: Channel) -> ChannelCalls:
        """The calls fired on ``channel`` (none yet: an empty tally)."""
        return self.channels.get(channel) or ChannelCalls()

    def in_flight_elsewhere(self, channels: Collection[Channel]) -> int:
        """Calls fired on channels other than ``channels`` (before a switch) still in flight."""
        return sum(calls.in_flight for ch, calls in self.channels.items() if ch not in channels)

    def reset(self) -> None:
        """Zero the totals; calls still in flight stay counted as fired."""
        self.fired = self.in_flight
        self.ok = 0
        self.failed = {}
        self.landed = {}
        self.latency = {}
        self.latency_all = LatencyHistogram()
        for calls in self.channels.values():
            calls.landed = {}


class Traffic:
    """Fires greets on whatever channel ``channel()`` returns at that moment; ``current()`` is every
    channel the client runs now (a pool has several: ``channel()`` rotates over them)."""

    def __init__(
        self,
        channel: Callable[[], Channel],
        name: str = "Ada",
        timeout: float = 10.0,
        current: Callable[[], Collection[Channel]] | None = None,
    ) -> None:
        self._channel = channel
        self._current = current or (lambda: (channel(),))
        self.name = name
        self.timeout = timeout
        self.stats = TrafficStats()
        self._tasks: set[asyncio.Task[None]] = set()
        self._steady: asyncio.Task[None] | None = None
        self.rate = 0.0
        #: Closed-loop users running (see :meth:`start_users`), and each one's think time.
        self._users: list[asyncio.Task[None]] = []
        self.think_time = 0.0
        #: When recent calls ended (the last :data:`RATE_WINDOW` seconds): the measured rate.
        self._ended: deque[float] = deque()
        self._idle = asyncio.Event()
        self._idle.set()

    def greet(self) -> asyncio.Task[None]:
        """Fire one greet("Ada")."""
        channel = self._channel()
        stats = self.stats
        stats.fired += 1
        stats.in_flight += 1
        if channel not in stats.channels:
            # a new channel: forget the old ones whose calls have all ended
            current = self._current()
            for old in [ch for ch, calls in stats.channels.items() if not calls.in_flight and ch not in current]:
                del stats.channels[old]
            stats.channels[channel] = ChannelCalls()
        stats.channels[channel].in_flight += 1
        self._idle.clear()
        task = asyncio.get_running_loop().create_task(self._call(channel))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def burst(self, n: int) -> list[asyncio.Task[None]]:
        """Fire ``n`` greets at once."""
        return [self.greet() for _ in range(n)]

    async def _call(self, channel: Channel) -> None:
        stats = self.stats
        calls = stats.channels[channel]
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
            calls.landed[landed] = calls.landed.get(landed, 0) + 1
            histogram = stats.latency.get(landed)
            if histogram is None:
                histogram = stats.latency[landed] = LatencyHistogram()
            histogram.record(loop.time() - started)
        finally:
            now = loop.time()
            stats.latency_all.record(now - started)
            self._ended.append(now)
            while self._ended[0] < now - RATE_WINDOW:
                self._ended.popleft()
            calls.in_flight -= 1
            if not calls.in_flight and channel not in self._current():
                stats.channels.pop(channel, None)  # an old channel's last call
            stats.in_flight -= 1
            if not stats.in_flight:
                self._idle.set()

    # --- steady traffic -----------------------------------------------------

    @property
    def steady(self) -> bool:
        """Steady traffic runs: a rate (:meth:`start_steady`) or users (:meth:`start_users`)."""
        return self._steady is not None or bool(self._users)

    @property
    def users(self) -> int:
        """Closed-loop users running (0 when none)."""
        return len(self._users)

    def calls_per_second(self) -> float:
        """Calls that ended over the last :data:`RATE_WINDOW` seconds, per second (measured)."""
        low = asyncio.get_running_loop().time() - RATE_WINDOW
        while self._ended and self._ended[0] < low:
            self._ended.popleft()
        return len(self._ended) / RATE_WINDOW

    def start_steady(self, rate: float) -> None:
        """Fire ``rate`` calls per second until :meth:`stop_steady` (open loop: above what the
        pods serve, their queues grow until deadlines fail)."""
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        if self._steady is None:
            self._steady = asyncio.get_running_loop().create_task(self._run_steady())

    def start_users(self, users: int, think_time: float) -> None:
        """Run ``users`` users until :meth:`stop_steady`, each greeting back to back: fire, wait
        for the answer, think ``think_time`` seconds, again (a closed loop, as real clients are).

        The rate follows the latency: a saturated pod queues calls and slows its users down, so
        it never holds more than ``users`` calls and every call ends OK."""
        if users < 1 or think_time < 0:
            raise ValueError("users >= 1 and think_time >= 0 are required")
        if self._users:
            return
        self.think_time = think_time
        loop = asyncio.get_running_loop()
        # staggered over one think time, so the users do not fire in lockstep
        self._users = [loop.create_task(self._user(i * think_time / users)) for i in range(users)]

    async def _user(self, delay: float) -> None:
        await asyncio.sleep(delay)
        while True:
            # shielded: stopping the users lets the call in flight finish (it is not cancelled)
            await asyncio.shield(self.greet())
            await asyncio.sleep(self.think_time)

    def stop_steady(self) -> None:
        """Stop the steady rate and the users; calls in flight finish."""
        if self._steady is not None:
            self._steady.cancel()
            self._steady = None
        for user in self._users:
            user.cancel()
        self._users = []

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
