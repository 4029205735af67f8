"""The pod view carries what each pod reports about itself (ORCA load reports the client received),
attributed to the pod the connection reaches, directly or through the L4 VIP."""

from __future__ import annotations

import asyncio

import pytest

from app.cluster import Cluster, ClusterConfig
from tests.helpers import FAST_BACKOFF
from transport.orca import ServerMetricsRecorder, enable_call_metrics


async def _reporting_cluster(policy: str, busy: dict[int, float]) -> Cluster:
    """A started four-pod cluster whose pods in ``busy`` (index -> figure) report it on every call."""
    cluster = Cluster(ClusterConfig(seed=1, backoff=FAST_BACKOFF))
    await cluster.start(policy)
    for index, figure in busy.items():
        recorder = ServerMetricsRecorder()
        recorder.set_named_utilization("busy", figure)
        enable_call_metrics(cluster.pods[index - 1].server, recorder)
    await cluster.wait_ready()
    return cluster


async def test_round_robin_pod_views_show_each_reporting_pods_own_figure() -> None:
    cluster = await _reporting_cluster("round_robin", {2: 0.42, 4: 0.9})
    try:
        assert [p.reported_utilization for p in cluster.view().pods] == [None] * 4  # no call yet: no report
        await asyncio.gather(*cluster.traffic.burst(8))
        assert [p.reported_utilization for p in cluster.view().pods] == [None, 0.42, None, 0.9]
    finally:
        await cluster.stop()


async def test_through_the_vip_the_report_is_the_pinned_pods() -> None:
    cluster = await _reporting_cluster("pick_first", {i: i / 10 for i in range(1, 5)})
    try:
        await asyncio.gather(*cluster.traffic.burst(5))
        view = cluster.view()
        pinned = view.pinned_pod
        assert pinned is not None
        assert [p.reported_utilization for p in view.pods] == [
            pytest.approx(pinned / 10) if p.index == pinned else None for p in view.pods
        ]
    finally:
        await cluster.stop()
