"""A pod dies, drains or comes back: the library's side of issue 5, against real servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from app.cluster import Cluster, ClusterConfig
from tests.helpers import FAST_BACKOFF, wait_until
from transport import ConnectivityState


@pytest.fixture
async def slow_cluster() -> AsyncIterator[Cluster]:
    """Greets take 50 ms, so a burst leaves calls in flight to kill."""
    cluster = Cluster(ClusterConfig(seed=5, service_time=0.05, workers=4, backoff=FAST_BACKOFF))
    await cluster.start("pick_first")
    await cluster.wait_ready()
    yield cluster
    await cluster.stop()


def accounted(cluster: Cluster) -> None:
    stats = cluster.traffic.stats
    assert stats.in_flight == 0
    assert stats.fired == stats.ok + stats.failed_total
    assert stats.ok == sum(pod.calls_ok for pod in cluster.pods)


async def test_killing_the_pinned_pod_fails_its_calls_and_pins_another(slow_cluster: Cluster) -> None:
    cluster = slow_cluster
    pinned = cluster.view().pinned_pod
    assert pinned is not None
    cluster.traffic.burst(40)
    await wait_until(lambda: cluster.pod(pinned).calls_in_flight > 0, 5, "calls in flight on the pinned pod")
    in_flight = cluster.traffic.stats.in_flight
    await cluster.toggle_pod(pinned)
    await cluster.traffic.drain(10)
    stats = cluster.traffic.stats
    assert stats.failed.get("UNAVAILABLE", 0) >= 1
    assert stats.failed_total <= in_flight
    accounted(cluster)

    # The channel reconnects through the proxy, which skips the dead pod.
    await cluster.wait_ready()
    await asyncio.gather(*cluster.traffic.burst(20))
    moved = cluster.view().pinned_pod
    assert moved is not None and moved != pinned
    assert cluster.pod(moved).calls_ok == 20
    accounted(cluster)


async def test_round_robin_skips_a_dead_pod_shows_backoff_and_rejoins(slow_cluster: Cluster) -> None:
    cluster = slow_cluster
    cluster.set_policy("round_robin")
    await cluster.wait_ready()
    await cluster.toggle_pod(3)
    view_seen_backoff = False

    def backing_off() -> bool:
        nonlocal view_seen_backoff
        conns = [c for c in cluster.view().connections if c.state == "TRANSIENT_FAILURE"]
        view_seen_backoff = view_seen_backoff or any(c.retry_in is not None for c in conns)
        return view_seen_backoff

    await wait_until(backing_off, 5, "pod #3's subchannel to back off")
    before = cluster.pod(3).calls_ok
    await asyncio.gather(*cluster.traffic.burst(30))
    assert cluster.traffic.stats.failed_total == 0
    assert cluster.pod(3).calls_ok == before
    accounted(cluster)

    await cluster.toggle_pod(3)
    await cluster.wait_ready(timeout=10)
    await asyncio.gather(*cluster.traffic.burst(40))
    assert cluster.pod(3).calls_ok - before == 10
    accounted(cluster)


async def test_draining_under_round_robin_fails_no_call(slow_cluster: Cluster) -> None:
    cluster = slow_cluster
    cluster.set_policy("round_robin")
    await cluster.wait_ready()
    traffic = cluster.traffic
    traffic.start_steady(100)
    await wait_until(lambda: traffic.stats.ok >= 20, 10, "traffic to flow")
    assert cluster.toggle_drain(2)
    channel = cluster.channel
    await wait_until(
        lambda: any(sc.health == "NOT_SERVING" for sc in channel.subchannels), 5, "the client to see NOT_SERVING"
    )
    drained_at = cluster.pod(2).calls_ok + cluster.pod(2).calls_in_flight
    fired_at = traffic.stats.fired
    await wait_until(lambda: traffic.stats.fired >= fired_at + 60, 10, "more traffic")
    traffic.stop_steady()
    await traffic.drain(10)
    assert traffic.stats.failed_total == 0
    assert cluster.pod(2).calls_ok == drained_at  # no new call after the drain
    assert cluster.view().pods[1].draining
    accounted(cluster)

    assert not cluster.toggle_drain(2)
    await wait_until(
        lambda: all(sc.state is ConnectivityState.READY for sc in channel.subchannels), 5, "pod #2 to rejoin"
    )
    await asyncio.gather(*traffic.burst(40))
    assert cluster.pod(2).calls_ok == drained_at + 10
    accounted(cluster)


async def test_pick_first_ignores_health(slow_cluster: Cluster) -> None:
    """gRPC: pick_first does not health-check, so draining the pinned pod changes nothing."""
    cluster = slow_cluster
    pinned = cluster.view().pinned_pod
    assert pinned is not None
    cluster.toggle_drain(pinned)
    await asyncio.gather(*cluster.traffic.burst(10))
    assert cluster.pod(pinned).calls_ok == 10
    assert cluster.traffic.stats.failed_total == 0
