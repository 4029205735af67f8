"""Sampling the cluster under traffic does not lay the whole screen out again each time.

``Static.update`` asks for a layout pass of the screen; the chips, the VIP's role and route
stay the same from one sample to the next, and the caption's and narration's sizes are fixed,
so the samples of a steady run redraw what changed without laying the screen out (before: one
layout pass per sample, most of the app's CPU under traffic).
"""

from __future__ import annotations

from typing import Any

import pytest
from textual.screen import Screen

from app.ui import RpcvizApp
from tests.app.scenarios import SNAPSHOT_CONFIG
from tests.helpers import wait_until


async def test_samples_under_steady_traffic_need_no_layout_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    app = RpcvizApp(SNAPSHOT_CONFIG)
    async with app.run_test(size=(120, 36)) as pilot:
        await app.cluster.wait_ready()
        await pilot.press("t")
        await wait_until(lambda: app.cluster.traffic.stats.ok >= 40, 10, "the users' first answers")
        layouts = 0
        shown_before = app.views_shown
        real = Screen._refresh_layout

        def counting(self: Screen[Any], *args: Any, **kwargs: Any) -> None:
            nonlocal layouts
            layouts += 1
            real(self, *args, **kwargs)

        monkeypatch.setattr(Screen, "_refresh_layout", counting)
        ok_before = app.cluster.traffic.stats.ok
        await wait_until(lambda: app.views_shown - shown_before >= 10, 10, "ten new views shown")
        assert app.cluster.traffic.stats.ok > ok_before  # the numbers on screen did change
        assert layouts <= 2, f"{layouts} layout passes for {app.views_shown - shown_before} views shown"
