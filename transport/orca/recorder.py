"""Where a server records its metrics: machine-wide (:class:`ServerMetricsRecorder`) or per call
(:class:`CallMetricsRecorder`), as gRFC A51 and grpc-go's ``orca`` package name them.

Every figure starts unset; a set one stays until set again or deleted. A value out of
its range is a ValueError (gRPC's recorders drop it with a log line; here the caller
hears of it). Single-threaded like the rest of the transport: no locks.
"""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

from transport.orca.metrics import LOAD_REPORT_KEY, ServerMetrics, checked
from transport.orca.v3.orca_load_report_pb2 import OrcaLoadReport

_KEY = LOAD_REPORT_KEY.encode("ascii")


class ServerMetricsRecorder:
    """Machine-wide metrics: read by the out-of-band service and, when the server reports per
    call (:func:`~transport.orca.enable_call_metrics`), put in every call's trailer."""

    def __init__(self) -> None:
        self._metrics = ServerMetrics()
        #: The trailer of the current metrics, built on first use after a change.
        self._trailer: tuple[bytes, bytes] | None = None
        #: Bumped by every change (a reader can tell whether anything changed since it last looked).
        self.generation = 0

    def server_metrics(self) -> ServerMetrics:
        """What is recorded now (an immutable value)."""
        return self._metrics

    def load_report(self) -> OrcaLoadReport:
        return self._metrics.to_load_report()

    def trailer(self) -> tuple[bytes, bytes] | None:
        """The ``endpoint-load-metrics-bin`` header pair of what is recorded, None when nothing is.

        Built once per change, so a server reporting on every call serializes once per sample."""
        if self._trailer is None and not self._metrics.empty:
            self._trailer = encode_trailer(self._metrics)
        return self._trailer

    def _update(self, **changes: Any) -> None:
        self._metrics = replace(self._metrics, **changes)
        self._trailer = None
        self.generation += 1

    def _with(self, attribute: str, name: str, value: float | None) -> None:
        values = dict(getattr(self._metrics, attribute))
        if value is None:
            if values.pop(name, None) is None:
                return
        else:
            values[name] = value
        self._update(**{attribute: values})

    # --- gRFC A51's setters (grpc-go's names, in Python's case) -------------

    def set_cpu_utilization(self, value: float) -> None:
        self._update(cpu_utilization=checked("CPU utilization", value))

    def delete_cpu_utilization(self) -> None:
        self._update(cpu_utilization=None)

    def set_memory_utilization(self, value: float) -> None:
        self._update(mem_utilization=checked("memory utilization", value, at_most_one=True))

    def delete_memory_utilization(self) -> None:
        self._update(mem_utilization=None)

    def set_application_utilization(self, value: float) -> None:
        self._update(application_utilization=checked("application utilization", value))

    def delete_application_utilization(self) -> None:
        self._update(application_utilization=None)

    def set_qps(self, value: float) -> None:
        """Requests per second, sent as ``rps_fractional``."""
        self._update(qps=checked("QPS", value))

    def delete_qps(self) -> None:
        self._update(qps=None)

    def set_eps(self, value: float) -> None:
        self._update(eps=checked("EPS", value))

    def delete_eps(self) -> None:
        self._update(eps=None)

    def set_named_utilization(self, name: str, value: float) -> None:
        """One entry of the report's ``utilization`` map, 0..1 (e.g. ``busy``)."""
        self._with("utilization", name, checked(f"utilization {name!r}", value, at_most_one=True))

    def delete_named_utilization(self, name: str) -> None:
        self._with("utilization", name, None)


class CallMetricsRecorder(ServerMetricsRecorder):
    """One call's metrics, written by its handler (:func:`~transport.orca.call_metrics_recorder`);
    what it sets wins over the server's recorder in that call's trailer."""

    def set_request_cost(self, name: str, value: float) -> None:
        """What this request cost, by name (an absolute figure, e.g. bytes read)."""
        self._with("request_cost", name, float(value))

    def delete_request_cost(self, name: str) -> None:
        self._with("request_cost", name, None)

    def set_named_metric(self, name: str, value: float) -> None:
        self._with("named_metrics", name, float(value))

    def delete_named_metric(self, name: str) -> None:
        self._with("named_metrics", name, None)


def encode_trailer(metrics: ServerMetrics) -> tuple[bytes, bytes]:
    """``metrics`` as the header pair of a per-call report (base64 unpadded, as our metadata sends ``-bin``)."""
    return _KEY, base64.b64encode(metrics.to_load_report().SerializeToString()).rstrip(b"=")
