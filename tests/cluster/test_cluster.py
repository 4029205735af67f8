"""The scene's model: four real pods behind the in-process L4 balancer, one client channel."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from app.cluster import Cluster, ClusterConfig, LoadModel, Pod
from app.cluster.traffic import Traffic
from tests.helpers import FAST, FAST_BACKOFF, greet, served_by, wait_until
from transport import Channel, ConnectivityState


def _config(seed: int = 1, **kwargs: object) -> ClusterConfig:
    return ClusterConfig(seed=seed, backoff=FAST_BACKOFF, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    """A started four-pod cluster (pick_first), seeded, stopped afterwards."""
    c = Cluster(_config())
    await c.start("pick_first")
    try:
        yield c
    finally:
        await c.stop()


async def _burst(cluster: Cluster, n: int) -> None:
    await asyncio.gather(*cluster.traffic.burst(n))


def _assert_reconciled(cluster: Cluster) -> None:
    """Client and server side of the accounting agree, call for call."""
    stats = cluster.traffic.stats
    assert stats.in_flight == 0
    assert stats.fired == stats.ok + stats.failed_total
    assert stats.ok == sum(pod.calls_ok for pod in cluster.pods)
    assert stats.ok == sum(stats.landed.values())
    for pod in cluster.pods:
        assert stats.landed.get(pod.name, 0) == pod.calls_ok


# --- pick_first through the L4 balancer -----------------------------------------


async def test_pick_first_pins_every_call_to_one_pod(cluster: Cluster) -> None:
    """One HTTP/2 connection to the VIP: all 100 greets land on the pod the balancer chose."""
    await cluster.wait_ready()
    await _burst(cluster, 100)

    counts = {pod.index: pod.calls_ok for pod in cluster.pods}
    pinned = [index for index, n in counts.items() if n]
    assert len(pinned) == 1, counts
    pod_index = pinned[0]
    assert counts[pod_index] == 100
    assert sorted(counts.values()) == [0, 0, 0, 100]

    view = cluster.view()
    assert view.pinned_pod == pod_index
    assert view.ok == 100 and view.failed_total == 0
    assert [p.pinned for p in view.pods].count(True) == 1

    assert cluster.proxy is not None
    pod_address = cluster.pods[pod_index - 1].address
    totals = {b.address: b.connections_total for b in cluster.proxy.backends}
    assert sum(totals.values()) == 1
    assert totals[pod_address] == 1

    assert len(view.connections) == 1
    (conn,) = view.connections
    assert conn.state == "READY"
    assert conn.pod == pod_index
    assert conn.via_balancer is True
    assert conn.calls == 100


async def test_round_robin_spreads_calls_evenly_over_four_connections(cluster: Cluster) -> None:
    """Client-side round_robin: one connection per pod, 100 greets -> 25 each."""
    cluster.set_policy("round_robin")
    await cluster.wait_ready()
    await _burst(cluster, 100)

    counts = [pod.calls_ok for pod in cluster.pods]
    assert all(24 <= n <= 26 for n in counts), counts
    assert counts == [25, 25, 25, 25]

    view = cluster.view()
    assert view.ready_connections == 4
    assert view.pinned_pod is None
    assert not any(c.via_balancer for c in view.connections)
    assert sorted(c.pod for c in view.connections if c.pod is not None) == [1, 2, 3, 4]
    assert all(pod.connections == 1 for pod in cluster.pods), [p.connections for p in cluster.pods]


# --- accounting -------------------------------------------------------------------


async def test_accounting_reconciles_for_both_policies_and_across_a_switch(cluster: Cluster) -> None:
    """fired == ok + failed and ok == the pods' own counters == landed, under each policy."""
    await cluster.wait_ready()
    await _burst(cluster, 40)
    _assert_reconciled(cluster)
    assert cluster.traffic.stats.ok == 40

    cluster.set_policy("round_robin")
    await cluster.wait_ready()
    await _burst(cluster, 40)
    _assert_reconciled(cluster)
    assert cluster.traffic.stats.ok == 80

    cluster.set_policy("pick_first")
    await cluster.wait_ready()
    await _burst(cluster, 20)
    _assert_reconciled(cluster)
    assert cluster.traffic.stats.fired == 100


async def test_switching_policy_mid_burst_loses_no_call(cluster: Cluster) -> None:
    """The old channel drains its in-flight calls: every fired call ends, and ends OK."""
    await cluster.wait_ready()
    stats = cluster.traffic.stats
    first = cluster.traffic.burst(200)
    await wait_until(lambda: stats.ok >= 50, what="50 greets done")
    assert stats.in_flight > 0, "the switch must happen with calls in flight"

    cluster.set_policy("round_robin")
    second = cluster.traffic.burst(100)
    await cluster.traffic.drain(timeout=10)

    assert all(t.done() for t in first + second)
    assert stats.fired == 300
    assert stats.in_flight == 0
    assert stats.fired == stats.ok + stats.failed_total
    assert stats.failed == {}
    assert stats.ok == 300
    _assert_reconciled(cluster)


async def test_seeded_balancer_pins_the_same_pod() -> None:
    """Two clusters with the same seed: the L4 balancer pins the same pod under pick_first."""
    pinned: list[int | None] = []
    for _ in range(2):
        async with Cluster(_config(seed=42)) as c:
            await c.wait_ready()
            await _burst(c, 10)
            pinned.append(c.view().pinned_pod)
            assert sorted(p.calls_ok for p in c.pods) == [0, 0, 0, 10]
    assert pinned[0] is not None
    assert pinned[0] == pinned[1]


# --- steady traffic -----------------------------------------------------------------


async def test_steady_traffic_stops_on_stop_steady_and_accounts_exactly(cluster: Cluster) -> None:
    """start_steady(200) fires until stop_steady(); after a drain every call is accounted for."""
    await cluster.wait_ready()
    traffic = cluster.traffic
    traffic.start_steady(200)
    loop_task = traffic._steady
    assert loop_task is not None and traffic.steady
    assert cluster.view().steady_rate == 200

    await wait_until(lambda: traffic.stats.fired >= 50, what="50 steady greets fired")
    traffic.stop_steady()
    assert not traffic.steady
    await asyncio.wait([loop_task], timeout=2)
    assert loop_task.cancelled()

    await traffic.drain(timeout=5)
    fired = traffic.stats.fired
    for _ in range(20):  # the loop is gone: nothing more is fired
        await asyncio.sleep(0)
    assert traffic.stats.fired == fired
    assert cluster.view().steady_rate is None
    assert traffic.stats.ok == fired
    _assert_reconciled(cluster)


async def test_reset_zeroes_every_counter(cluster: Cluster) -> None:
    """reset() zeroes traffic totals, pod calls, proxy totals and channel stats."""
    await cluster.wait_ready()
    await _burst(cluster, 30)
    assert cluster.proxy is not None
    assert sum(b.bytes_up for b in cluster.proxy.backends) > 0

    cluster.reset()
    stats = cluster.traffic.stats
    assert (stats.fired, stats.ok, stats.failed, stats.landed) == (0, 0, {}, {})
    assert all(pod.calls_ok == 0 and pod.server.stats.calls_served == 0 for pod in cluster.pods)
    for backend in cluster.proxy.backends:
        assert backend.connections_total == backend.connections_open
        assert (backend.bytes_up, backend.bytes_down, backend.connect_failures) == (0, 0, 0)
    ch = cluster.channel.stats
    assert (ch.calls_started, ch.calls_succeeded, ch.calls_failed) == (0, 0, 0)
    for sc in cluster.channel.subchannels:
        assert (sc.stats.calls_started, sc.stats.calls_succeeded, sc.stats.calls_failed) == (0, 0, 0)
    view = cluster.view()
    assert (view.fired, view.ok, view.failed_total) == (0, 0, 0)
    assert all(p.calls == 0 for p in view.pods)

    # counting starts afresh and still reconciles
    await _burst(cluster, 10)
    _assert_reconciled(cluster)
    assert stats.fired == stats.ok == 10


# --- the load model ---------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_load_is_full_while_one_worker_is_busy_all_window() -> None:
    """A single worker busy for a whole window reads ~100 % (real clock)."""
    model = LoadModel(service_time=30.0, workers=1, window=0.2)
    task = asyncio.create_task(model.work())
    try:
        await wait_until(lambda: model.running == 1, what="the call to start")
        await wait_until(lambda: model.load() > 0.9, timeout=2, what="load > 0.9")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert model.running == 0


async def test_load_is_exact_with_a_controlled_clock() -> None:
    """Busy the whole window -> 1.0; half the window -> 0.5; idle a window -> 0.0."""
    clock = FakeClock()
    model = LoadModel(service_time=0.02, workers=1, window=0.5, clock=clock)
    assert model.load() == 0.0
    task = asyncio.create_task(model.work())
    await wait_until(lambda: model.running == 1, what="the call to start")
    clock.now = 0.25
    assert model.load() == pytest.approx(0.5)
    clock.now = 0.5
    assert model.load() == pytest.approx(1.0)
    await task  # ends at clock 0.5
    assert model.completed == 1 and model.running == 0
    assert model.load() == pytest.approx(1.0)
    clock.now = 0.75
    assert model.load() == pytest.approx(0.5)
    clock.now = 1.0
    assert model.load() == 0.0


async def test_load_with_two_workers_and_one_busy_is_half() -> None:
    """Two workers, one busy for the whole window -> 0.5."""
    clock = FakeClock()
    model = LoadModel(service_time=0.02, workers=2, window=0.5, clock=clock)
    task = asyncio.create_task(model.work())
    await wait_until(lambda: model.running == 1, what="the call to start")
    clock.now = 0.5
    assert model.load() == pytest.approx(0.5)
    await task


async def test_calls_beyond_the_workers_queue() -> None:
    """With one worker, three calls: one runs, two queue; all complete in turn."""
    model = LoadModel(service_time=0.02, workers=1, window=0.5)
    tasks = [asyncio.create_task(model.work()) for _ in range(3)]
    await wait_until(lambda: model.running == 1, what="one call running")
    assert model.queued == 2
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert (model.queued, model.running, model.completed) == (0, 0, 3)


async def test_a_saturated_pod_reads_full_load_even_when_the_loop_hands_over_late() -> None:
    """Calls always waiting for its 4 workers: the pod reads ~100 %, though a busy event loop (as
    the app's rendering is) resumes each queued call late after the one before it ends."""
    model = LoadModel(service_time=0.005, workers=4, window=0.3)
    stop = asyncio.Event()

    async def user() -> None:
        while not stop.is_set():
            await model.work()

    async def busy_loop() -> None:
        while not stop.is_set():
            busy_until = time.monotonic() + 0.002
            while time.monotonic() < busy_until:  # holds the loop, as a frame of rendering does
                pass
            await asyncio.sleep(0)

    tasks = [asyncio.create_task(user()) for _ in range(12)] + [asyncio.create_task(busy_loop())]
    try:
        await wait_until(lambda: model.completed >= 200, 10, "200 calls")
        load = model.load()
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert load >= 0.95, f"a pod with calls always queued reads {load:.2f}"


async def test_load_model_rejects_bad_parameters() -> None:
    """workers < 1, window <= 0 and negative service times are refused."""
    for kwargs in ({"workers": 0}, {"window": 0.0}, {"service_time": -1.0}):
        with pytest.raises(ValueError):
            LoadModel(**kwargs)


# --- pods ---------------------------------------------------------------------------------


async def test_pod_restart_reuses_its_port_and_keeps_counters() -> None:
    """stop() then start(): same address, counters carried over, serving again."""
    pod = Pod(3, LoadModel(service_time=0.0))
    address = await pod.start()
    channel = Channel.dial(str(address), "pick_first", options=FAST)
    try:
        result = await greet(channel, timeout=5)
        assert served_by(result) == "pod-3"
        assert pod.calls_ok == 1

        await pod.stop(grace=1.0)
        assert not pod.serving
        again = await pod.start()
        assert again == address
        assert pod.serving
        assert pod.calls_ok == 1
        assert pod.server.stats.calls_served == 1

        # a fresh client reaches the restarted pod on the same address
        async with Channel.dial(str(address), "pick_first", options=FAST) as fresh:
            result = await greet(fresh, timeout=5)
        assert served_by(result) == "pod-3"
        assert pod.calls_ok == 2
        assert pod.server.stats.connections_total == 2
    finally:
        await channel.close(grace=0)
        await pod.stop(grace=0.5)


async def test_wait_for_ready_call_waits_out_a_pod_restart() -> None:
    """A pod is down and the client is in TRANSIENT_FAILURE: a wait_for_ready greet
    must wait for the pod to come back instead of failing fast (gRPC semantics)."""
    pod = Pod(2, LoadModel(service_time=0.0))
    address = await pod.start()
    channel = Channel.dial(str(address), "pick_first", options=FAST)
    try:
        await greet(channel, timeout=5)
        await pod.stop(grace=1.0)
        await wait_until(lambda: channel.state is ConnectivityState.IDLE, what="pick_first to go IDLE (A62)")
        channel.connect()  # IDLE until asked: try now, and find the pod gone
        await wait_until(
            lambda: channel.state is ConnectivityState.TRANSIENT_FAILURE, what="the client to see the pod gone"
        )
        call = asyncio.create_task(greet(channel, timeout=5, wait_for_ready=True))
        for _ in range(5):  # let the call run its first steps while nothing is reachable
            await asyncio.sleep(0)
        assert not call.done(), f"the wait_for_ready call failed fast: {call.exception()!r}"
        await pod.start()
        result = await call
        assert served_by(result) == "pod-2"
        assert pod.calls_ok == 2
    finally:
        await channel.close(grace=0)
        await pod.stop(grace=0.5)


async def test_unknown_policy_is_refused(cluster: Cluster) -> None:
    """set_policy with a name outside the scene raises ValueError and changes nothing."""
    with pytest.raises(ValueError, match="unknown policy"):
        cluster.set_policy("weighted_round_robin")
    assert cluster.policy == "pick_first"


async def test_traffic_counts_a_failure_with_its_status() -> None:
    """A greet to nothing listening ends as exactly one failure with a status code."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    channel = Channel.dial(f"127.0.0.1:{port}", "pick_first", options=FAST)
    try:
        traffic = Traffic(lambda: channel, timeout=1.0)
        await asyncio.gather(traffic.greet())
        await traffic.drain(timeout=3)
        assert traffic.stats.fired == 1
        assert traffic.stats.ok == 0
        assert traffic.stats.failed_total == 1
        assert traffic.stats.in_flight == 0
    finally:
        await channel.close(grace=0)
