"""The history chart, rendered in a harness App from a REAL cluster's views (an injected clock
makes the seconds): one shared scale, a visible track for an idle pod, the balance row's step,
narrow widths that crop seconds instead of wrapping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from textual.app import App, ComposeResult

from app.cluster import Cluster, ClusterConfig, History, HistoryView
from app.widgets.history_chart import TRACK, HistoryChart, format_ms, nice_top
from tests.helpers import FAST_BACKOFF

_EIGHTHS = " ▁▂▃▄▅▆▇█"
#: "pod #N" and a space: where a row's seconds start.
LABEL = 7


class Clock:
    def __init__(self, now: float = 500.5) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class ChartApp(App[None]):
    """Just the chart, as tall as the test asks (``auto``: one row per pod)."""

    def __init__(self, height: str) -> None:
        super().__init__()
        self.chart_height = height

    def compose(self) -> ComposeResult:
        chart = HistoryChart()
        chart.styles.height = self.chart_height
        yield chart


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def cluster(clock: Clock) -> AsyncIterator[Cluster]:
    c = Cluster(ClusterConfig(seed=3, service_time=0.0, backoff=FAST_BACKOFF), history=History(clock=clock))
    await c.start("pick_first")
    try:
        yield c
    finally:
        await c.stop()


async def _second_of_greets(cluster: Cluster, clock: Clock, n: int) -> HistoryView:
    """``n`` greets in the second in progress, sampled; then the second ends."""
    await cluster.wait_ready()
    async with asyncio.timeout(10):
        await asyncio.gather(*cluster.traffic.burst(n))
    cluster.view()
    clock.now += 1.0
    return cluster.view().history


async def _pinned_then_balanced(cluster: Cluster, clock: Clock) -> HistoryView:
    """Second A: pick_first, 20 greets on the pinned pod; second B: round_robin, 40 greets, 10 per pod."""
    cluster.view()
    await _second_of_greets(cluster, clock, 20)
    cluster.set_policy("round_robin")
    return await _second_of_greets(cluster, clock, 40)


async def _render(history: HistoryView, size: tuple[int, int], height: str) -> list[str]:
    app = ChartApp(height)
    async with app.run_test(size=size) as pilot:
        chart = app.query_one(HistoryChart)
        chart.show(history)
        await pilot.pause()
        return [strip.text.rstrip() for strip in chart.render_lines(chart.size.region)]


def _eighths(cells: list[str]) -> int:
    """A column's height in eighths of a cell, read from its characters (top first)."""
    return sum(_EIGHTHS.index(c) if c in _EIGHTHS else 0 for c in cells)


async def test_every_pod_is_drawn_on_one_shared_scale(cluster: Cluster, clock: Clock) -> None:
    """20 calls/s on the pinned pod draws the full four rows; 10 calls/s on any pod draws exactly
    half of that (each pod scaled to its own peak, as Sparkline does, would draw both full); the
    pods that served nothing in second A draw the flat track."""
    history = await _pinned_then_balanced(cluster, clock)
    pinned = max(history.pods, key=lambda p: p.calls[-2]).index
    assert nice_top(history.peak) == 20
    rows = 4
    lines = await _render(history, (100, 2 + rows * 4), "1fr")
    assert len(lines) == 2 + rows * 4, lines
    assert "one scale 0–20 calls/s" in lines[0], lines[0]
    a, b = LABEL + history.seconds - 2, LABEL + history.seconds - 1  # the columns of seconds A and B
    for k, pod in enumerate(history.pods):
        block = lines[1 + k * rows : 1 + (k + 1) * rows]
        assert block[-1].startswith(f"pod #{pod.index}"), block
        column_a = [line.ljust(a + 1)[a] for line in block]
        column_b = [line.ljust(b + 1)[b] for line in block]
        assert _eighths(column_b) == 16, f"pod #{pod.index} at 10 calls/s drew {column_b} (want half of 4 rows)"
        if pod.index == pinned:
            assert _eighths(column_a) == 32, f"pinned pod #{pod.index} at 20 calls/s drew {column_a}"
        else:
            assert column_a == [" ", " ", " ", TRACK], f"idle pod #{pod.index} drew {column_a}, not the track"
        figures = block[-1][b + 1 :].split()
        assert figures == ["10/s", format_ms(pod.p50_ms), format_ms(pod.p99_ms)], block[-1]
    share = lines[-1]
    assert share.startswith("share")
    assert share[a] == "█" and share[b] == "▂", f"100 % then 25 %: {share[a]!r} {share[b]!r}"
    assert share.endswith("busiest pod's share  25 %"), share


async def test_one_row_per_pod_when_short_and_any_number_of_pods(cluster: Cluster, clock: Clock) -> None:
    """``height: auto`` gives the header, one row per pod (six after scaling) and the balance row."""
    await cluster.add_pod()
    await cluster.add_pod()
    history = await _pinned_then_balanced(cluster, clock)
    assert len(history.pods) == 6
    lines = await _render(history, (100, 20), "auto")
    assert len(lines) == 8, lines
    assert [line.split()[1] for line in lines[1:7]] == [f"#{i}" for i in range(1, 7)]
    assert lines[7].startswith("share")


@pytest.mark.parametrize("width", [30, 48, 64])
async def test_narrow_widths_show_fewer_seconds_and_never_wrap(cluster: Cluster, clock: Clock, width: int) -> None:
    """Each pod stays one row no wider than the widget, newest second on the right of its chart."""
    history = await _pinned_then_balanced(cluster, clock)
    lines = await _render(history, (width, 12), "auto")
    assert len(lines) == 2 + len(history.pods), lines
    assert all(len(line) <= width for line in lines), [len(line) for line in lines]
    assert "0–20 calls/s" in lines[0], lines[0]
    for line in lines[1:-1]:
        seconds = line[LABEL:].split(" ")[0]
        assert 0 < len(seconds) < history.seconds, line
        assert seconds[-1] == "▄", f"the newest second (10 calls/s of 20) is not on the right: {line!r}"
        assert line[LABEL + len(seconds) :].split()[0] == "10/s", line


async def test_a_flat_history_draws_the_track_and_says_no_calls(cluster: Cluster, clock: Clock) -> None:
    history = cluster.view().history
    lines = await _render(history, (100, 8), "auto")
    assert "no calls" in lines[0], lines[0]
    for line in lines[1:]:
        assert set(line[LABEL : LABEL + history.seconds]) == {TRACK}, line
