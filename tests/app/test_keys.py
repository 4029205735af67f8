"""Keys a new user pressed (issue 13): quitting with calls in flight, the d/s prefix, a terminal below
80×24, and the chat's c / Enter / w. Real cluster, real keys."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from app.ui import RpcvizApp
from tests.app.scenarios import SNAPSHOT_CONFIG
from tests.helpers import wait_until


async def test_quit_with_calls_in_flight_cancels_them_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    # Each greet takes 30 s at the pods (deadline 60 s): without cancelling, quitting would wait for them.
    app = RpcvizApp(replace(SNAPSHOT_CONFIG, service_time=30.0, workers=200, call_timeout=60.0))
    async with app.run_test(size=(100, 30)) as pilot:
        await app.cluster.wait_ready()
        await pilot.press("b")
        await wait_until(lambda: app.cluster.traffic.stats.in_flight == 100, 5, "100 calls in flight")
        started = time.monotonic()
        await pilot.press("q")
        await wait_until(lambda: not app.is_running, 10, "the app to exit")
    assert time.monotonic() - started < 10  # generous: the calls alone would hold it 30 s
    stats = app.cluster.traffic.stats
    assert stats.in_flight == 0 and stats.failed == {"CANCELLED": 100}  # each call ended exactly once
    assert "rpcviz: cancelled 100 calls in flight on quit" in capsys.readouterr().err


async def test_d_shows_its_prefix_and_esc_cancels_it() -> None:
    app = RpcvizApp(SNAPSHOT_CONFIG)
    async with app.run_test(size=(100, 30)) as pilot:
        await app.cluster.wait_ready()
        await pilot.press("d")
        assert "drain which pod? press 1-4 · esc cancels" in app.sub_title
        await pilot.press("escape")
        assert "drain which pod" not in app.sub_title
        await pilot.press("3")  # a plain 3 again: it kills pod 3, it does not drain it
        await wait_until(lambda: not app.cluster.pod(3).serving, 5, "pod 3 to go down")
        assert not app.cluster.pod(3).draining
        await pilot.press("3")
        await wait_until(lambda: app.cluster.pod(3).serving, 5, "pod 3 back")
        await pilot.press("s")
        assert "slow down which pod?" in app.sub_title
        await pilot.press("g")  # any other key cancels the prefix too
        assert "slow down" not in app.sub_title
        await pilot.press("2")
        await wait_until(lambda: not app.cluster.pod(2).serving, 5, "pod 2 to go down")
        assert app.cluster.pod(2).load_model.slow_factor == 1


async def test_below_80x24_a_notice_replaces_the_diagram_and_the_footer_stays() -> None:
    app = RpcvizApp(SNAPSHOT_CONFIG)
    async with app.run_test(size=(72, 20)) as pilot:
        await app.cluster.wait_ready()
        await pilot.pause()
        notice = app.query_one("#too-small")
        assert notice.display and "The terminal is 72×20: rpcviz needs at least 80×24" in str(notice.render())
        assert not app.query_one("#diagram").display
        assert app.query_one("Footer").display
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert not notice.display and app.query_one("#diagram").display


async def test_c_opens_the_chat_enter_asks_and_show_me_switches_the_cluster() -> None:
    """In the real app: c focuses the first question; Enter appends it and the answer (with the
    live figures); w, the latest answer's "show me", applies its configuration."""
    from app.widgets.chat_panel import ChatPanel, QuestionChip

    app = RpcvizApp(SNAPSHOT_CONFIG)
    async with app.run_test(size=(120, 36)) as pilot:
        await app.cluster.wait_ready()
        for _ in range(12):
            await pilot.press("g")
        await app.cluster.traffic.drain(10)
        app.sample()
        await pilot.press("c")
        await pilot.pause()
        assert isinstance(app.focused, QuestionChip)
        chat = app.query_one(ChatPanel)
        await pilot.press("enter")
        await wait_until(lambda: len(chat.messages) == 2, 5, "the question and its answer")
        question, answer = chat.messages
        assert question.speaker == "You" and answer.speaker == "Staff engineer"
        pinned = app.cluster.view().pinned_pod
        assert f"pod #{pinned}" in answer.text and "12" in answer.text, answer.text
        # down to the L7 question, ask it, then "show me"
        while "L7" not in app.focused.question.text:
            await pilot.press("down")
        await pilot.press("enter")
        await wait_until(lambda: len(chat.messages) == 4, 5, "the second answer")
        await pilot.press("w")
        await wait_until(
            lambda: app.cluster.configuration is not None and app.cluster.configuration.number == 4,
            10,
            "configuration 4 to run",
        )


async def test_at_80x24_the_footer_keeps_help_and_quit() -> None:
    app = RpcvizApp(SNAPSHOT_CONFIG)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.cluster.wait_ready()
        await pilot.pause()
        footer = app.query_one("Footer")
        keys = [key for key in footer.query("FooterKey") if key.region.right <= 80 and key.region.width > 0]
        shown = {key.description for key in keys}  # type: ignore[attr-defined]
        assert {"Help", "Quit", "Replay", "Ask", "Policy", "Greet"} <= shown, shown
