"""Each binding does what it says, against the real in-process transport."""

from __future__ import annotations

import pytest
from textual.binding import Binding
from textual.widgets import Static

from app.ui import RpcvizApp
from app.widgets.pod_box import PodBox
from tests.app.scenarios import make_app, settle
from tests.helpers import wait_until
from transport import ConnectivityState


def pod_calls(app: RpcvizApp) -> list[int]:
    """Calls each pod's own server answered OK."""
    return [pod.calls_ok for pod in app.cluster.pods]


def screen_text(app: RpcvizApp) -> str:
    """The plain text every Static-like widget on the current screen renders."""
    texts = []
    for widget in app.screen.query("*"):
        if isinstance(widget, Static):
            texts.append(str(widget.render()))
    return "\n".join(texts)


async def test_starts_with_cluster_running_and_pick_first() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await app.cluster.wait_ready()
        await settle(app, pilot)
        assert app.cluster.policy == "pick_first"
        assert all(pod.serving for pod in app.cluster.pods)
        assert "pick_first\n→ pinned to 1 pod" in screen_text(app)  # the chip: policy, then what it does


async def test_g_under_pick_first_lands_all_on_one_pod_then_p_spreads() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await app.cluster.wait_ready()
        for _ in range(20):
            await pilot.press("g")
        await settle(app, pilot)
        calls = pod_calls(app)
        assert sorted(calls) == [0, 0, 0, 20]
        pinned = calls.index(20) + 1
        assert app.cluster.view().pinned_pod == pinned
        boxes = {box.index: box for box in app.query(PodBox)}
        assert boxes[pinned].has_class("-pinned")
        assert f"pinned to pod #{pinned}" in str(app.query_one("#caption").render())

        await pilot.press("p")
        assert app.cluster.policy == "round_robin"
        await app.cluster.wait_ready()
        before = pod_calls(app)
        for _ in range(20):
            await pilot.press("g")
        await settle(app, pilot)
        after = pod_calls(app)
        assert [a - b for a, b in zip(after, before)] == [5, 5, 5, 5]
        assert app.cluster.view().ready_connections == 4
        assert not any(box.has_class("-pinned") for box in app.query(PodBox))


async def test_clicking_the_policy_chip_toggles() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await app.cluster.wait_ready()
        await pilot.click("#policy-chip")
        assert app.cluster.policy == "round_robin"
        await pilot.click("#policy-chip")
        assert app.cluster.policy == "pick_first"


async def test_b_fires_a_burst_of_100_and_r_resets() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await app.cluster.wait_ready()
        await pilot.press("b")
        await settle(app, pilot)
        stats = app.cluster.traffic.stats
        assert stats.fired == 100 and stats.ok == 100
        assert sum(pod_calls(app)) == 100
        await pilot.press("r")
        await settle(app, pilot)
        view = app.cluster.view()
        assert (view.fired, view.ok, view.failed_total) == (0, 0, 0)
        assert [p.calls for p in view.pods] == [0, 0, 0, 0]
        assert app.cluster.channel.stats.calls_started == 0


async def test_burst_under_steady_traffic_keeps_the_accounting_exact() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await app.cluster.wait_ready()
        traffic = app.cluster.traffic
        await pilot.press("t")
        assert traffic.steady
        await wait_until(lambda: traffic.stats.fired >= 30, 10, "steady traffic")
        await pilot.press("b")
        await pilot.press("p")  # and switch policy mid-stream for good measure
        await wait_until(lambda: traffic.stats.fired >= 200, 10, "more traffic")
        await pilot.press("t")
        assert not traffic.steady
        await settle(app, pilot)
        stats = traffic.stats
        assert stats.in_flight == 0
        assert stats.fired == stats.ok + stats.failed_total
        assert stats.failed_total == 0
        assert stats.ok == sum(pod_calls(app)) == sum(stats.landed.values())


async def test_question_mark_opens_help_generated_from_bindings() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        from app.widgets.help_screen import HelpScreen

        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        for binding in RpcvizApp.BINDINGS:
            assert isinstance(binding, Binding) and binding.description in text
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_q_quits() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running


async def test_idle_app_stops_sampling_and_wakes_on_a_key() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await app.cluster.wait_ready()
        await settle(app, pilot)
        await wait_until(lambda: not app.sampling, 5, "the sampler to pause")
        await pilot.press("g")
        assert app.sampling


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
async def test_no_color_still_shows_numbers_and_badges(monkeypatch: pytest.MonkeyPatch, size: tuple[int, int]) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await app.cluster.wait_ready()
        for _ in range(3):
            await pilot.press("g")
        await settle(app, pilot)
        assert app.no_color
        text = screen_text(app)
        assert "PINNED" in text and "3 RPCs" in text and "% load" in text


async def test_number_key_kills_the_pinned_pod_and_the_badge_moves() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        cluster = app.cluster
        await cluster.wait_ready()
        pinned = cluster.view().pinned_pod
        assert pinned is not None
        await pilot.press(str(pinned))
        assert not cluster.pod(pinned).serving
        # pick_first goes IDLE when its connection goes away (gRFC A62); the next greet reconnects.
        await wait_until(lambda: cluster.channel.state is ConnectivityState.IDLE, 10, "the channel to go IDLE")
        await pilot.press("g")
        await wait_until(lambda: cluster.view().pinned_pod not in (None, pinned), 10, "the channel to re-pin")
        for _ in range(4):
            await pilot.press("g")
        await settle(app, pilot)
        moved = cluster.view().pinned_pod
        assert moved is not None
        boxes = {box.index: box for box in app.query(PodBox)}
        assert boxes[moved].has_class("-pinned") and boxes[pinned].has_class("-down")
        assert "DOWN" in screen_text(app)
        await pilot.press(str(pinned))  # and back
        assert cluster.pod(pinned).serving


async def test_d_then_number_drains_a_pod_under_round_robin() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        cluster = app.cluster
        await pilot.press("p")
        await cluster.wait_ready()
        await pilot.press("d", "2")
        assert cluster.pod(2).draining
        await wait_until(
            lambda: any(c.health == "NOT_SERVING" for c in cluster.view().connections), 5, "client sees the drain"
        )
        for _ in range(12):
            await pilot.press("g")
        await settle(app, pilot)
        assert cluster.traffic.stats.failed_total == 0
        assert cluster.pod(2).calls_ok == 0
        assert "DRAINING" in screen_text(app)
