"""ORCA (gRFC A51) on real servers on 127.0.0.1: per-call load reports in the ``endpoint-load-metrics-bin``
trailer (read by grpclib, whose client shows them, and by ours, which keeps each subchannel's latest),
and the out-of-band ``OpenRcaService/StreamCoreMetrics`` stream (read by grpcio and by our watcher)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Iterable
from datetime import timedelta

import grpc
import pytest
from grpclib.client import Channel as GrpclibChannel
from grpclib.const import Cardinality
from grpclib.const import Status as GrpclibStatus
from grpclib.exceptions import GRPCError

from app.greeter.helloworld_pb2 import HelloReply, HelloRequest
from app.greeter.service import SAY_HELLO, Greeter
from tests.helpers import FAST, greet, ipv4_target, served_by, wait_until
from transport import Channel, ConnectivityState, RpcError, Server, ServicerContext, StatusCode, unary_unary
from transport.client import OrcaOobWatcher, parse_load_report
from transport.orca import (
    LOAD_REPORT_KEY,
    STREAM_CORE_METRICS,
    OrcaLoadReport,
    OrcaLoadReportRequest,
    OrcaService,
    ServerMetricsRecorder,
    call_metrics_recorder,
    enable_call_metrics,
)

LOOKUP = "/helloworld.Greeter/Lookup"
#: Out-of-band reports this often in the tests (gRPC's minimum is 30 s; the service lets us set it).
INTERVAL = 0.05


async def _lookup(request: HelloRequest, context: ServicerContext) -> HelloReply:
    """Records what this call cost, overrides the server's CPU figure, and fails when asked to."""
    recorder = call_metrics_recorder(context)
    assert recorder is not None
    recorder.set_request_cost("rows", 12)
    recorder.set_cpu_utilization(0.9)
    if request.name == "missing":
        raise RpcError(StatusCode.NOT_FOUND, "no such row")
    return HelloReply(message="found")


def _recorder(cpu: float, busy: float) -> ServerMetricsRecorder:
    recorder = ServerMetricsRecorder()
    recorder.set_cpu_utilization(cpu)
    recorder.set_memory_utilization(0.5)
    recorder.set_application_utilization(0.6)
    recorder.set_qps(120.5)
    recorder.set_eps(1.5)
    recorder.set_named_utilization("busy", busy)
    return recorder


async def _reporting_server(name: str, recorder: ServerMetricsRecorder) -> tuple[Server, OrcaService]:
    """A Greeter (plus Lookup) reporting ``recorder`` on every call and out of band."""
    server = Server(name=name)
    server.add_service(Greeter())
    server.add_method(LOOKUP, unary_unary(_lookup, HelloRequest.FromString, HelloReply.SerializeToString))
    enable_call_metrics(server, recorder)
    orca = OrcaService(recorder, min_report_interval=INTERVAL)
    server.add_service(orca)
    await server.start()
    return server, orca


Reporting = tuple[Server, ServerMetricsRecorder, OrcaService]


@pytest.fixture
async def reporting() -> AsyncIterator[Reporting]:
    recorder = _recorder(cpu=0.25, busy=0.75)
    server, orca = await _reporting_server("pod-1", recorder)
    yield server, recorder, orca
    await server.stop(grace=0.5)


async def _grpclib_call(channel: GrpclibChannel, path: str, name: str) -> tuple[GrpclibStatus, bytes | str]:
    """One unary call; its status and the raw value of its load-report trailer."""
    status = GrpclibStatus.OK
    async with channel.request(path, Cardinality.UNARY_UNARY, HelloRequest, HelloReply) as stream:
        await stream.send_message(HelloRequest(name=name), end=True)
        try:
            await stream.recv_message()
            await stream.recv_trailing_metadata()
        except GRPCError as exc:
            status = exc.status
        trailers = stream.trailing_metadata
    assert trailers is not None
    return status, trailers[LOAD_REPORT_KEY]


async def test_per_call_reports_read_by_grpclib_parse_as_orca_load_reports(
    reporting: Reporting,
) -> None:
    """Every call's trailers carry the server's metrics; a handler's own win over them and add its
    request cost, on an OK call and on a failed one (Trailers-Only) alike."""
    server, _, _ = reporting
    channel = GrpclibChannel("127.0.0.1", server.port)
    try:
        status, plain = await _grpclib_call(channel, SAY_HELLO, "Ada")
        found_status, found = await _grpclib_call(channel, LOOKUP, "row-1")
        missing_status, missing = await _grpclib_call(channel, LOOKUP, "missing")
    finally:
        channel.close()
    assert (status, found_status, missing_status) == (GrpclibStatus.OK, GrpclibStatus.OK, GrpclibStatus.NOT_FOUND)
    assert isinstance(plain, bytes) and isinstance(found, bytes) and isinstance(missing, bytes)
    report = OrcaLoadReport.FromString(plain)
    assert (report.cpu_utilization, report.mem_utilization, report.application_utilization) == (0.25, 0.5, 0.6)
    assert (report.rps_fractional, report.eps) == (120.5, 1.5)
    assert dict(report.utilization) == {"busy": 0.75}
    assert dict(report.request_cost) == {}
    for raw in (found, missing):
        own = OrcaLoadReport.FromString(raw)
        assert own.cpu_utilization == 0.9  # the call's recorder wins
        assert (own.mem_utilization, own.rps_fractional) == (0.5, 120.5)  # the rest is the server's
        assert dict(own.request_cost) == {"rows": 12.0}
        assert dict(own.utilization) == {"busy": 0.75}


async def test_oob_stream_to_a_grpcio_client_reports_every_interval_and_ends_on_cancel(
    reporting: Reporting,
) -> None:
    """grpcio's client opens StreamCoreMetrics: a report at once, then one per interval, each the state
    of the world (a change shows in the next); on cancel the server's stream and its task end."""
    server, recorder, orca = reporting
    async with grpc.aio.insecure_channel(str(server.address)) as channel:
        stream_core_metrics = channel.unary_stream(
            STREAM_CORE_METRICS,
            request_serializer=OrcaLoadReportRequest.SerializeToString,
            response_deserializer=OrcaLoadReport.FromString,
        )
        call = stream_core_metrics(OrcaLoadReportRequest(report_interval=timedelta(seconds=INTERVAL)), timeout=10)
        first = await call.read()
        assert first.cpu_utilization == 0.25 and dict(first.utilization) == {"busy": 0.75}
        recorder.set_named_utilization("busy", 0.5)
        for _ in range(20):  # the next report, or (on a slow machine) one after it, has the change
            changed = await call.read()
            if dict(changed.utilization) == {"busy": 0.5}:
                break
        assert dict(changed.utilization) == {"busy": 0.5} and changed.cpu_utilization == 0.25
        assert await call.read() == changed  # unchanged figures are sent again all the same
        assert orca.streams == 1 and orca.reports_sent >= 3
        handler_tasks = [t for t in asyncio.all_tasks() if _runs_a_server_call(t)]
        assert len(handler_tasks) == 1
        call.cancel()
        await wait_until(lambda: orca.streams == 0 and server.stats.calls_in_flight == 0, what="the stream to end")
        await wait_until(lambda: all(t.done() for t in handler_tasks), what="the handler's task to end")
    assert server.stats.calls_by_method[STREAM_CORE_METRICS][StatusCode.CANCELLED] == 1


def _runs_a_server_call(task: asyncio.Task[object]) -> bool:
    code = getattr(task.get_coro(), "cr_code", None)
    return code is not None and code.co_filename.endswith("transport/eager.py")


async def test_shutdown_ends_oob_streams_with_ok_and_a_short_interval_is_raised_to_the_minimum() -> None:
    recorder = _recorder(cpu=0.1, busy=0.2)
    orca = OrcaService(recorder, min_report_interval=30.0)
    assert orca.report_interval(OrcaLoadReportRequest(report_interval=timedelta(seconds=0.001))) == 30.0
    assert orca.report_interval(OrcaLoadReportRequest()) == 30.0  # unset: the minimum
    assert orca.report_interval(OrcaLoadReportRequest(report_interval=timedelta(seconds=45))) == 45.0
    server = Server()
    server.add_service(orca)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(str(server.address)) as channel:
            call = channel.unary_stream(
                STREAM_CORE_METRICS,
                request_serializer=OrcaLoadReportRequest.SerializeToString,
                response_deserializer=OrcaLoadReport.FromString,
            )(OrcaLoadReportRequest(), timeout=10)
            assert (await call.read()).cpu_utilization == 0.1
            orca.shutdown()  # 30 s before the next report: only shutdown ends it now
            assert await call.read() is grpc.aio.EOF
            assert await call.code() == grpc.StatusCode.OK
    finally:
        await server.stop(grace=1)
    assert orca.streams == 0


async def test_our_client_keeps_each_subchannels_latest_report() -> None:
    """round_robin over two pods reporting different load: each subchannel holds its own pod's report."""
    figures = {"pod-1": (0.2, 0.1), "pod-2": (0.8, 0.9)}
    servers = [(await _reporting_server(name, _recorder(cpu, busy)))[0] for name, (cpu, busy) in figures.items()]
    by_address = {str(s.address): s.name for s in servers}
    try:
        async with Channel(ipv4_target(servers), "round_robin", options=FAST) as channel:
            landed = [served_by(await greet(channel)) for _ in range(10)]
            assert sorted(landed) == ["pod-1"] * 5 + ["pod-2"] * 5
            for sc in channel.subchannels:
                report = sc.load_report
                assert report is not None and sc.load_report_at is not None
                cpu, busy = figures[by_address[str(sc.address)]]
                assert (report.cpu_utilization, dict(report.utilization)) == (cpu, {"busy": busy})
                assert (sc.stats.load_reports, sc.stats.load_reports_malformed) == (5, 0)
    finally:
        for server in servers:
            await server.stop(grace=0.5)


class _Trailer:
    """A trailer hook sending whatever ``value`` is: a good report, a malformed one, or nothing."""

    def __init__(self) -> None:
        self.value: bytes | None = None

    def __call__(self, call: ServicerContext) -> Iterable[tuple[bytes, bytes]]:
        return [] if self.value is None else [(LOAD_REPORT_KEY.encode(), self.value)]


async def test_a_malformed_report_is_ignored_and_counted_and_the_call_succeeds() -> None:
    server = Server(name="pod-1")
    server.add_service(Greeter())
    trailer = _Trailer()
    server.add_trailer_hook(trailer)
    await server.start()
    good = base64.b64encode(OrcaLoadReport(cpu_utilization=0.3).SerializeToString())
    try:
        async with Channel(f"127.0.0.1:{server.port}", options=FAST) as channel:
            await greet(channel)
            (sc,) = channel.subchannels
            assert sc.load_report is None and sc.stats.load_reports == 0  # no trailer: nothing parsed
            trailer.value = good
            await greet(channel)
            at = sc.load_report_at
            assert sc.load_report is not None and sc.load_report.cpu_utilization == pytest.approx(0.3)
            for bad in (base64.b64encode(b"\xff\xff\xff"), b"not base64!"):
                trailer.value = bad
                result = await greet(channel)  # OK all the same
                assert result.response.message == "Hello, Ada!"
            assert (sc.stats.load_reports, sc.stats.load_reports_malformed) == (1, 2)
            assert (
                sc.load_report.cpu_utilization == pytest.approx(0.3) and sc.load_report_at == at
            )  # still the last good
            assert channel.stats.calls_succeeded == 4
    finally:
        await server.stop(grace=0.5)


async def test_oob_watcher_records_streamed_reports_per_subchannel_and_stops_on_close(
    reporting: Reporting,
) -> None:
    server, recorder, orca = reporting
    async with Channel(f"127.0.0.1:{server.port}", options=FAST) as channel:
        channel.connect()
        await channel.wait_for_state(ConnectivityState.READY, timeout=5)
        watcher = OrcaOobWatcher(channel, interval=INTERVAL)
        (sc,) = channel.subchannels
        await wait_until(lambda: watcher.reports >= 2, what="two out-of-band reports")
        recorder.set_cpu_utilization(0.55)
        await wait_until(
            lambda: sc.load_report is not None and sc.load_report.cpu_utilization == 0.55, what="the new figure"
        )
        assert channel.stats.calls_started == 0  # no call made: the reports came out of band
        assert (watcher.streams_opened, watcher.watching, orca.streams) == (1, 1, 1)
        watcher.close()
        await wait_until(lambda: orca.streams == 0 and server.stats.calls_in_flight == 0, what="the stream to end")
        assert watcher.watching == 0


async def test_oob_watcher_does_not_ask_again_a_server_without_the_service() -> None:
    server = Server(name="pod-1")
    server.add_service(Greeter())
    await server.start()
    try:
        async with Channel(f"127.0.0.1:{server.port}", options=FAST) as channel:
            channel.connect()
            await channel.wait_for_state(ConnectivityState.READY, timeout=5)
            watcher = OrcaOobWatcher(channel, interval=INTERVAL)
            await wait_until(lambda: watcher.unimplemented == 1 and watcher.watching == 0, what="UNIMPLEMENTED")
            await greet(channel)  # a round trip later: still one stream opened, none retried
            assert watcher.streams_opened == 1
            assert server.stats.calls_by_status[StatusCode.UNIMPLEMENTED] == 1
    finally:
        await server.stop(grace=0.5)


def test_recorders_refuse_figures_out_of_range() -> None:
    recorder = ServerMetricsRecorder()
    for setter, value in [
        (recorder.set_cpu_utilization, -0.1),
        (recorder.set_memory_utilization, 1.5),
        (recorder.set_qps, float("nan")),
        (lambda v: recorder.set_named_utilization("busy", v), 1.01),
    ]:
        with pytest.raises(ValueError, match="must be"):
            setter(value)
    assert recorder.server_metrics().empty and recorder.trailer() is None
    recorder.set_cpu_utilization(1.7)  # past a soft limit: allowed for CPU
    assert recorder.load_report().cpu_utilization == 1.7


def test_parse_load_report_takes_padded_and_unpadded_base64() -> None:
    report = OrcaLoadReport(cpu_utilization=0.5, rps_fractional=10.0, utilization={"busy": 0.25})
    padded = base64.b64encode(report.SerializeToString())
    assert padded.endswith(b"=")
    assert parse_load_report(padded) == report == parse_load_report(padded.rstrip(b"="))
    assert parse_load_report(b"%%%") is None
