"""Steady traffic (`t`) with the real load model: pinned, the pod pegs at 100 % and calls queue;
balanced, every pod reads clearly and evenly busy. A closed loop of users: the queue stays bounded
and every call ends OK."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from app.cluster import ClusterConfig
from app.ui import STEADY_USERS, RpcvizApp
from tests.app.scenarios import settle


class Queues:
    """The deepest queue seen while waiting: at any pod, and calls in flight at the client."""

    def __init__(self, app: RpcvizApp) -> None:
        self.app = app
        self.pod = 0
        self.client = 0

    async def until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``condition`` every 20 ms (noting the queues) until true; fail after ``timeout`` s."""
        cluster = self.app.cluster
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
    app = RpcvizApp(config)
    async with app.run_test(size=(80, 24)) as pilot:
        cluster = app.cluster
        await cluster.wait_ready()
        queues = Queues(app)
        await pilot.press("t")
        assert cluster.traffic.steady

        # pinned: 40 users offer more than one pod's 200 calls/s, so it saturates and calls queue
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
        await pilot.press("p")
        await queues.until(
            lambda: (
                cluster.view().old_calls_in_flight == 0
                and all(p.calls_since_switch >= 150 for p in cluster.view().pods)
            ),
            20,
            "round_robin to spread two seconds of calls",
        )
        loads = [pod.load() for pod in cluster.pods]
        print(f"balanced: loads {[round(x, 2) for x in loads]}, {cluster.view().calls_per_second:.0f} calls/s")
        assert all(0.15 <= x <= 0.45 for x in loads), loads
        assert max(loads) / min(loads) <= 1.6, loads

        await pilot.press("t")
        assert not cluster.traffic.steady
        await settle(app, pilot)
        stats = cluster.traffic.stats
        assert stats.failed_total == 0, stats.failed
        assert stats.fired == stats.ok
        assert queues.pod <= STEADY_USERS and queues.client <= STEADY_USERS, (queues.pod, queues.client)
