"""ORCA (gRFC A51): a backend reports its load, per call in the ``endpoint-load-metrics-bin``
trailer and out of band on ``xds.service.orca.v3.OpenRcaService/StreamCoreMetrics``.

Server side::

    recorder = ServerMetricsRecorder()
    enable_call_metrics(server, recorder)           # every call's trailer carries it
    server.add_service(OrcaService(recorder, min_report_interval=1.0))
    recorder.set_cpu_utilization(0.42); recorder.set_named_utilization("busy", 0.5)

    # in a handler, what this call cost (wins over the server's figures in its trailer):
    call_metrics_recorder(context).set_request_cost("rows", 12)

The client side is the channel's: each subchannel keeps the latest report it received
(``Subchannel.load_report``), and :class:`transport.client.OrcaOobWatcher` opens the
out-of-band stream on a channel's READY subchannels.
"""

from transport.orca.metrics import LOAD_REPORT_KEY, ServerMetrics
from transport.orca.per_call import CallMetricsReporting, call_metrics_recorder, enable_call_metrics
from transport.orca.recorder import CallMetricsRecorder, ServerMetricsRecorder
from transport.orca.service import DEFAULT_MIN_REPORT_INTERVAL, STREAM_CORE_METRICS, OrcaService
from transport.orca.v3.orca_load_report_pb2 import OrcaLoadReport
from transport.orca.v3.orca_pb2 import OrcaLoadReportRequest

__all__ = [
    "DEFAULT_MIN_REPORT_INTERVAL",
    "LOAD_REPORT_KEY",
    "STREAM_CORE_METRICS",
    "CallMetricsRecorder",
    "CallMetricsReporting",
    "OrcaLoadReport",
    "OrcaLoadReportRequest",
    "OrcaService",
    "ServerMetrics",
    "ServerMetricsRecorder",
    "call_metrics_recorder",
    "enable_call_metrics",
]
