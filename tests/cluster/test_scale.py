"""Scale-up on the in-process cluster: who sees the new pods, and when (the issue's claim).

Scale 4 -> 6 after 200 of 600 calls at 200 calls/s (3 s; the issue's 1000 calls, shortened):

- pick_first through the L4 VIP, no max age: the client's one connection stays pinned, so the
  new pods 5 and 6 get 0 calls although the VIP lists them at once;
- round_robin with MAX_CONNECTION_AGE 1 s: each GOAWAY makes the subchannel IDLE, the channel
  re-resolves ``endpoints:///...`` (at most every 0.5 s here; gRPC's 30 s would outlast the
  run) and adds subchannels for pods 5 and 6, which then get calls.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from app.cluster import MAX_PODS, Cluster, ClusterConfig
from app.commands.demo import Scale, fire_steady
from tests.helpers import FAST_BACKOFF, wait_until
from transport.client.endpoints import Endpoints

CALLS = 600
RATE = 200.0
SCALE_AFTER = 200
#: The test's re-resolution interval (gRPC's default is 30 s).
RERESOLUTION = 0.5


@asynccontextmanager
async def _cluster(policy: str, **kwargs: object) -> AsyncIterator[Cluster]:
    config = ClusterConfig(seed=7, backoff=FAST_BACKOFF, min_reresolution_interval=RERESOLUTION, **kwargs)  # type: ignore[arg-type]
    cluster = Cluster(config)
    await cluster.start(policy)
    try:
        await cluster.wait_ready()
        yield cluster
    finally:
        await cluster.stop()


def _calls(cluster: Cluster) -> list[int]:
    return [pod.calls_ok for pod in cluster.pods]


async def test_pick_first_through_l4_gives_new_pods_nothing() -> None:
    async with _cluster("pick_first") as cluster:
        await fire_steady(cluster, CALLS, RATE, scale=Scale(SCALE_AFTER, 6))
        calls = _calls(cluster)
        view = cluster.view()
        assert len(calls) == 6, calls
        assert cluster.proxy is not None and len(cluster.proxy.backends) == 6  # the VIP knew at once
        assert calls[4:] == [0, 0], f"pods 5 and 6 got {calls[4:]} calls through a pinned connection: {calls}"
        assert view.ok == CALLS and view.failed_total == 0, view.failed
        assert view.client_connections_opened == 1


async def test_round_robin_with_max_age_reresolves_and_uses_new_pods() -> None:
    async with _cluster("round_robin", max_connection_age=1.0) as cluster:
        resolutions_before = cluster.channel.stats.resolutions
        await fire_steady(cluster, CALLS, RATE, scale=Scale(SCALE_AFTER, 6))
        calls = _calls(cluster)
        view = cluster.view()
        assert calls[4] > 0 and calls[5] > 0, f"pods 5 and 6 got {calls[4:]} calls: {calls}"
        assert view.resolutions > resolutions_before, view.resolutions
        assert view.ok == CALLS and view.failed_total == 0, view.failed
        assert len(view.pods) == 6 and [p.index for p in view.pods] == [1, 2, 3, 4, 5, 6]


async def test_round_robin_sees_a_new_pod_only_after_reresolution() -> None:
    """No connection is lost (no max age): the new pod is listed but the channel never asks."""
    async with _cluster("round_robin") as cluster:
        resolutions = cluster.channel.stats.resolutions
        pod = await cluster.add_pod()
        assert cluster.endpoints is not None and pod.address in cluster.endpoints
        await fire_steady(cluster, 100, RATE)
        assert pod.calls_ok == 0, f"pod 5 got {pod.calls_ok} calls without a re-resolution"
        assert cluster.channel.stats.resolutions == resolutions
        assert pod.address not in cluster.channel.addresses
        cluster.channel.request_reresolution()  # what a lost connection would trigger
        await wait_until(lambda: pod.address in cluster.channel.addresses, timeout=5.0)
        await wait_until(lambda: len(cluster.channel.subchannels) == 5, timeout=5.0)
        await fire_steady(cluster, 100, RATE)
        assert pod.calls_ok > 0, _calls(cluster)


async def test_l7_proxy_learns_new_pods_by_reresolution() -> None:
    async with _cluster("pick_first", balancer="l7", max_connection_age=1.0) as cluster:
        await fire_steady(cluster, CALLS, RATE, scale=Scale(SCALE_AFTER, 6))
        calls = _calls(cluster)
        assert calls[4] > 0 and calls[5] > 0, f"the L7 proxy sent pods 5 and 6 {calls[4:]} calls: {calls}"
        assert cluster.view().failed_total == 0


async def test_add_and_remove_pods_within_bounds() -> None:
    async with _cluster("pick_first") as cluster:
        while len(cluster.pods) < MAX_PODS:
            await cluster.add_pod()
        assert [p.index for p in cluster.view().pods] == list(range(1, MAX_PODS + 1))
        assert len({p.address for p in cluster.pods}) == MAX_PODS
        with pytest.raises(ValueError, match="already runs 8 pods"):
            await cluster.add_pod()
        gone = await cluster.remove_pod()
        assert gone.index == MAX_PODS and not gone.serving
        assert cluster.endpoints is not None and gone.address not in cluster.endpoints
        assert cluster.proxy is not None and gone.address not in [b.address for b in cluster.proxy.backends]
        while len(cluster.pods) > 1:
            await cluster.remove_pod()
        with pytest.raises(ValueError, match="at least one pod"):
            await cluster.remove_pod()
        await fire_steady(cluster, 20, RATE)
        assert cluster.view().ok == 20


async def test_each_cluster_has_its_own_endpoints_and_stop_unregisters() -> None:
    async with _cluster("round_robin") as a, _cluster("round_robin") as b:
        assert a.endpoints_name != b.endpoints_name
        assert a.channel.target == f"endpoints:///{a.endpoints_name}"
        name = a.endpoints_name
    assert Endpoints.lookup(name) is None
