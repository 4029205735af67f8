"""Regenerate the SVG screenshots in this folder: ``python screenshots/make.py``.

The first four are the snapshot tests' states (deterministic); the others run
steady traffic with the real load model, so their meters move: the scene's two
policies, a pod down, and the issue-12 configurations (3-6, and round_robin
with a slow pod for contrast with least_request).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from textual.pilot import Pilot

from app.cluster import ClusterConfig
from app.ui import RpcvizApp
from tests.app import scenarios

Scenario = Callable[[Pilot[None]], Awaitable[None]]


async def steady(pilot: Pilot[None], policy: str) -> None:
    app = pilot.app
    assert isinstance(app, RpcvizApp)
    if policy != app.cluster.policy:
        await pilot.press("p")
    await app.cluster.wait_ready()
    await pilot.press("t")
    await asyncio.sleep(2.0)  # let the one-second load window fill
    app.sample()
    await pilot.pause()


async def steady_pinned(pilot: Pilot[None]) -> None:
    await steady(pilot, "pick_first")


async def steady_balanced(pilot: Pilot[None]) -> None:
    await steady(pilot, "round_robin")


async def pod_down(pilot: Pilot[None]) -> None:
    """round_robin with steady traffic, then pod #3 killed: skipped, backing off."""
    app = pilot.app
    assert isinstance(app, RpcvizApp)
    await pilot.press("p")
    await app.cluster.wait_ready()
    await pilot.press("t")
    await asyncio.sleep(1.0)
    await pilot.press("3")
    await asyncio.sleep(1.5)
    app.sample()
    await pilot.pause()


async def configuration(pilot: Pilot[None], number: int, seconds: float) -> None:
    """Configuration ``number`` under steady traffic for ``seconds``, with the real load model."""
    app = pilot.app
    assert isinstance(app, RpcvizApp)
    await app.cluster.wait_ready()
    await scenarios.choose(app, pilot, number)
    await pilot.press("t")
    await asyncio.sleep(seconds)
    app.sample()
    await pilot.pause()


async def max_age(pilot: Pilot[None]) -> None:
    await configuration(pilot, 3, 7.0)  # a few rotations of a 2 s age


async def l7_proxy(pilot: Pilot[None]) -> None:
    await configuration(pilot, 4, 2.0)


async def least_request(pilot: Pilot[None]) -> None:
    await configuration(pilot, 5, 4.0)


async def round_robin_slow(pilot: Pilot[None]) -> None:
    """round_robin with pod #2 ten times slower: the contrast to configuration 5."""
    app = pilot.app
    assert isinstance(app, RpcvizApp)
    await app.cluster.wait_ready()
    await scenarios.choose(app, pilot, 2)
    await pilot.press("s", "2", "t")
    await asyncio.sleep(4.0)
    app.sample()
    await pilot.pause()


async def scale_up(pilot: Pilot[None]) -> None:
    await configuration(pilot, 6, 9.0)  # 2 s age, re-resolving at most every 3 s: #5 and #6 fill up


#: The configurations' shots: a short age so rotations happen while the shot is taken.
FAST = ClusterConfig(seed=3, configuration_age=2.0, min_reresolution_interval=3.0)

SHOTS: list[tuple[str, Scenario, tuple[int, int], ClusterConfig]] = [
    ("first-screen", scenarios.first_screen, (80, 24), scenarios.SNAPSHOT_CONFIG),
    ("pinned-20-greets", scenarios.pinned, (80, 24), scenarios.SNAPSHOT_CONFIG),
    ("balanced-20-greets", scenarios.balanced, (80, 24), scenarios.SNAPSHOT_CONFIG),
    ("help", scenarios.help_screen, (80, 24), scenarios.SNAPSHOT_CONFIG),
    ("steady-pinned", steady_pinned, (110, 32), ClusterConfig(seed=3)),
    ("steady-balanced", steady_balanced, (110, 32), ClusterConfig(seed=3)),
    ("pod-down", pod_down, (110, 32), ClusterConfig(seed=3)),
    ("configuration-3-max-age", max_age, (110, 32), FAST),
    ("configuration-4-l7-proxy", l7_proxy, (110, 32), FAST),
    ("configuration-5-least-request", least_request, (110, 32), FAST),
    ("round-robin-slow-pod", round_robin_slow, (110, 32), FAST),
    ("configuration-6-scale-up", scale_up, (110, 32), FAST),
]


async def main() -> None:
    for name, scenario, size, config in SHOTS:
        app = RpcvizApp(config)
        async with app.run_test(size=size) as pilot:
            await scenario(pilot)
            app.save_screenshot(str(HERE / f"{name}.svg"))
        print(f"screenshots/{name}.svg")


if __name__ == "__main__":
    asyncio.run(main())
