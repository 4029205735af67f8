"""The configurations as data: presets, what the live state matches, the event log's bound."""

from __future__ import annotations

import asyncio

import pytest

from app.cluster import CONFIGURATIONS, Cluster, ClusterConfig, EventLog, configuration, matching
from tests.helpers import FAST_BACKOFF


def test_seven_presets_numbered_in_order_with_one_line_explanations() -> None:
    assert [c.number for c in CONFIGURATIONS] == [1, 2, 3, 4, 5, 6, 7]
    assert all(len(c.explanation) <= 78 for c in CONFIGURATIONS), [len(c.explanation) for c in CONFIGURATIONS]
    with pytest.raises(ValueError, match="no configuration 8"):
        configuration(8)


@pytest.mark.parametrize(
    ("policy", "balancer", "age", "slow", "expected"),
    [
        ("pick_first", "l4", False, frozenset(), 1),
        ("round_robin", "l4", False, frozenset(), 2),
        ("round_robin", "l7", False, frozenset(), 2),  # the VIP does not count when bypassed
        ("pick_first", "l4", True, frozenset(), 3),
        ("pick_first", "l7", False, frozenset(), 4),
        ("least_request", "l4", False, frozenset({2}), 5),
        ("round_robin", "l4", True, frozenset(), 6),
        ("round_robin", "l4", False, frozenset({2}), None),
        ("least_request", "l4", False, frozenset(), None),
        ("pick_first", "l7", True, frozenset(), None),
    ],
)
def test_matching(policy: str, balancer: str, age: bool, slow: frozenset[int], expected: int | None) -> None:
    found = matching(policy, balancer, age, slow)
    assert (found.number if found else None) == expected


@pytest.mark.parametrize(
    ("policy", "balancer", "age", "expected"),
    [
        ("pick_first", "l4", False, 7),
        ("pick_first", "l4", True, None),  # a pool with MAX_CONNECTION_AGE is no preset
        ("pick_first", "l7", False, None),
    ],
)
def test_matching_a_pool(policy: str, balancer: str, age: bool, expected: int | None) -> None:
    found = matching(policy, balancer, age, frozenset(), pooled=True)
    assert (found.number if found else None) == expected


def test_event_log_keeps_the_newest_and_counts_all() -> None:
    log = EventLog(keep=3)
    for i in range(10):
        log.add("pod", f"event {i}")
    assert log.count == 10
    assert [e.text for e in log.recent(5)] == ["event 7", "event 8", "event 9"]
    assert [e.number for e in log.recent(2)] == [9, 10]
    assert log.recent(0) == ()


async def test_apply_switches_the_vip_and_back_losing_no_call() -> None:
    """1 -> 4 -> 1 while calls run: an L7 proxy replaces the L4 one and back; every call ends OK and
    the retired VIPs are stopped."""
    cluster = Cluster(ClusterConfig(seed=1, backoff=FAST_BACKOFF))
    await cluster.start("pick_first")
    try:
        await cluster.wait_ready()
        old_l4 = cluster.proxy
        running = cluster.traffic.burst(50)
        await cluster.apply(configuration(4))
        assert cluster.proxy is None and cluster.l7_proxy is not None and cluster.balancer == "l7"
        await cluster.wait_ready()
        running += cluster.traffic.burst(50)
        l7 = cluster.l7_proxy
        await cluster.apply(configuration(1))
        assert cluster.l7_proxy is None and cluster.proxy is not None and cluster.proxy is not old_l4
        await cluster.traffic.drain(10)
        stats = cluster.traffic.stats
        assert (stats.ok, stats.failed_total) == (100, 0), stats.failed
        assert sum(pod.calls_ok for pod in cluster.pods) == 100
        await cluster.wait_ready()
        await cluster.traffic.burst(1)[0]
        for task in list(cluster._retiring):
            await task
        assert old_l4 is not None and l7 is not None
        for retired in (old_l4.address, l7.address):  # both retired VIPs stopped listening
            with pytest.raises(ConnectionRefusedError):
                await asyncio.open_connection(retired.host, retired.port)
        assert [e.text for e in cluster.events.of_kind("configuration")] == [
            "configuration 4: L7 proxy as the VIP + pick_first",
            "configuration 1: L4 VIP + pick_first",
        ]
    finally:
        await cluster.stop()


@pytest.mark.parametrize("number", [4, 1])
async def test_view_while_a_new_vip_starts_does_not_raise(number: int) -> None:
    """The app samples ``view()`` every 0.1 s, also while ``apply`` awaits the new VIP's start: a VIP
    that is not listening yet is not the cluster's VIP (a sampler once crashed on the L7 proxy's address)."""
    cluster = Cluster(ClusterConfig(seed=1, backoff=FAST_BACKOFF))
    await cluster.start("pick_first")
    try:
        await cluster.wait_ready()
        if number == 1:  # from the L7 proxy back to a new L4 one
            await cluster.apply(configuration(4))
        applying = asyncio.ensure_future(cluster.apply(configuration(number)))
        views = 0
        for _ in range(10_000):
            if applying.done():
                break
            cluster.view()
            views += 1
            await asyncio.sleep(0)
        await applying
        assert views >= 1
        live = cluster.configuration
        assert live is not None and live.number == number
    finally:
        await cluster.stop()
