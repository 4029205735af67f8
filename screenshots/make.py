"""Regenerate the SVG screenshots in this folder: ``python screenshots/make.py``.

Every shot is deterministic: two runs write the same bytes (``git status`` stays clean). Each runs
the real cluster with a seeded balancer and no service time, fires a counted number of greets (not
"for N seconds"), settles before the shot, and freezes what reads a clock: connection ages (the
app's clock), a retry countdown (the cluster's), and the pods' load (their load models' clocks).

The shots with load on the meters are stills: calls held at the pods (a service time of a few
seconds, just for them), the load clocks frozen once a load window has passed, so a meter reads
exactly how many workers are busy. Latencies are wall-clock figures, so the shots that would show
them (a slow pod) strip them.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from textual.pilot import Pilot

from app.cluster import Cluster, ClusterConfig
from app.ui import RpcvizApp
from tests.app import scenarios
from tests.helpers import wait_until
from transport import BackoffConfig

Scenario = Callable[[Pilot[None]], Awaitable[None]]

#: How long a held call stays at its pod: the shot is taken well within it.
HOLD = 3.0
#: The greets fired before a still (they land at once: no service time).
GREETS = 20


def _app(pilot: Pilot[None]) -> RpcvizApp:
    app = pilot.app
    assert isinstance(app, RpcvizApp)
    return app


async def shoot(app: RpcvizApp, pilot: Pilot[None]) -> None:
    """Sample once more and let the screen render it."""
    app.wake()
    app.sample()
    await pilot.pause()


async def hold(app: RpcvizApp, pilot: Pilot[None], calls: int, pods: list[int] | None = None) -> None:
    """Fire ``calls`` greets that stay at their pods (the ``pods`` given, else every pod) for
    :data:`HOLD` seconds, one at a time (so least_request sees each one), then freeze the load
    clocks once a load window has passed: the meters read the workers those calls keep busy."""
    cluster = app.cluster
    held = set(pods or [pod.index for pod in cluster.pods])
    for pod in cluster.pods:
        if pod.index in held:
            pod.load_model.service_time = HOLD / pod.load_model.slow_factor
    stats = cluster.traffic.stats
    answered = stats.ok

    def settled() -> int:
        """Calls fired here that are held at a pod or answered (the client has no other in flight)."""
        return sum(p.calls_in_flight for p in cluster.pods if p.index in held) + stats.ok - answered

    for n in range(1, calls + 1):
        cluster.traffic.greet()
        await wait_until(lambda: settled() >= n, 5, "the call to be held or answered")  # noqa: B023
    await wait_until(lambda: stats.in_flight == sum(p.calls_in_flight for p in cluster.pods), 5, "calls at the pods")
    window = max(pod.load_model.window for pod in cluster.pods)
    arrived = time.monotonic()
    await wait_until(lambda: time.monotonic() > arrived + window, 5, "a load window")
    frozen = time.monotonic()
    for pod in cluster.pods:
        pod.load_model.clock = lambda: frozen
    await shoot(app, pilot)


def strip_latencies(cluster: Cluster) -> None:
    """Forget the measured latencies (wall-clock: they differ from run to run)."""
    stats = cluster.traffic.stats
    stats.latency.clear()
    stats.latency_all = type(stats.latency_all)()


async def still(pilot: Pilot[None], policy: str) -> None:
    """20 greets, then four held at the pods: pinned, they fill one pod's four workers (100 %);
    balanced, one per pod (25 %)."""
    app = _app(pilot)
    await app.cluster.wait_ready()
    if policy != app.cluster.policy:
        await pilot.press("p")
        await app.cluster.wait_ready()
    await scenarios.greets(app, pilot, GREETS)
    await hold(app, pilot, 4)


async def steady_pinned(pilot: Pilot[None]) -> None:
    await still(pilot, "pick_first")


async def steady_balanced(pilot: Pilot[None]) -> None:
    await still(pilot, "round_robin")


async def pod_down(pilot: Pilot[None]) -> None:
    """round_robin, 20 greets, then pod #3 killed: skipped, its connection backing off (the retry
    countdown frozen at the moment it started: one backoff, no jitter)."""
    app = _app(pilot)
    cluster = app.cluster
    await pilot.press("p")
    await cluster.wait_ready()
    await scenarios.greets(app, pilot, GREETS)
    await pilot.press("3")

    def backing_off() -> float | None:
        for sc in cluster.channel.subchannels:
            if sc.next_attempt_at is not None and sc.state.name == "TRANSIENT_FAILURE":
                return sc.next_attempt_at
        return None

    await wait_until(lambda: backing_off() is not None, 10, "conn 3 to back off")
    started = time.monotonic()
    # the countdown as it read when the backoff started (whichever attempt is backing off)
    cluster.clock = lambda: (backing_off() or 0.0) - cluster.config.backoff.base_delay
    await scenarios.settle(app, pilot)
    assert time.monotonic() - started < cluster.config.backoff.base_delay, "too slow: a second attempt failed"


async def slow_pod(pilot: Pilot[None], number: int) -> None:
    """Configuration ``number`` (5: least_request; 2 then ``s 2``: round_robin) with pod #2 ten
    times slower: 20 greets one after the other, those at pod #2 held there. least_request sends it
    one (then it is the busier of any two); round_robin every fourth."""
    app = _app(pilot)
    await app.cluster.wait_ready()
    await scenarios.choose(app, pilot, number)
    if number != 5:
        await pilot.press("s", "2")
    await scenarios.settle(app, pilot)
    await hold(app, pilot, GREETS, pods=[2])
    strip_latencies(app.cluster)
    await shoot(app, pilot)


async def least_request(pilot: Pilot[None]) -> None:
    await slow_pod(pilot, 5)


async def round_robin_slow(pilot: Pilot[None]) -> None:
    await slow_pod(pilot, 2)


async def pooled(pilot: Pilot[None]) -> None:
    """Configuration 7: four pick_first channels through the VIP, 20 greets rotating over them."""
    app = _app(pilot)
    await app.cluster.wait_ready()
    await scenarios.choose(app, pilot, 7)
    await scenarios.greets(app, pilot, GREETS)


SNAPSHOT = scenarios.SNAPSHOT_CONFIG
#: One backoff of exactly a second: the countdown reads the same on every run.
BACKING_OFF = replace(SNAPSHOT, backoff=BackoffConfig(base_delay=1.0, max_delay=1.0, jitter=0.0))

SHOTS: list[tuple[str, Scenario, tuple[int, int], ClusterConfig]] = [
    ("replay-connection-pinning", scenarios.replay_pinned, (120, 36), SNAPSHOT),
    ("chat-two-answers", scenarios.chat_two_answers, (120, 36), SNAPSHOT),
    ("history-after-switch", scenarios.history_after_switch, (120, 36), SNAPSHOT),
    ("first-screen", scenarios.first_screen, (80, 24), SNAPSHOT),
    ("pinned-20-greets", scenarios.pinned, (80, 24), SNAPSHOT),
    ("balanced-20-greets", scenarios.balanced, (80, 24), SNAPSHOT),
    ("help", scenarios.help_screen, (80, 24), SNAPSHOT),
    ("steady-pinned", steady_pinned, (110, 32), SNAPSHOT),
    ("steady-balanced", steady_balanced, (110, 32), SNAPSHOT),
    ("pod-down", pod_down, (110, 32), BACKING_OFF),
    ("configuration-3-max-age", scenarios.max_age_rotated, (110, 32), replace(SNAPSHOT, configuration_age=2.0)),
    ("configuration-4-l7-proxy", scenarios.l7_burst, (110, 32), SNAPSHOT),
    ("configuration-5-least-request", least_request, (110, 32), SNAPSHOT),
    ("round-robin-slow-pod", round_robin_slow, (110, 32), SNAPSHOT),
    ("configuration-6-scale-up", scenarios.scaled_up, (110, 32), replace(SNAPSHOT, configuration_age=600.0)),
    ("configuration-7-more-connections", pooled, (110, 32), SNAPSHOT),
]


async def main() -> None:
    for name, scenario, size, config in SHOTS:
        app = RpcvizApp(config)
        async with app.run_test(size=size) as pilot:
            await scenario(pilot)
            await pilot.wait_for_scheduled_animations()  # as the snapshot tests do (a tab's underline slides)
            await pilot.pause()
            app.save_screenshot(str(HERE / f"{name}.svg"))
        print(f"screenshots/{name}.svg")


if __name__ == "__main__":
    asyncio.run(main())
