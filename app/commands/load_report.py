"""What ``rpcviz serve`` reports through ORCA (gRFC A51), sampled on a timer.

Every interval it puts on the server's :class:`~transport.orca.ServerMetricsRecorder`:

- ``cpu_utilization``: this process's CPU time (``time.process_time``, every thread)
  over the wall time since the last sample: a fraction of one core, so a busy
  single-threaded server reads close to 1.0;
- ``rps_fractional`` and ``eps``: calls (and non-OK calls) its server finished per second;
- ``utilization["busy"]``, with a load model (``--service-time``): the workers' busy
  fraction over its window, the figure the visualizer's pod meters show.

Nothing is reported before the first interval has passed. A timer, not a Task:
stopping it leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from app.cluster.load import LoadModel
from transport.orca import ServerMetricsRecorder
from transport.server import ServerStats
from transport.status import StatusCode

BUSY = "busy"


class LoadSampler:
    def __init__(
        self,
        recorder: ServerMetricsRecorder,
        stats: ServerStats,
        load_model: LoadModel | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        cpu_clock: Callable[[], float] = time.process_time,
    ) -> None:
        self.recorder = recorder
        self.stats = stats
        self.load_model = load_model
        self._clock = clock
        self._cpu_clock = cpu_clock
        self._timer: asyncio.TimerHandle | None = None
        self._last = self._reading()

    def _reading(self) -> tuple[float, float, int, int]:
        """(wall, cpu, calls finished, calls finished OK) now."""
        stats = self.stats
        return self._clock(), self._cpu_clock(), stats.calls_served, stats.calls_by_status[StatusCode.OK]

    def sample(self) -> None:
        """Record the figures since the last sample (a period of no time changes nothing)."""
        now = self._reading()
        wall, cpu, calls, ok = now
        last_wall, last_cpu, last_calls, last_ok = self._last
        elapsed = wall - last_wall
        if elapsed <= 0:
            return
        self._last = now
        recorder = self.recorder
        recorder.set_cpu_utilization(max(0.0, cpu - last_cpu) / elapsed)
        recorder.set_qps(max(0, calls - last_calls) / elapsed)
        recorder.set_eps(max(0, (calls - ok) - (last_calls - last_ok)) / elapsed)
        if self.load_model is not None:
            recorder.set_named_utilization(BUSY, self.load_model.load())

    def start(self, interval: float) -> None:
        """Sample every ``interval`` seconds from now on."""
        self.stop()
        self._last = self._reading()
        loop = asyncio.get_running_loop()

        def tick() -> None:
            self.sample()
            self._timer = loop.call_later(interval, tick)

        self._timer = loop.call_later(interval, tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
