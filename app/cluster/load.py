"""A pod's load model: service time on a bounded number of workers.

Each greet holds one worker for ``service_time``; beyond ``workers`` calls
queue. Load is the busy fraction of the workers over a short sliding window,
so a saturated pod reads 100 %. A worker counts as busy from the moment a call
is there for it: a call queued behind busy workers keeps the next free one busy
(the event loop's hand-over from one call to the next is not idle time).
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
        #: What load is measured against (the screenshots freeze it for a still).
        self.clock = clock
        self._slots = asyncio.Semaphore(workers)
        #: (time, busy workers from then on), oldest first: the busy level as a step function.
        self._levels: deque[tuple[float, int]] = deque()
        self._level = 0
        self._running: dict[int, float] = {}
        self._next_token = 0
        self.queued = 0
        self.completed = 0
        #: Multiplies the service time: a slow pod (1 = healthy).
        self.slow_factor = 1.0

    @property
    def running(self) -> int:
        return len(self._running)

    def _changed(self) -> None:
        """Note the busy level (calls there, at most one per worker) when it changes."""
        level = min(self.workers, self.queued + len(self._running))
        if level != self._level:
            self._level = level
            self._levels.append((self.clock(), level))

    async def work(self) -> None:
        """Take a worker (queueing if all are busy) for one service time."""
        self.queued += 1
        self._changed()
        try:
            await self._slots.acquire()
        except BaseException:
            self.queued -= 1
            self._changed()
            raise
        self.queued -= 1
        token = self._next_token
        self._next_token += 1
        self._running[token] = self.clock()
        try:
            await asyncio.sleep(self.service_time * self.slow_factor)
        finally:
            del self._running[token]
            self.completed += 1
            self._slots.release()
            self._changed()

    def load(self) -> float:
        """Busy fraction of all workers over the last ``window`` seconds, 0..1."""
        now = self.clock()
        low = now - self.window
        levels = self._levels
        while len(levels) > 1 and levels[1][0] <= low:
            levels.popleft()  # keep the last change before the window: the level it starts at
        total = 0.0
        for i, (since, level) in enumerate(levels):
            until = levels[i + 1][0] if i + 1 < len(levels) else now
            total += level * max(0.0, until - max(since, low))
        return min(1.0, total / (self.window * self.workers))

    def reset(self) -> None:
        self._levels.clear()
        if self._level:
            self._levels.append((self.clock(), self._level))
        self.completed = 0
