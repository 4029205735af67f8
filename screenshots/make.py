"""Regenerate the SVG screenshots in this folder: ``python screenshots/make.py``.

The first four are the snapshot tests' states (deterministic); the last two
run steady traffic with the real load model, so their meters move.
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


SHOTS: list[tuple[str, Scenario, tuple[int, int], ClusterConfig]] = [
    ("first-screen", scenarios.first_screen, (80, 24), scenarios.SNAPSHOT_CONFIG),
    ("pinned-20-greets", scenarios.pinned, (80, 24), scenarios.SNAPSHOT_CONFIG),
    ("balanced-20-greets", scenarios.balanced, (80, 24), scenarios.SNAPSHOT_CONFIG),
    ("help", scenarios.help_screen, (80, 24), scenarios.SNAPSHOT_CONFIG),
    ("steady-pinned", steady_pinned, (110, 32), ClusterConfig(seed=3)),
    ("steady-balanced", steady_balanced, (110, 32), ClusterConfig(seed=3)),
    ("pod-down", pod_down, (110, 32), ClusterConfig(seed=3)),
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
