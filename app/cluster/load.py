"""A pod's load model: service time on a bounded number of workers.

Each greet holds one worker for ``service_time``; beyond ``workers`` calls
queue. Load is the busy fraction of the workers over a short sliding window,
so a saturated pod reads 100 %.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable


class LoadModel:
    def __init__(
        self,
        service_time: float = 0.02,
        workers: int = 4,
        window: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if service_time < 0 or workers < 1 or window <= 0:
            raise ValueError("service_time >= 0, workers >= 1 and window > 0 are required")
        self.service_time = service_time
        self.workers = workers
        self.window = window
        self._clock = clock
        self._slots = asyncio.Semaphore(workers)
        self._busy: deque[tuple[float, float]] = deque()
        self._running: dict[int, float] = {}
        self._next_token = 0
        self.queued = 0
        self.completed = 0
        #: Multiplies the service time: a slow pod (1 = healthy).
        self.slow_factor = 1.0

    @property
    def running(self) -> int:
        return len(self._running)

    async def work(self) -> None:
        """Take a worker (queueing if all are busy) for one service time."""
        self.queued += 1
        try:
            await self._slots.acquire()
        finally:
            self.queued -= 1
        token = self._next_token
        self._next_token += 1
        self._running[token] = self._clock()
        try:
            await asyncio.sleep(self.service_time * self.slow_factor)
        finally:
            start = self._running.pop(token)
            self._busy.append((start, self._clock()))
            self.completed += 1
            self._slots.release()

    def load(self) -> float:
        """Busy fraction of all workers over the last ``window`` seconds, 0..1."""
        now = self._clock()
        low = now - self.window
        busy = self._busy
        while busy and busy[0][1] <= low:
            busy.popleft()
        total = sum(end - max(start, low) for start, end in busy)
        total += sum(now - max(start, low) for start in self._running.values())
        return min(1.0, total / (self.window * self.workers))

    def reset(self) -> None:
        self._busy.clear()
        self.completed = 0
