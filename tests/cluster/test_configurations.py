"""The issue's configurations, measured on the in-process cluster (real pods, proxies, sockets).

- an L7 proxy as the VIP: one client connection, every call balanced at the proxy;
- MAX_CONNECTION_AGE on the pods behind the L4 VIP: the connection rotates, load spreads, nothing fails;
- a slow pod at 300 calls/s: round_robin keeps giving it a quarter of the calls, least_request routes around it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from app.cluster import Cluster, ClusterConfig, ClusterView
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


# --- (c) a slow pod at 300 calls/s: round_robin vs least_request -----------------------------

#: The issue's load: 300 calls/s, steady (however many are in flight), for 3 s; pod 2 ten times slower.
RATE = 300.0
N = 900
SLOW_FACTOR = 10.0
#: The default 20 ms service time, on 32 workers per pod instead of 4. Slowed ×10 (200 ms), pod 2 then
#: serves up to 32 / 0.2 s = 160 calls/s, over twice the 75 calls/s round_robin offers it, so no queue
#: builds and its latency is its service time. With 4 workers it serves 20 calls/s: round_robin's queue
#: grows by 55 calls/s, pod 2's p99 reaches 8.4 s in the 3 s run (near the 10 s call timeout, the
#: run takes 11.5 s) and even least_request's ~7 % (21 calls/s) queues.
SERVICE_TIME = 0.02
WORKERS = 32
SLOW_SERVICE_MS = 1000 * SERVICE_TIME * SLOW_FACTOR
#: least_request's share of pod 2 is a count of rare picks (~8.5 %): over 900 calls its standard error
#: is 0.9 points, so the 10 % bound sat 1.7 errors away and failed one CI run in ~20 (10.1 % once);
#: 1,800 calls (6 s) halve the variance and put the bound 2.3 errors away.
N_LEAST_REQUEST = 1800


async def _steady_run(policy: str, *, slow: bool, n: int = N) -> tuple[ClusterView, float]:
    """``n`` calls at RATE under ``policy``, pod 2 slowed ×SLOW_FACTOR or not: the view, and the
    client-wide p90 in ms (the view carries p50 and p99 only)."""
    async with _cluster(policy, service_time=SERVICE_TIME, workers=WORKERS) as cluster:
        if slow:
            cluster.set_slow(2, SLOW_FACTOR)
        await fire_steady(cluster, n, rate=RATE)
        return cluster.view(), 1000 * cluster.traffic.stats.latency_all.percentile(90)


async def test_round_robin_at_300_calls_per_second_keeps_sending_the_slow_pod_a_quarter() -> None:
    """round_robin, 900 calls at 300 calls/s, pod 2 ×10: pod 2 gets 25 ± 2 % of the calls (225 each)
    and its p99 is ≥ 5× the highest p99 of the other pods (measured over seeds 0-3: 202-206 ms against
    22-26 ms, ×7.8-9.1; ×7.0-7.6 with two CPU hogs on the 2 cores); no call fails, and pod 2's queue
    stays bounded (p99 under 2 s: it is its 200 ms service time; with 4 workers it is 8.4 s)."""
    view, _ = await _steady_run("round_robin", slow=True)
    pod2 = view.pods[1]
    others = [p.p99_ms for p in view.pods if p.index != 2]
    figures = (
        f"calls {[p.calls for p in view.pods]}, pod 2 p50/p99 {pod2.p50_ms}/{pod2.p99_ms} ms, others' p99 {others}"
    )
    print(figures)
    assert (view.ok, view.failed) == (N, {}), figures
    share = pod2.calls / N
    assert 0.23 <= share <= 0.27, f"pod 2 share {share:.1%}: {figures}"
    # every call of pod 2's takes at least its service time (the histogram is within 1 %)
    assert pod2.p50_ms >= 0.99 * SLOW_SERVICE_MS, figures
    assert pod2.p99_ms >= 5 * max(others), figures
    assert pod2.p99_ms < 10 * SLOW_SERVICE_MS, f"pod 2 queued: {figures}"


async def test_least_request_at_300_calls_per_second_routes_around_the_slow_pod() -> None:
    """least_request, 1,800 calls at 300 calls/s, pod 2 ×10, against a healthy run in the same test (same
    policy, rate, count, seed and config, no slow pod): pod 2's share is under 10 % (measured over seeds
    0-3: 8.3-8.8 %, 9.0 % at most with two CPU hogs, 9.9 % once in a full CI run), each other pod
    serves more than a quarter, and no call fails in either run.

    The issue also claims the **client-wide p99** (all calls, ``ClusterView.p99_ms``) stays within 2×
    of the healthy run's. It does not, and with a pod 10× slower per call it cannot: least_request
    samples 2 of the 4 pods with replacement (A48), so both samples are pod 2 in 1 pick of 16 and it
    gets at least 6.25 % of the calls whatever its load, more than the 1 % a p99 leaves out; the p99
    is then pod 2's 200 ms against the healthy run's 22-26 ms (measured ×7.9-9.1). The p90 is near the
    healthy run's while pod 2's share stays under 10 % (×1.0-1.1 here) but not at the edge (9.9 % gave
    ×9.2 once), so it is printed, not asserted."""
    n = N_LEAST_REQUEST
    healthy, healthy_p90 = await _steady_run("least_request", slow=False, n=n)
    view, p90 = await _steady_run("least_request", slow=True, n=n)
    calls = [p.calls for p in view.pods]
    figures = (
        f"calls {calls}; client-wide p90 {p90:.1f} / p99 {view.p99_ms} ms against the healthy run's"
        f" {healthy_p90:.1f} / {healthy.p99_ms} ms (calls {[p.calls for p in healthy.pods]})"
    )
    print(figures)
    assert (healthy.ok, healthy.failed) == (n, {}), f"the healthy run failed calls: {figures}"
    assert (view.ok, view.failed) == (n, {}), figures
    share = calls[1] / n
    assert share < 0.10, f"pod 2 share {share:.1%}: {figures}"
    assert all(c > n / 4 for i, c in enumerate(calls) if i != 1), figures


async def test_healing_the_slow_pod_gives_it_its_share_back() -> None:
    """set_slow(2, 1) heals: least_request then gives pod 2 about a quarter again (20-30 %)."""
    async with _cluster("least_request", service_time=0.01) as cluster:
        cluster.set_slow(2, 10)
        cluster.set_slow(2, 1)
        await fire(cluster, 400, concurrency=32)
        share = cluster.pods[1].calls_ok / 400
        assert 0.20 <= share <= 0.30, f"pod 2 share {share:.1%}"
