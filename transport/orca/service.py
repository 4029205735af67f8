"""``xds.service.orca.v3.OpenRcaService``: out-of-band load reports (gRFC A51).

``StreamCoreMetrics(OrcaLoadReportRequest)`` sends the recorder's metrics at once and then
every ``report_interval`` (state of the world each time, changed or not), on a fixed
schedule, until the client cancels (the handler is cancelled with the stream: no task
is left) or :meth:`OrcaService.shutdown` ends every stream with OK, so a graceful stop
does not wait for them. An interval under the service's minimum, or none, is the
minimum (A51: 30 s by default, as in grpc-go and grpc-core; tests and the visualizer
set less). The recorder holds utilization only: request costs are per call, so
``request_cost_names`` selects nothing here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from transport.orca.recorder import ServerMetricsRecorder
from transport.orca.v3.orca_load_report_pb2 import OrcaLoadReport
from transport.orca.v3.orca_pb2 import OrcaLoadReportRequest
from transport.orca.v3.orca_rpcviz import OPEN_RCA_SERVICE_STREAM_CORE_METRICS, OpenRcaServiceServicer
from transport.server import ServicerContext

STREAM_CORE_METRICS = OPEN_RCA_SERVICE_STREAM_CORE_METRICS
#: gRFC A51's default minimum report interval, seconds.
DEFAULT_MIN_REPORT_INTERVAL = 30.0


class OrcaService(OpenRcaServiceServicer):
    """Serves ``recorder``'s metrics out of band: ``server.add_service(OrcaService(recorder))``."""

    def __init__(
        self, recorder: ServerMetricsRecorder, *, min_report_interval: float = DEFAULT_MIN_REPORT_INTERVAL
    ) -> None:
        if not min_report_interval > 0:
            raise ValueError(f"min_report_interval must be > 0 seconds, not {min_report_interval!r}")
        self.recorder = recorder
        self.min_report_interval = min_report_interval
        #: StreamCoreMetrics calls running now, and reports sent in all.
        self.streams = 0
        self.reports_sent = 0
        self._stopping = False
        #: What each running stream waits on until its next report: resolved early to end it.
        self._wakes: set[asyncio.Future[None]] = set()

    def report_interval(self, request: OrcaLoadReportRequest) -> float:
        """The interval a request gets: its own, but never under the minimum (unset = the minimum)."""
        asked = float(request.report_interval.seconds + request.report_interval.nanos / 1e9)
        return max(asked, self.min_report_interval)

    def shutdown(self) -> None:
        """End every stream (OK), now and for streams opened later, until :meth:`resume`."""
        self._stopping = True
        for wake in self._wakes:
            _wake(wake)

    def resume(self) -> None:
        self._stopping = False

    async def StreamCoreMetrics(
        self, request: OrcaLoadReportRequest, context: ServicerContext
    ) -> AsyncIterator[OrcaLoadReport]:
        interval = self.report_interval(request)
        loop = asyncio.get_running_loop()
        self.streams += 1
        try:
            due = loop.time()
            while not self._stopping:
                yield self.recorder.load_report()
                self.reports_sent += 1
                due += interval
                now = loop.time()
                if due < now:  # the client took longer than an interval to read: no burst to catch up
                    due = now + interval
                # a future, not asyncio.timeout: the handler's first steps run before it has a Task
                wake = loop.create_future()
                timer = loop.call_at(due, _wake, wake)
                self._wakes.add(wake)
                try:
                    await wake
                finally:
                    timer.cancel()
                    self._wakes.discard(wake)
        finally:
            self.streams -= 1


def _wake(wake: asyncio.Future[None]) -> None:
    if not wake.done():
        wake.set_result(None)
