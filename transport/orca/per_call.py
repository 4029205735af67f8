"""Per-call load reports: the ``endpoint-load-metrics-bin`` trailer on every call a handler answers.

gRFC A51's per-query reporting. The server's trailer hook (grpc-go does it with
``orca.CallMetricsServerOption``'s interceptors) merges the machine-wide recorder
with the call's own, if its handler asked for one; nothing recorded, no trailer.
A call that only carries the machine-wide metrics reuses their encoded trailer:
one serialization per change of the recorder, not per call.
"""

from __future__ import annotations

from collections.abc import Iterable

from transport.orca.recorder import CallMetricsRecorder, ServerMetricsRecorder, encode_trailer
from transport.server import Server, ServicerContext

#: The call's attachment key of its recorder.
_RECORDER = object()


class CallMetricsReporting:
    """The trailer hook: ``server.add_trailer_hook(CallMetricsReporting(recorder))``, or
    :func:`enable_call_metrics`."""

    def __init__(self, recorder: ServerMetricsRecorder | None = None) -> None:
        #: The machine-wide metrics every call reports, or None (only what handlers record).
        self.recorder = recorder

    def __call__(self, call: ServicerContext) -> Iterable[tuple[bytes, bytes]]:
        attachments = call.attachments
        own = attachments.get(_RECORDER) if attachments is not None else None
        server = self.recorder
        if isinstance(own, CallMetricsRecorder):
            metrics = own.server_metrics()
            if server is not None:
                metrics = server.server_metrics().merged(metrics)
            return () if metrics.empty else (encode_trailer(metrics),)
        trailer = server.trailer() if server is not None else None
        return () if trailer is None else (trailer,)


def enable_call_metrics(server: Server, recorder: ServerMetricsRecorder | None = None) -> CallMetricsReporting:
    """Report per call on ``server``: each call's trailer carries ``recorder``'s metrics (if given)
    with what its handler records on :func:`call_metrics_recorder` on top. Once per server."""
    if _reporting(server) is not None:
        raise RuntimeError("per-call load reports are already enabled on this server")
    reporting = CallMetricsReporting(recorder)
    server.add_trailer_hook(reporting)
    return reporting


def call_metrics_recorder(context: ServicerContext) -> CallMetricsRecorder | None:
    """The recorder of this call's own metrics (grpc-go's ``CallMetricsRecorderFromContext``),
    made on first use; None when its server does not report per call."""
    attachments = context.attachments
    if attachments is not None and isinstance(own := attachments.get(_RECORDER), CallMetricsRecorder):
        return own
    if _reporting(context.server) is None:
        return None
    recorder = CallMetricsRecorder()
    if attachments is None:
        context.attachments = attachments = {}
    attachments[_RECORDER] = recorder
    return recorder


def _reporting(server: Server) -> CallMetricsReporting | None:
    for hook in server.trailer_hooks:
        if isinstance(hook, CallMetricsReporting):
            return hook
    return None
