"""A policy switch with calls in flight: the new channel's picks are its own, the old channel's calls finish."""

from __future__ import annotations

import asyncio

from app.cluster import Cluster, ClusterConfig, configuration
from app.scene import caption
from tests.helpers import FAST_BACKOFF, wait_until

#: pick_first's burst: far more than the pinned pod serves in the moment of the switch
#: (4 workers x 20 ms = 200 calls/s: about 5 s of work).
BURST = 1000
NEW_CALLS = 20


async def test_round_robin_spread_after_a_switch_counts_only_its_own_calls() -> None:
    """pick_first, 1000 greets in flight (20 ms each), switch at once: round_robin's spread is its
    20 calls (5 per pod), never the old channel's; the caption says what the old one still finishes."""
    cluster = Cluster(ClusterConfig(seed=3, backoff=FAST_BACKOFF))
    await cluster.start("pick_first")
    try:
        await cluster.wait_ready()
        traffic = cluster.traffic
        old = traffic.burst(BURST)
        await asyncio.sleep(0)  # the calls leave on the pick_first channel
        cluster.set_policy("round_robin")  # within 0.5 s: at once
        await cluster.wait_ready()
        new = traffic.burst(NEW_CALLS)
        pinned = next(p for p in cluster.pods if p.calls_in_flight or p.calls_ok)

        # the three pods the old channel never reached answer the new calls at once; the pinned
        # pod's five queue behind the old channel's calls
        await wait_until(lambda: sum(t.done() for t in new) >= 15, 10, "the new channel's calls on 3 pods")
        view = cluster.view()
        spread = {p.index: p.calls_since_switch for p in view.pods}
        old_done = sum(t.done() for t in old)
        print(f"old calls done: {old_done}/{BURST}; new done {sum(t.done() for t in new)}; spread {spread}")
        assert spread[pinned.index] <= NEW_CALLS // 4, f"the old channel's {old_done} calls counted: {spread}"
        assert sum(spread.values()) == sum(t.done() for t in new), spread
        assert view.old_calls_in_flight == BURST - old_done > 0
        assert all(n == NEW_CALLS // 4 for i, n in spread.items() if i != pinned.index), spread
        text = caption(view)
        assert f"{view.old_calls_in_flight} calls from before the switch still finishing" in text, text
        assert "since the switch" in text, text

        await traffic.drain(15)
        view = cluster.view()
        assert [p.calls_since_switch for p in view.pods] == [NEW_CALLS // 4] * 4
        assert view.old_calls_in_flight == 0
        assert pinned.calls_ok == BURST + NEW_CALLS // 4
        assert traffic.stats.failed_total == 0
        assert "still finishing" not in caption(view)
        assert ": 5/5/5/5 since the switch." in caption(view)
    finally:
        await cluster.stop()


async def test_spread_before_any_switch_has_no_since_the_switch() -> None:
    """Without a switch the spread is the totals: no "since the switch", nothing still finishing."""
    cluster = Cluster(ClusterConfig(seed=3, backoff=FAST_BACKOFF, service_time=0.0))
    await cluster.start("round_robin")
    try:
        await cluster.wait_ready()
        await asyncio.gather(*cluster.traffic.burst(8))
        view = cluster.view()
        assert [p.calls_since_switch for p in view.pods] == [2, 2, 2, 2]
        assert caption(view).endswith("round_robin picks a pod per call: 2/2/2/2."), caption(view)
    finally:
        await cluster.stop()


async def test_a_view_sampled_while_a_configuration_starts_its_vip_is_the_old_one() -> None:
    """The app samples at 10 Hz: a view taken while configuration 4 starts its L7 proxy describes the
    running state (it used to raise "The L7 proxy has not been started" and crash the app)."""
    cluster = Cluster(ClusterConfig(seed=3, backoff=FAST_BACKOFF, service_time=0.0))
    await cluster.start("pick_first")
    try:
        await cluster.wait_ready()
        for number in (4, 1, 4):
            applying = asyncio.create_task(cluster.apply(configuration(number)))
            views = 0
            while not applying.done():
                cluster.view()  # as the sampler does, at every turn of the loop
                views += 1
                await asyncio.sleep(0)
            await applying
            assert views > 1
            await cluster.wait_ready()
            assert cluster.view().balancer == configuration(number).balancer
    finally:
        await cluster.stop()
