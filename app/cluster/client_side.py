"""What the embedded cluster and an attached client read the same way: a subchannel as a
connection line, its latest load report, and stopping the client (its traffic and channels)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

from app.cluster.traffic import Traffic
from app.cluster.view import ConnectionView
from transport import Channel
from transport.client.subchannel import Subchannel
from transport.orca import OrcaLoadReport


def connection_view(sc: Subchannel, pod: int | None, via_balancer: bool, loop_time: float) -> ConnectionView:
    return ConnectionView(
        state=sc.state.name,
        pod=pod,
        via_balancer=via_balancer,
        calls=sc.stats.calls_succeeded,
        retry_in=None if sc.next_attempt_at is None else max(0.0, sc.next_attempt_at - loop_time),
        health=sc.health,
        connected_at=sc.connected_at,
    )


def utilization(report: OrcaLoadReport) -> float | None:
    """The one figure a pod meter shows of a load report: busy, else application, else CPU utilization."""
    busy = report.utilization.get("busy")
    if busy is not None:
        return float(busy)
    for figure in (report.application_utilization, report.cpu_utilization):
        if figure > 0:
            return float(figure)
    return None


def current_report(sc: Subchannel) -> tuple[float, float] | None:
    """(when, utilization) of the latest load report on ``sc``'s current connection (gRFC A51): a
    report from before it connected may be another pod's, through a VIP."""
    report, at, since = sc.load_report, sc.load_report_at, sc.connected_at
    if report is None or at is None or since is None or at < since:
        return None
    figure = utilization(report)
    return None if figure is None else (at, figure)


async def stop_client(
    traffic: Traffic, channels: Iterable[Channel], retiring: Iterable[asyncio.Task[None]], grace: float | None
) -> float:
    """Stop the traffic (its calls finish, or with ``grace`` are cancelled), close the channels and
    wait for the retiring ones; the grace every connection gets to close."""
    if grace is None:
        await traffic.stop()
    else:
        await traffic.cancel()
    close = 1.0 if grace is None else grace
    await asyncio.gather(*(channel.close(grace=close) for channel in channels))
    for task in list(retiring):
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return close
