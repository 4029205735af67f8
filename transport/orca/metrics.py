"""Backend metrics as values: what a recorder holds, and the ``OrcaLoadReport`` that carries them.

``None`` means unset (grpc-go uses -1): an unset figure is left out of the report, so
a client can tell "not reported" from 0 only by its absence (proto3 doubles have no
presence; a 0 on the wire reads as unset, as in every ORCA implementation).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from transport.orca.v3.orca_load_report_pb2 import OrcaLoadReport

#: The trailer a per-call report travels in (gRFC A51): a serialized OrcaLoadReport, base64 on the wire.
LOAD_REPORT_KEY = "endpoint-load-metrics-bin"


@dataclass(frozen=True, slots=True)
class ServerMetrics:
    """One set of backend metrics (grpc-go's ``orca.ServerMetrics``); never mutated, replaced."""

    #: Fraction of the CPU in use, >= 0 (above 1 past a soft limit).
    cpu_utilization: float | None = None
    #: Fraction of the memory in use, 0..1.
    mem_utilization: float | None = None
    #: The application's own utilization, >= 0.
    application_utilization: float | None = None
    #: Requests per second (``rps_fractional``), >= 0.
    qps: float | None = None
    #: Errors per second, >= 0.
    eps: float | None = None
    #: Named utilizations, each 0..1.
    utilization: Mapping[str, float] = field(default_factory=dict)
    #: Per-request costs (per call only, never out of band).
    request_cost: Mapping[str, float] = field(default_factory=dict)
    #: Opaque application metrics (per call only).
    named_metrics: Mapping[str, float] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """Nothing is recorded: no report to send."""
        return (
            self.cpu_utilization is None
            and self.mem_utilization is None
            and self.application_utilization is None
            and self.qps is None
            and self.eps is None
            and not self.utilization
            and not self.request_cost
            and not self.named_metrics
        )

    def merged(self, over: ServerMetrics) -> ServerMetrics:
        """These metrics with what ``over`` sets on top (gRFC A51: the per-call recorder wins)."""
        return ServerMetrics(
            cpu_utilization=_first(over.cpu_utilization, self.cpu_utilization),
            mem_utilization=_first(over.mem_utilization, self.mem_utilization),
            application_utilization=_first(over.application_utilization, self.application_utilization),
            qps=_first(over.qps, self.qps),
            eps=_first(over.eps, self.eps),
            utilization={**self.utilization, **over.utilization},
            request_cost={**self.request_cost, **over.request_cost},
            named_metrics={**self.named_metrics, **over.named_metrics},
        )

    def to_load_report(self) -> OrcaLoadReport:
        report = OrcaLoadReport(
            utilization=self.utilization, request_cost=self.request_cost, named_metrics=self.named_metrics
        )
        if self.cpu_utilization is not None:
            report.cpu_utilization = self.cpu_utilization
        if self.mem_utilization is not None:
            report.mem_utilization = self.mem_utilization
        if self.application_utilization is not None:
            report.application_utilization = self.application_utilization
        if self.qps is not None:
            report.rps_fractional = self.qps
        if self.eps is not None:
            report.eps = self.eps
        return report


def _first(a: float | None, b: float | None) -> float | None:
    return a if a is not None else b


def checked(what: str, value: float, *, at_most_one: bool = False) -> float:
    """``value`` if it is a finite number >= 0 (and <= 1 where a fraction must be); else ValueError."""
    number = float(value)
    if not math.isfinite(number) or number < 0 or (at_most_one and number > 1):
        bounds = "between 0 and 1" if at_most_one else "a finite number >= 0"
        raise ValueError(f"{what} must be {bounds}, not {value!r}")
    return number
