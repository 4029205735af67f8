"""Deterministic app set-ups shared by the Pilot tests, the snapshots and the screenshot script."""

from __future__ import annotations

from textual.pilot import Pilot

from app.cluster import ClusterConfig
from app.ui import RpcvizApp
from tests.helpers import wait_until

#: Seeded balancer, no service time, a short load window: the screen settles
#: to the same picture on every run (no ports, clocks or latencies shown).
SNAPSHOT_CONFIG = ClusterConfig(seed=3, service_time=0.0, load_window=0.05)


def make_app() -> RpcvizApp:
    return RpcvizApp(SNAPSHOT_CONFIG)


async def settle(app: RpcvizApp, pilot: Pilot[None]) -> None:
    """Wait for every call to end and the load meters to decay, then sample once."""
    cluster = app.cluster
    await cluster.traffic.drain(10)
    await wait_until(lambda: all(p.load() == 0 for p in cluster.pods), 5, "load meters to settle")
    app.wake()
    app.sample()
    await pilot.pause()


async def greets(app: RpcvizApp, pilot: Pilot[None], n: int) -> None:
    await app.cluster.wait_ready()
    for _ in range(n):
        await pilot.press("g")
    await settle(app, pilot)


async def first_screen(pilot: Pilot[None]) -> None:
    app = pilot.app
    assert isinstance(app, RpcvizApp)
    await app.cluster.wait_ready()
    await settle(app, pilot)


async def pinned(pilot: Pilot[None]) -> None:
    app = pilot.app
    assert isinstance(app, RpcvizApp)
    await greets(app, pilot, 20)


async def balanced(pilot: Pilot[None]) -> None:
    app = pilot.app
    assert isinstance(app, RpcvizApp)
    await greets(app, pilot, 20)
    await pilot.press("p")
    await greets(app, pilot, 20)


async def help_screen(pilot: Pilot[None]) -> None:
    await first_screen(pilot)
    await pilot.press("question_mark")
    await pilot.pause()
