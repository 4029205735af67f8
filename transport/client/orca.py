"""The client side of ORCA (gRFC A51): each subchannel keeps the latest load report its server sent.

Per call: a finished call's trailers (OK or not, Trailers-Only included) may carry
``endpoint-load-metrics-bin``; :func:`note_load_report` parses it once and puts it on the
subchannel (``load_report``, ``load_report_at``). A value that does not parse is ignored
and counted (``stats.load_reports_malformed``): a call never fails for its report. The
unary hot path pays one length check when the trailers hold nothing but the status, and a
bytes comparison when a report is the same as the last (a server's figures change per
sample, not per call).

Out of band: :class:`OrcaOobWatcher` opens ``StreamCoreMetrics`` on each READY
subchannel of a channel and records what it streams the same way.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from google.protobuf.message import DecodeError

from transport.client.backoff import BackoffConfig, ExponentialBackoff
from transport.client.connection import StreamNotProcessed
from transport.client.outcome import stream_error
from transport.connectivity import ConnectivityState
from transport.http2.stream import Stream, StreamReset
from transport.orca.metrics import LOAD_REPORT_KEY
from transport.orca.service import STREAM_CORE_METRICS
from transport.orca.v3.orca_load_report_pb2 import OrcaLoadReport
from transport.orca.v3.orca_pb2 import OrcaLoadReportRequest
from transport.status import StatusCode
from transport.wire import encode_message

if TYPE_CHECKING:
    from transport.client.channel import Channel
    from transport.client.connection import ClientConnection
    from transport.client.subchannel import Subchannel

log = logging.getLogger(__name__)

_KEY = LOAD_REPORT_KEY.encode("ascii")


def parse_load_report(value: bytes) -> OrcaLoadReport | None:
    """A trailer's value (base64, padded or not) as a report; None if it is not one."""
    try:
        report: OrcaLoadReport = OrcaLoadReport.FromString(
            base64.b64decode(value + b"=" * (-len(value) % 4), validate=True)
        )
    except (binascii.Error, ValueError, DecodeError):
        return None
    return report


def note_load_report(subchannel: Subchannel, block: list[tuple[bytes, bytes]], loop: asyncio.AbstractEventLoop) -> None:
    """Record the report a finished call's trailers (or Trailers-Only headers) carry, if any."""
    for name, value in block:
        if name == _KEY:
            report = subchannel.load_report if value == subchannel.load_report_wire else parse_load_report(value)
            if report is None:
                subchannel.stats.load_reports_malformed += 1
            else:
                subchannel.record_load_report(report, loop.time(), value)
            return


class OrcaOobWatcher:
    """Out-of-band load reports (gRFC A51) on every READY subchannel of ``channel``.

    Each connection gets one ``StreamCoreMetrics`` stream asking for ``interval`` (the server may
    enforce a larger one); every report lands on the subchannel as per-call ones do. The stream
    ends with its connection (GOAWAY, loss, shutdown) or :meth:`close`. UNIMPLEMENTED means the
    server has no ORCA service: not asked again on that connection; any other end is retried
    after a backoff, reset by each report received.
    """

    def __init__(self, channel: Channel, interval: float = 1.0, *, backoff: BackoffConfig | None = None) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be > 0 seconds, not {interval!r}")
        self.channel = channel
        self.interval = interval
        self._backoff_config = backoff or channel.options.backoff
        self._watches: dict[Subchannel, tuple[ClientConnection, asyncio.Task[None]]] = {}
        self._closed = False
        #: Reports received, streams opened, and connections whose server answered UNIMPLEMENTED.
        self.reports = 0
        self.streams_opened = 0
        self.unimplemented = 0
        channel.add_listener(self._on_channel_event)
        for subchannel in list(channel.subchannels):
            self._check(subchannel)

    @property
    def watching(self) -> int:
        """Subchannels with a stream open (or being reopened) now."""
        return len(self._watches)

    def close(self) -> None:
        """Cancel every stream; the watcher stays off."""
        self._closed = True
        for _, task in self._watches.values():
            task.cancel()
        self._watches.clear()

    def _on_channel_event(self, channel: Channel, kind: str, data: Any) -> None:
        if kind == "subchannel_state" and not self._closed:
            self._check(data[0])

    def _check(self, subchannel: Subchannel) -> None:
        conn = subchannel.connection
        watch = self._watches.get(subchannel)
        if watch is not None and watch[0] is conn:
            return
        if watch is not None:
            del self._watches[subchannel]
            watch[1].cancel()
        if subchannel.state is ConnectivityState.READY and conn is not None:
            task = asyncio.get_running_loop().create_task(self._watch(subchannel, conn))
            task.add_done_callback(_retrieve)
            self._watches[subchannel] = (conn, task)

    async def _watch(self, subchannel: Subchannel, conn: ClientConnection) -> None:
        backoff = ExponentialBackoff(self._backoff_config)
        request = OrcaLoadReportRequest(report_interval=timedelta(seconds=self.interval))
        message = encode_message(request.SerializeToString())
        loop = asyncio.get_running_loop()
        try:
            while subchannel.connection is conn and conn.usable:
                try:
                    stream = conn.open_stream(conn.request_headers(STREAM_CORE_METRICS.encode(), [], None), message)
                except StreamNotProcessed:
                    return  # the connection is going away: its successor gets a watch of its own
                self.streams_opened += 1
                try:
                    if not stream.local_ended:
                        await stream.send_data(message, end_stream=True)
                    while (data := await stream.recv_message()) is not None:
                        self._received(subchannel, data, loop)
                        backoff.reset()
                except StreamReset:
                    pass
                finally:
                    conn.forget(stream)
                if _status(stream) is StatusCode.UNIMPLEMENTED:
                    self.unimplemented += 1
                    log.error("%s has no ORCA service (UNIMPLEMENTED): no out-of-band load reports", subchannel.address)
                    return
                await asyncio.sleep(backoff.next_delay())
        finally:
            watch = self._watches.get(subchannel)
            if watch is not None and watch[1] is asyncio.current_task():
                del self._watches[subchannel]

    def _received(self, subchannel: Subchannel, data: bytes, loop: asyncio.AbstractEventLoop) -> None:
        try:
            report = OrcaLoadReport.FromString(data)
        except DecodeError:
            subchannel.stats.load_reports_malformed += 1
            return
        self.reports += 1
        subchannel.record_load_report(report, loop.time())


def _status(stream: Stream) -> StatusCode:
    error = stream_error(stream)
    return StatusCode.OK if error is None else error.code


def _retrieve(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("the ORCA out-of-band watch failed: %s", exc)
