"""The cluster's history: per pod calls/s and latency per second over the last 60 s, from a real
cluster's counters, driven by an injected clock (seconds are the point, so no waiting for them)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from app.cluster import MAX_PODS, Cluster, ClusterConfig, History, HistoryView
from app.cluster.history import HISTORY_SECONDS
from tests.helpers import FAST_BACKOFF


class Clock:
    """Seconds that move only when the test says so."""

    def __init__(self, now: float = 1000.5) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float = 1.0) -> None:
        self.now += seconds


def _config(service_time: float = 0.0) -> ClusterConfig:
    return ClusterConfig(seed=3, service_time=service_time, backoff=FAST_BACKOFF)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def cluster(clock: Clock) -> AsyncIterator[Cluster]:
    c = Cluster(_config(), history=History(clock=clock))
    await c.start("pick_first")
    try:
        yield c
    finally:
        await c.stop()


async def _greets(cluster: Cluster, n: int) -> None:
    await cluster.wait_ready()
    async with asyncio.timeout(10):
        await asyncio.gather(*cluster.traffic.burst(n))


def _second(cluster: Cluster, clock: Clock) -> HistoryView:
    """Sample (what the counters gained goes to the second in progress, as the app's 10 Hz sampler
    does), then let that second end: the history shows it as the newest bucket."""
    cluster.view()
    clock.advance(1.0)
    return cluster.view().history


def _newest(history: HistoryView) -> dict[int, int]:
    return {p.index: p.now for p in history.pods}


async def test_the_switch_shows_one_pod_at_100_percent_then_25_percent_each(cluster: Cluster, clock: Clock) -> None:
    """pick_first: 40 greets in one second land on one pod (share 100 %); round_robin: the next
    second's 40 land 10 per pod (share 25 %). The balance series shows the step."""
    cluster.view()
    await _greets(cluster, 40)
    pinned = _second(cluster, clock)
    counts = _newest(pinned)
    assert sorted(counts.values()) == [0, 0, 0, 40], counts
    assert pinned.busiest_share[-1] == 1.0

    cluster.set_policy("round_robin")
    await _greets(cluster, 40)
    balanced = _second(cluster, clock)
    assert _newest(balanced) == {1: 10, 2: 10, 3: 10, 4: 10}
    assert balanced.busiest_share[-2:] == (1.0, 0.25)
    # The pinned second is still in the window, one bucket older.
    busiest = max(counts, key=lambda i: counts[i])
    assert [p.calls[-2] for p in balanced.pods if p.index == busiest] == [40]
    assert all(len(p.calls) == HISTORY_SECONDS for p in balanced.pods)
    assert len(balanced.busiest_share) == HISTORY_SECONDS


async def test_seconds_nobody_sampled_count_as_zero_calls(cluster: Cluster, clock: Clock) -> None:
    """The app's sampler pauses when idle: the seconds it skipped are 0 calls, not left out."""
    cluster.view()
    await _greets(cluster, 12)
    cluster.view()
    clock.advance(9.0)  # nine seconds later, the next sample
    history = cluster.view().history
    total = [sum(p.calls[i] for p in history.pods) for i in range(HISTORY_SECONDS)]
    assert total[-9:] == [12, 0, 0, 0, 0, 0, 0, 0, 0], total[-10:]
    assert history.busiest_share[-9:] == (1.0, None, None, None, None, None, None, None, None)


async def test_after_traffic_stops_it_scrolls_for_60_s_then_reads_flat(cluster: Cluster, clock: Clock) -> None:
    """``scrolling`` holds while the calls are in the window (the sampler must run), then the
    history is flat, ``scrolling`` is False and consecutive views compare equal (the app idles)."""
    cluster.view()
    await _greets(cluster, 20)
    assert cluster.view().history.scrolling, "calls in the second in progress: the picture will move"
    for second in range(1, HISTORY_SECONDS + 1):
        history = _second(cluster, clock)
        assert history.scrolling, f"second {second}: the calls are still in the window"
        assert sum(p.calls[-second] for p in history.pods) == 20
    flat = _second(cluster, clock)
    assert not flat.scrolling
    assert all(not any(p.calls) for p in flat.pods) and flat.peak == 0
    assert all(p.p50_ms is None and p.p99_ms is None for p in flat.pods)
    before = cluster.view()
    clock.advance(30.0)
    assert cluster.view() == before, "an idle cluster's views must compare equal, seconds apart"


async def test_memory_is_bounded_by_the_window_over_200_seconds_and_scaling(cluster: Cluster, clock: Clock) -> None:
    """200 simulated seconds of calls while the cluster scales 4 -> 8 -> 1 -> 4: per pod the history
    holds 60 seconds of calls and at most 60 of latency, whatever ran before."""
    cluster.set_policy("round_robin")
    cluster.view()
    figures = []
    for second in range(200):
        if second == 40:
            while len(cluster.pods) < MAX_PODS:
                await cluster.add_pod()
        elif second == 100:
            while len(cluster.pods) > 1:
                await cluster.remove_pod(grace=0.5)
        elif second == 150:
            while len(cluster.pods) < 4:
                await cluster.add_pod()
        if second in (40, 100, 150):
            cluster.set_policy("round_robin", redial=True)  # a fresh channel resolves the pods there are now
        await _greets(cluster, 8)
        history = _second(cluster, clock)
        held = cluster.history.seconds_held()
        figures.append(held)
        pods = len(cluster.pods)
        assert len(history.pods) == pods
        assert held <= 2 * HISTORY_SECONDS * pods, f"second {second}: {held} buckets for {pods} pods"
        assert all(len(p.calls) == HISTORY_SECONDS for p in history.pods)
    assert max(figures) <= 2 * HISTORY_SECONDS * MAX_PODS, max(figures)
    # Every call of the last second is in it, none lost or counted twice across the scaling.
    assert sum(p.now for p in history.pods) == 8


async def test_scaling_adds_a_flat_series_and_drops_a_removed_one(cluster: Cluster, clock: Clock) -> None:
    """A new pod's series starts flat (it served nothing before); a removed pod's series leaves the
    view; a pod started again under the same number starts from nothing (not the old one's latency)."""
    cluster.set_policy("round_robin")
    cluster.view()
    await _greets(cluster, 8)
    _second(cluster, clock)
    await cluster.add_pod()
    history = _second(cluster, clock)
    assert [p.index for p in history.pods] == [1, 2, 3, 4, 5]
    assert history.pods[4].calls == (0,) * HISTORY_SECONDS
    await cluster.remove_pod(grace=0.5)
    history = _second(cluster, clock)
    assert [p.index for p in history.pods] == [1, 2, 3, 4]
    await cluster.add_pod()
    history = _second(cluster, clock)
    assert history.pods[4].calls == (0,) * HISTORY_SECONDS
    assert history.pods[4].p99_ms is None


async def test_reset_starts_the_history_afresh_without_negative_seconds(cluster: Cluster, clock: Clock) -> None:
    """``Cluster.reset()`` zeroes the counters the history differences: it restarts flat and counts
    the calls after the reset exactly (a counter going back to 0 is never a negative second)."""
    cluster.view()
    await _greets(cluster, 30)
    assert _second(cluster, clock).peak == 30
    cluster.reset()
    history = cluster.view().history
    assert history.peak == 0 and not history.scrolling
    await _greets(cluster, 6)
    history = _second(cluster, clock)
    assert min(min(p.calls) for p in history.pods) == 0
    assert sum(p.now for p in history.pods) == 6
    assert history.peak == 6


async def test_window_latency_moves_when_a_pod_is_slowed_and_leaves_with_the_window(clock: Clock) -> None:
    """Pod 2 made ten times slower (5 ms -> 50 ms a greet): its p50 and p99 over the window rise to
    at least 50 ms; once those seconds have scrolled out the window has no latency left, while the
    cumulative p99 (``PodView.p99_ms``, what existed before) still remembers them."""
    cluster = Cluster(_config(service_time=0.005), history=History(clock=clock))
    await cluster.start("round_robin")
    try:
        cluster.view()
        await _greets(cluster, 8)
        healthy = {p.index: p for p in _second(cluster, clock).pods}
        assert all(p.p50_ms is not None and p.p50_ms >= 5.0 for p in healthy.values()), healthy
        assert cluster.toggle_slow(2)
        await _greets(cluster, 40)
        slowed = {p.index: p for p in _second(cluster, clock).pods}
        p50, p99 = slowed[2].p50_ms, slowed[2].p99_ms
        assert p50 is not None and p99 is not None
        assert p50 >= 50.0 and p99 >= 50.0, slowed[2]
        assert healthy[2].p50_ms is not None and p50 > healthy[2].p50_ms, (healthy[2], slowed[2])
        clock.advance(HISTORY_SECONDS)
        view = cluster.view()
        gone = {p.index: p for p in view.history.pods}
        assert gone[2].p50_ms is None and gone[2].p99_ms is None, gone[2]
        assert view.pods[1].p99_ms >= 50.0, "the cumulative p99 keeps the slow calls"
    finally:
        await cluster.stop()


async def test_view_is_the_same_object_within_a_second_while_nothing_moves(cluster: Cluster, clock: Clock) -> None:
    """Sampling ten times a second does not rebuild the history's view when nothing it shows changed."""
    first = cluster.view().history
    clock.advance(0.1)
    assert cluster.view().history is first
