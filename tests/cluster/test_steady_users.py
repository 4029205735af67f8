"""Steady traffic as the app's `t` runs it (40 users greeting back to back, 150 ms apart) with the
real load model: pinned, the pod pegs at 100 % and calls queue; balanced, every pod reads clearly
and evenly busy. A closed loop: the queue stays bounded and every call ends OK."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from app.cluster import Cluster, ClusterConfig
from app.ui import STEADY_THINK_TIME, STEADY_USERS


class Queues:
    """The deepest queue seen while waiting: at any pod, and calls in flight at the client."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.pod = 0
        self.client = 0

    async def until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``condition`` every 20 ms (noting the queues) until true; fail after ``timeout`` s."""
        cluster = self.cluster
        deadline = time.monotonic() + timeout
        while True:
            self.pod = max(self.pod, *(pod.calls_in_flight for pod in cluster.pods))
            self.client = max(self.client, cluster.traffic.stats.in_flight)
            if condition():
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            await asyncio.sleep(0.02)


async def test_steady_users_peg_the_pinned_pod_and_balance_evenly() -> None:
    config = ClusterConfig(seed=3)  # the real load model: 4 workers x 20 ms per pod
    cluster = Cluster(config)
    await cluster.start("pick_first")
    try:
        await cluster.wait_ready()
        traffic = cluster.traffic
        queues = Queues(cluster)
        traffic.start_users(STEADY_USERS, STEADY_THINK_TIME)
        assert traffic.steady and cluster.view().users == STEADY_USERS

        # pinned: the users offer more than one pod's 200 calls/s, so it saturates and calls queue
        pinned = cluster.view().pinned_pod
        assert pinned is not None
        pod = cluster.pod(pinned)
        await queues.until(lambda: pod.calls_ok >= 400, 20, "two seconds' worth of calls at the pinned pod")
        view = cluster.view()
        load, p50 = pod.load(), view.pods[pinned - 1].p50_ms
        service_ms = config.service_time * 1000
        print(f"pinned: load {load:.2f}, p50 {p50:.1f} ms, {view.calls_per_second:.0f} calls/s, queue {queues.pod}")
        assert load >= 0.95, f"pinned pod's load {load:.2f} < 0.95"
        assert p50 >= 1.5 * service_ms, f"pinned p50 {p50:.1f} ms < 1.5 x {service_ms:g} ms: no queueing shows"

        # balanced: the same users over four pods, each clearly busy, evenly
        cluster.set_policy("round_robin")

        def spread() -> bool:
            view = cluster.view()
            return view.old_calls_in_flight == 0 and all(p.calls_since_switch >= 150 for p in view.pods)

        await queues.until(spread, 20, "round_robin to spread two seconds of calls")
        loads = [pod.load() for pod in cluster.pods]
        print(f"balanced: loads {[round(x, 2) for x in loads]}, {cluster.view().calls_per_second:.0f} calls/s")
        assert all(0.15 <= x <= 0.45 for x in loads), loads
        assert max(loads) / min(loads) <= 1.6, loads

        traffic.stop_steady()
        assert not traffic.steady
        await traffic.drain(10)
        stats = traffic.stats
        assert stats.failed_total == 0, stats.failed
        assert stats.fired == stats.ok
        assert queues.pod <= STEADY_USERS and queues.client <= STEADY_USERS, (queues.pod, queues.client)
    finally:
        await cluster.stop()
