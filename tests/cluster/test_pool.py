"""Configuration 7: "why not just open more connections?" — a pool of pick_first channels through the L4 VIP.

Real pods, a real L4 proxy and real channels on 127.0.0.1: the L4 LB picks a pod per connection, and
each call rides whichever pooled connection is next, so the pods' calls follow the connections.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from app.cluster import Cluster, ClusterConfig, configuration
from tests.helpers import FAST_BACKOFF, wait_until


@asynccontextmanager
async def _cluster(seed: int = 3, pods: int = 4) -> AsyncIterator[Cluster]:
    cluster = Cluster(ClusterConfig(seed=seed, pods=pods, backoff=FAST_BACKOFF))
    await cluster.start("pick_first")
    try:
        await cluster.wait_ready()
        yield cluster
    finally:
        await cluster.stop()


async def test_configuration_7_opens_one_connection_per_pod_through_the_vip_and_calls_follow_them() -> None:
    """4 pods, seed 3: 4 pick_first channels, 4 connections through the VIP; 40 greets rotate over
    them, so each pod serves 10 calls per connection the L4 LB sent it (and none it was not sent)."""
    async with _cluster(seed=3) as cluster:
        await cluster.apply(configuration(7))
        await cluster.wait_ready()
        view = cluster.view()
        assert (view.configuration, view.channels, len(cluster.channels)) == (7, 4, 4)
        assert len(view.connections) == 4 and view.ready_connections == 4, view.connections
        assert all(c.via_balancer and c.pod is not None for c in view.connections), view.connections
        # the L4 proxy relays exactly these four (the old channel's connection has closed or is closing)
        reached = Counter(c.pod for c in view.connections)
        await asyncio.gather(*cluster.traffic.burst(40))
        view = cluster.view()
        spread = [pod.calls_since_switch for pod in view.pods]
        expected = [10 * reached[pod.index] for pod in view.pods]
        assert spread == expected, f"calls {spread}, connections per pod {dict(reached)}"
        assert [c.calls for c in view.connections] == [10, 10, 10, 10]
        # PINNED on exactly the pods a connection reached
        assert {p.index for p in view.pods if p.pinned} == set(reached)
        connects = [e.text for e in cluster.events.of_kind("connect")][-4:]
        assert [t.split(" READY")[0] for t in connects] == ["conn 1", "conn 2", "conn 3", "conn 4"], connects
        assert all("the L4 LB picked pod #" in t for t in connects), connects


async def test_switching_from_the_pool_back_to_1_leaves_one_connection_and_no_call_fails() -> None:
    """100 calls in flight across 7 -> 1: every one ends OK; afterwards the client holds 1 connection."""
    async with _cluster(seed=3) as cluster:
        await cluster.apply(configuration(7))
        await cluster.wait_ready()
        pool = cluster.channels
        running = cluster.traffic.burst(100)
        await cluster.apply(configuration(1))
        await asyncio.gather(*running)
        stats = cluster.traffic.stats
        assert (stats.ok, stats.failed_total) == (100, 0), stats.failed
        assert sum(pod.calls_ok for pod in cluster.pods) == 100
        await cluster.wait_ready()
        for task in list(cluster._retiring):
            await task
        view = cluster.view()
        assert (view.configuration, view.channels, len(view.connections), view.ready_connections) == (1, 1, 1, 1)
        assert all(channel.closed for channel in pool)
        # the pool's connections really close: the L4 proxy ends up relaying the one left
        proxy = cluster.proxy
        assert proxy is not None
        await wait_until(lambda: len(proxy.connections) == 1, 5, "the L4 proxy to relay one connection")


async def test_p_in_configuration_7_goes_to_round_robin_and_the_pool_is_gone() -> None:
    """The pool is pick_first channels through the VIP: round_robin is one channel to every pod."""
    async with _cluster(seed=3) as cluster:
        await cluster.apply(configuration(7))
        await cluster.wait_ready()
        assert cluster.toggle_policy() == "round_robin"
        await cluster.wait_ready()
        assert (cluster.view().configuration, len(cluster.channels)) == (2, 1)
        assert cluster.toggle_policy() == "pick_first"
        await cluster.wait_ready()
        assert (cluster.view().configuration, len(cluster.channels)) == (1, 1)
