"""The screen as a new user sees it (issue 13): nothing wraps or clips, every word is spelled out,
boxes agree, and wires run from the client to the balancer to the pods. Real cluster, real views."""

from __future__ import annotations

from dataclasses import replace

import pytest
from rich.cells import cell_len
from rich.text import Text
from textual.content import Content
from textual.widget import Widget

from app.cluster import ClusterConfig
from app.ui import RpcvizApp
from app.widgets.balancer_box import BalancerBox
from app.widgets.client_box import ClientBox, client_lines
from app.widgets.client_link import ClientLink
from app.widgets.connection_lines import ConnectionLines, connection_lines
from app.widgets.load_meter import TRACK
from app.widgets.pod_box import PodBox
from app.widgets.pod_links import PodLinks
from app.widgets.policy_chip import PolicyChip
from tests.app.scenarios import SNAPSHOT_CONFIG, greets, make_app, settle
from tests.helpers import wait_until
from transport import BackoffConfig

SIZES = [(80, 24), (120, 36), (140, 40)]


def rendered(widget: Widget) -> list[str]:
    """The lines a widget renders (what the user reads, before any cropping)."""
    content = widget.render()
    assert isinstance(content, Text | Content), type(content)
    return content.plain.splitlines()


def assert_fits(widget: Widget) -> None:
    """Every rendered line fits the widget's content box: nothing is wrapped or clipped."""
    size = widget.content_size
    lines = rendered(widget)
    assert len(lines) <= size.height, f"{len(lines)} lines in {size.height} rows: {lines}"
    for line in lines:
        assert cell_len(line) <= size.width, f"{line!r} is {cell_len(line)} cells in {size.width}"


def boxes(app: RpcvizApp) -> dict[int, PodBox]:
    return {box.index: box for box in app.query(PodBox)}


# --- 3: connection lines --------------------------------------------------------------------


#: A pod killed under round_robin: its connection backs off for about a second before it retries.
BACKING_OFF = replace(SNAPSHOT_CONFIG, backoff=BackoffConfig(base_delay=1.0, max_delay=1.0, jitter=0.0))


@pytest.mark.parametrize("size", SIZES)
async def test_a_connection_in_transient_failure_is_spelled_out_and_nothing_clips(size: tuple[int, int]) -> None:
    """round_robin, pod #3 killed: its connection reads TRANSIENT_FAILURE and the retry, never "TF";
    every line fits the balancer box and pod #4's connection is still on screen."""
    app = RpcvizApp(BACKING_OFF)
    async with app.run_test(size=size) as pilot:
        cluster = app.cluster
        await cluster.wait_ready()
        await pilot.press("p")
        await cluster.wait_ready()
        await pilot.press("3")

        def backing_off() -> bool:
            return any(c.state == "TRANSIENT_FAILURE" and c.retry_in for c in cluster.view().connections)

        await wait_until(backing_off, 10, "conn 3 to back off")
        app.wake()
        app.sample()
        await pilot.pause()
        widget = app.query_one(ConnectionLines)
        text = "\n".join(rendered(widget))
        assert "TRANSIENT_FAILURE" in text and "retry in" in text, text
        assert "TF" not in text.replace("TRANSIENT_FAILURE", ""), text
        assert "#4" in text, f"conn 4 (pod #4) clipped: {text}"
        assert_fits(widget)


async def test_connection_lines_sum_up_what_does_not_fit() -> None:
    """Fed a real view with one connection backing off: at 18 cells and 4 rows the READY ones are
    summed on one line and the failing one takes three, each within 18 cells; at 2 rows, "+1 more"."""
    app = RpcvizApp(BACKING_OFF)
    async with app.run_test(size=(80, 24)) as pilot:
        cluster = app.cluster
        await pilot.press("p")
        await cluster.wait_ready()
        await pilot.press("3")
        await wait_until(
            lambda: any(c.retry_in for c in cluster.view().connections if c.state == "TRANSIENT_FAILURE"), 10
        )
        view = cluster.view()
        lines = connection_lines(view, 0.0, 4, 18).plain.splitlines()
        assert lines[0] == "3 conns → #1 #2 #4", lines
        assert lines[1:3] == ["conn 3 ✕", " TRANSIENT_FAILURE"], lines
        assert lines[3].startswith(" retry in ") and lines[3].endswith(" s"), lines
        assert all(cell_len(line) <= 18 for line in lines), lines
        wide = connection_lines(view, 0.0, 8, 60).plain.splitlines()
        assert "conn 3 ✕ TRANSIENT_FAILURE, retry in " in wide[2] and len(wide) == 4, wide
        assert connection_lines(view, 0.0, 2, 18).plain.splitlines() == ["3 conns → #1 #2 #4", "+1 more"]


# --- 4: badges --------------------------------------------------------------------------


async def test_draining_the_pinned_pod_shows_pinned_and_draining() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await greets(app, pilot, 3)
        pinned = app.cluster.view().pinned_pod
        assert pinned is not None
        await pilot.press("d", str(pinned))
        await settle(app, pilot)
        box = boxes(app)[pinned]
        lines = [line.strip() for line in rendered(box)]
        assert "PINNED" in lines and "DRAINING" in lines, lines
        assert_fits(box)


# --- 2: the meters' track -----------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_an_idle_pod_shows_a_flat_meter_not_blank(size: tuple[int, int]) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await greets(app, pilot, 2)
        for box in boxes(app).values():
            lines = rendered(box)
            assert any(line.strip() and set(line.strip()) <= {TRACK, "▁", " "} or "▁" in line for line in lines), (
                f"pod #{box.index} at 0 % shows no meter: {lines}"
            )


# --- 5: chip, client box, pod boxes, wires ----------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_chip_and_boxes_fit_without_brackets_or_wrapping(size: tuple[int, int]) -> None:
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await greets(app, pilot, 1)
        chip = app.query_one(PolicyChip)
        assert not any("[" in line or "]" in line for line in rendered(chip)), rendered(chip)
        assert_fits(chip)
        for widget in (app.query_one(ClientBox), *boxes(app).values(), app.query_one(ConnectionLines)):
            assert_fits(widget)
        pinned = app.cluster.view().pinned_pod
        assert pinned is not None
        assert "1 RPC" in rendered(boxes(app)[pinned]), rendered(boxes(app)[pinned])  # not "1 RPCs"
        client, balancer = app.query_one(ClientBox), app.query_one(BalancerBox)
        assert client.outer_size.height == balancer.outer_size.height


async def test_the_client_box_never_wraps_as_the_counters_grow() -> None:
    """A real view with ten thousand calls sent (about 70 s of steady traffic) and users running."""
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await greets(app, pilot, 1)
        view = replace(app.cluster.view(), fired=10464, ok=10421, in_flight=43, users=40, calls_per_second=235.0)
        width = app.query_one(ClientBox).content_size.width
        lines = [line.plain for line in client_lines(view, width)]
        assert all(cell_len(line) <= width for line in lines), (width, lines)
        assert any("10464" in line for line in lines) and any("▶ 40 users" in line for line in lines), lines
        assert any("235 calls/s" in line for line in lines), lines


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("pods", [4, 6])
async def test_pod_boxes_are_equally_wide(size: tuple[int, int], pods: int) -> None:
    app = RpcvizApp(replace(SNAPSHOT_CONFIG, pods=pods))
    async with app.run_test(size=size) as pilot:
        await greets(app, pilot, 1)
        widths = {box.outer_size.width for box in boxes(app).values()}
        heights = {box.outer_size.height for box in boxes(app).values()}
        assert len(widths) == 1 and len(heights) == 1, (widths, heights)


@pytest.mark.parametrize("size", SIZES)
async def test_wires_from_client_to_balancer_to_pods(size: tuple[int, int]) -> None:
    """pick_first: one heavy wire labelled with one connection, one arrowhead, over the pinned pod;
    round_robin: "4 HTTP/2 conns" (or the client box beside the wire says so), four arrowheads."""
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await greets(app, pilot, 2)
        link, links = app.query_one(ClientLink), app.query_one(PodLinks)
        wire = rendered(link)
        assert any("▶" in line and "━" in line for line in wire), wire
        label = "\n".join(wire)
        assert "1 HTTP/2 conn" in label or "1 HTTP/2 conn" in "\n".join(rendered(app.query_one(ClientBox)))
        if link.content_size.width >= len("one connection"):
            assert "1 HTTP/2 conn" in label and "one connection" in label, wire
        row = rendered(links)[0]
        assert row.count("▼") == 1, row
        pinned = app.cluster.view().pinned_pod
        assert pinned is not None
        box = boxes(app)[pinned]
        arrow_x = links.content_region.x + row.index("▼")
        assert box.region.x < arrow_x < box.region.right - 1, (arrow_x, box.region)
        assert set(row[: row.index("▼")]) == {"━"}, row  # from the balancer's edge, heavy: the pinned conn

        await pilot.press("p")
        await greets(app, pilot, 4)
        wire = rendered(link)
        assert any("▶" in line for line in wire), wire
        if link.content_size.width >= len("4 HTTP/2 conns"):
            assert "4 HTTP/2 conns" in "\n".join(wire), wire
        row = rendered(links)[0]
        assert row.count("▼") == 4 and "━" not in row, row
        for box in boxes(app).values():
            assert any(box.region.x < links.content_region.x + i < box.region.right - 1 for i in _arrows(row))


def _arrows(row: str) -> list[int]:
    return [i for i, ch in enumerate(row) if ch == "▼"]


async def test_the_steady_users_show_in_the_client_box() -> None:
    app = RpcvizApp(ClusterConfig(seed=3))
    async with app.run_test(size=(80, 24)) as pilot:
        await app.cluster.wait_ready()
        await pilot.press("t")
        await wait_until(lambda: app.cluster.view().calls_per_second > 0, 5, "calls to end")
        app.sample()
        await pilot.pause()
        text = "\n".join(rendered(app.query_one(ClientBox)))
        assert f"▶ {app.steady_users} users" in text and "calls/s" in text, text
        await pilot.press("t")
        await app.cluster.traffic.drain(10)
        assert app.cluster.traffic.stats.failed_total == 0
