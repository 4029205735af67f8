"""The issue's configurations, measured on the in-process cluster (real pods, proxies, sockets).

- an L7 proxy as the VIP: one client connection, every call balanced at the proxy;
- MAX_CONNECTION_AGE on the pods behind the L4 VIP: the connection rotates, load spreads, nothing fails;
- a slow pod: round_robin keeps giving it a quarter of the calls, least_request routes around it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from app.cluster import Cluster, ClusterConfig
from app.commands.demo import fire, fire_steady
from tests.helpers import FAST_BACKOFF


@asynccontextmanager
async def _cluster(policy: str, seed: int = 1, **kwargs: object) -> AsyncIterator[Cluster]:
    cluster = Cluster(ClusterConfig(seed=seed, backoff=FAST_BACKOFF, **kwargs))  # type: ignore[arg-type]
    await cluster.start(policy)
    try:
        await cluster.wait_ready()
        yield cluster
    finally:
        await cluster.stop()


def _calls(cluster: Cluster) -> list[int]:
    return [pod.calls_ok for pod in cluster.pods]


# --- the config's checks ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [{"balancer": "l5"}, {"max_connection_age": 0.0}, {"max_connection_age": -1.0}],
    ids=["unknown-balancer", "age-0", "age-negative"],
)
def test_bad_config_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="balancer|max_connection_age"):
        ClusterConfig(**kwargs)  # type: ignore[arg-type]


async def test_set_slow_checks_pod_and_factor() -> None:
    async with _cluster("pick_first") as cluster:
        with pytest.raises(ValueError, match="no pod #5"):
            cluster.set_slow(5, 10)
        with pytest.raises(ValueError, match="slow factor"):
            cluster.set_slow(2, 0.5)
        cluster.set_slow(2, 10)
        assert cluster.view().pods[1].slow_factor == 10
        cluster.set_slow(2, 1)  # heals
        assert cluster.pods[1].load_model.slow_factor == 1


async def test_p_still_toggles_pick_first_and_round_robin_only() -> None:
    async with _cluster("least_request") as cluster:
        assert cluster.toggle_policy() == "pick_first"
        assert cluster.toggle_policy() == "round_robin"
        assert cluster.toggle_policy() == "pick_first"


# --- (a) L7 proxy as the VIP + pick_first -----------------------------------------------------


async def test_l7_vip_balances_every_call_over_one_client_connection() -> None:
    """L7 + pick_first, 400 calls: the client opens one connection, each of 4 pods serves 100 ± 1."""
    async with _cluster("pick_first", balancer="l7") as cluster:
        await fire(cluster, 400)
        view = cluster.view()
        assert cluster.l7_proxy is not None
        assert (view.ok, view.failed, view.balancer) == (400, {}, "l7")
        assert view.client_connections_opened == 1, view.connections
        assert len(cluster.l7_proxy.connections) == 1  # the proxy saw one downstream connection
        assert all(99 <= n <= 101 for n in _calls(cluster)), _calls(cluster)
        # the client's own view: the connection is through the VIP, pinned to no pod
        assert [c.via_balancer for c in view.connections] == [True]
        assert view.pinned_pod is None


async def test_l4_vip_pick_first_still_pins_one_pod() -> None:
    """The contrast, same 400 calls through the L4 VIP: one pod gets all of them."""
    async with _cluster("pick_first") as cluster:
        await fire(cluster, 400)
        assert sorted(_calls(cluster)) == [0, 0, 0, 400]
        assert cluster.view().client_connections_opened == 1


# --- (b) MAX_CONNECTION_AGE behind the L4 VIP -------------------------------------------------


async def test_max_connection_age_rotates_the_pinned_connection_without_losing_a_call() -> None:
    """pick_first + L4 + max_connection_age 0.5 s at 200 calls/s for 5 s (the issue's 1 s for 10 s,
    halved to keep the suite short; ~10 rotations either way): at least 3 pods serve calls, none
    over 60 %, and no call fails."""
    async with _cluster("pick_first", seed=1, max_connection_age=0.5) as cluster:
        await fire_steady(cluster, 1000, rate=200)
        view = cluster.view()
        calls = _calls(cluster)
        assert (view.ok, view.failed) == (1000, {}), view.failed
        assert sum(calls) == 1000
        assert sum(1 for n in calls if n) >= 3, calls
        assert max(calls) <= 600, f"{calls}: one pod over 60 %"
        # the rotations were real GOAWAYs from the pods, each followed by a new client connection
        assert view.goaways >= 5, view.goaways
        assert view.client_connections_opened >= view.goaways, (view.client_connections_opened, view.goaways)


async def test_without_max_connection_age_the_steady_load_stays_pinned() -> None:
    """The contrast: the same steady traffic without MAX_CONNECTION_AGE stays on one pod."""
    async with _cluster("pick_first", seed=1) as cluster:
        await fire_steady(cluster, 200, rate=200)
        view = cluster.view()
        assert sorted(_calls(cluster)) == [0, 0, 0, 200]
        assert (view.goaways, view.client_connections_opened) == (0, 1)


# --- (c) a slow pod: round_robin vs least_request ---------------------------------------------

#: Pod 2 ten times slower: 100 ms against 10 ms, 4 workers per pod.
SLOW = {"service_time": 0.01}


async def test_round_robin_keeps_sending_the_slow_pod_a_quarter() -> None:
    """round_robin, 200 calls (8 in flight), pod 2 ×10: pod 2 gets 25 ± 2 % and its calls take at
    least its 100 ms service time, ≥ 5× the others' p99."""
    async with _cluster("round_robin", **SLOW) as cluster:
        cluster.set_slow(2, 10)
        await fire(cluster, 200)
        view = cluster.view()
        assert (view.ok, view.failed) == (200, {})
        share = view.pods[1].calls / 200
        assert 0.23 <= share <= 0.27, f"pod 2 share {share:.1%}"
        healthy = [p.p99_ms for p in view.pods if p.index != 2]
        assert view.pods[1].p50_ms >= 100.0, view.pods[1]
        assert view.pods[1].p99_ms >= 5 * max(healthy), (view.pods[1].p99_ms, healthy)


async def test_least_request_routes_around_the_slow_pod() -> None:
    """least_request, 1600 calls with 32 in flight, pod 2 ×10: pod 2's share is under 10 %
    (measured 6.0-7.5 % over seeds 0-2; at 8 in flight and 400 calls it sits near 10 %, too close)."""
    async with _cluster("least_request", **SLOW) as cluster:
        cluster.set_slow(2, 10)
        await fire(cluster, 1600, concurrency=32)
        view = cluster.view()
        assert (view.ok, view.failed) == (1600, {})
        share = view.pods[1].calls / 1600
        assert share < 0.10, f"pod 2 share {share:.1%}: {_calls(cluster)}"
        assert all(p.calls > 400 for p in view.pods if p.index != 2), _calls(cluster)


async def test_healing_the_slow_pod_gives_it_its_share_back() -> None:
    """set_slow(2, 1) heals: least_request then gives pod 2 about a quarter again (20-30 %)."""
    async with _cluster("least_request", **SLOW) as cluster:
        cluster.set_slow(2, 10)
        cluster.set_slow(2, 1)
        await fire(cluster, 400, concurrency=32)
        share = cluster.pods[1].calls_ok / 400
        assert 0.20 <= share <= 0.30, f"pod 2 share {share:.1%}"
