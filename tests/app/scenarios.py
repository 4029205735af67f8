"""Deterministic app set-ups shared by the Pilot tests, the snapshots and the screenshot script."""

from __future__ import annotations

import asyncio
import math
from dataclasses import replace
from typing import Any

from textual.pilot import Pilot
from textual.widgets import TabbedContent

from app.cluster import ClusterConfig
from app.cluster.history import HistoryView
from app.scene import SCENE_SEED
from app.ui import RpcvizApp
from tests.helpers import wait_until

#: Seeded balancer, no service time, a short load window: the screen settles
#: to the same picture on every run (no ports, clocks or latencies shown).
SNAPSHOT_CONFIG = ClusterConfig(seed=SCENE_SEED, service_time=0.0, load_window=0.05)


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
    """``n`` greets through the g key's action, then settle (tests/app/test_bindings.py presses the key
    itself; pressing it here, through the Pilot, cost ~0.1 s a greet)."""
    await app.cluster.wait_ready()
    for _ in range(n):
        app.action_greet()
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


# --- the configurations (issue 12) ------------------------------------------------------------


def make_configuration_app(**overrides: object) -> RpcvizApp:
    """The snapshot set-up, with the configurations' settings overridden (a short age, say)."""
    return RpcvizApp(replace(SNAPSHOT_CONFIG, **overrides))  # type: ignore[arg-type]


async def choose(app: RpcvizApp, pilot: Pilot[None], number: int) -> None:
    """Click configuration ``number`` in the selector and wait until its connections are READY."""
    chip = app.query_one(f"#configuration-{number}")
    await wait_until(lambda: chip.region.width > 0, 5, "the selector to be laid out")
    await pilot.click(chip)
    await applied(app, number)


async def applied(app: RpcvizApp, number: int, scaled: bool = True) -> None:
    """Wait until configuration ``number`` runs (with the pods it scales to, when ``scaled``) and
    its connections are READY."""

    def running() -> bool:
        live = app.cluster.configuration
        pods_ok = not scaled or live is None or live.pods in (None, len(app.cluster.pods))
        return live is not None and live.number == number and pods_ok

    await wait_until(running, 5, f"configuration {number} to apply")
    await app.cluster.wait_ready()


def freeze_clock(app: RpcvizApp) -> None:
    """Stop connection ages at 0 s (each connection's age is read against this clock)."""
    now = max((sc.connected_at or 0.0 for sc in app.cluster.channel.subchannels), default=0.0)
    app.clock = lambda: now


async def max_age_rotated(pilot: Pilot[None]) -> None:
    """Configuration 3 (a 2 s age): the first GOAWAY came, the client reconnected, 10 greets."""
    app = pilot.app
    assert isinstance(app, RpcvizApp)
    await app.cluster.wait_ready()
    await choose(app, pilot, 3)
    cluster = app.cluster
    await wait_until(lambda: bool(cluster.events.of_kind("goaway")), 5, "the first GOAWAY")
    await cluster.wait_ready()
    await greets(app, pilot, 10)
    freeze_clock(app)
    app.wake()
    app.sample()
    await pilot.pause()


async def l7_burst(pilot: Pilot[None]) -> None:
    """Configuration 4: one burst of 100 through the L7 proxy."""
    app = pilot.app
    assert isinstance(app, RpcvizApp)
    await app.cluster.wait_ready()
    await choose(app, pilot, 4)
    await pilot.press("b")
    await settle(app, pilot)


async def least_request_slow_pod(pilot: Pilot[None]) -> None:
    """Configuration 5, before any call: pod #2 slow, the least_request listing."""
    app = pilot.app
    assert isinstance(app, RpcvizApp)
    await app.cluster.wait_ready()
    await choose(app, pilot, 5)
    await settle(app, pilot)


async def scaled_up(pilot: Pilot[None]) -> None:
    """Configuration 6 (a long age): six pods, #5 and #6 unseen, 20 greets over the first four."""
    app = pilot.app
    assert isinstance(app, RpcvizApp)
    await app.cluster.wait_ready()
    await choose(app, pilot, 6)
    await wait_until(lambda: len(app.cluster.pods) == 6, 5, "six pods")
    await greets(app, pilot, 20)
    freeze_clock(app)
    app.wake()
    app.sample()
    await pilot.pause()


# --- the teaching layer (issue 13): the replay, the chat, the history ---------------------------


async def replay_pinned(pilot: Pilot[None]) -> None:
    """The replay's step 5 on the scene's seed: 40 greets, all on pod #3 — CONNECTION PINNING.
    (A counted burst stands in for the steady users, so the figures are the same every run.)"""
    app = pilot.app
    assert isinstance(app, RpcvizApp)
    await app.cluster.wait_ready()
    player = app.player

    def counted(on: bool) -> None:
        if on:
            app.cluster.traffic.burst(40)

    player.stage.steady = counted
    await pilot.press("space")
    for _ in range(4):
        await player.wait_reached(10)
        await pilot.press("space")
    await player.wait_reached(10)
    assert player.index == 4 and player.phase == "reached", (player.index, player.phase)
    await settle(app, pilot)


async def chat_two_answers(pilot: Pilot[None]) -> None:
    """20 greets pinned, then c and the first two questions: four messages in the chat."""
    app = pilot.app
    assert isinstance(app, RpcvizApp)
    await greets(app, pilot, 20)
    await pilot.press("c")
    await pilot.pause()
    await pilot.press("enter", "down", "enter")
    await wait_until(lambda: len(app.query_one("ChatPanel").messages) == 4, 5, "two answers")  # type: ignore[attr-defined]
    await settle(app, pilot)


def strip_history_latencies(app: RpcvizApp) -> None:
    """The history's p50/p99 are wall-clock figures: a snapshot shows them as "–"."""
    history = app.cluster.history
    sample = history.sample

    def without_latencies(*args: Any, **kwargs: Any) -> HistoryView:
        view = sample(*args, **kwargs)
        pods = tuple(replace(p, p50_ms=None, p99_ms=None) for p in view.pods)
        return replace(view, pods=pods)

    history.sample = without_latencies  # type: ignore[method-assign]


async def history_after_switch(pilot: Pilot[None]) -> None:
    """Ten seconds on the history's own clock: five pinned (12 greets a second), then p and five
    balanced: one pod at 100 % of each second, then four at 25 %."""
    app = pilot.app
    assert isinstance(app, RpcvizApp)
    now = [float(math.floor(asyncio.get_running_loop().time()) + 1)]  # on from where the history is
    app.cluster.history.clock = lambda: now[0]
    strip_history_latencies(app)
    await app.cluster.wait_ready()
    for second in range(10):
        if second == 5:
            await pilot.press("p")
            await app.cluster.wait_ready()
        await greets(app, pilot, 12)
        now[0] += 1
        app.sample()
    app.query_one("#lower", TabbedContent).active = "history-tab"
    await settle(app, pilot)
