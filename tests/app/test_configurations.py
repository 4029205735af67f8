"""The seven configurations in the app: keys and clicks switch them, and the screen says what runs.

Each test drives the real in-process cluster (pods, proxies, sockets on 127.0.0.1) through the
app's keys and reads the text the widgets render.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from app.cluster import CONFIGURATIONS
from app.ui import RpcvizApp
from app.widgets.balancer_box import BalancerBox
from app.widgets.configuration_bar import ConfigurationChip
from app.widgets.pod_box import PodBox
from tests.app.scenarios import applied, choose, make_app, make_configuration_app, settle
from tests.app.test_bindings import pod_calls, screen_text
from tests.helpers import wait_until


def live_chip(app: RpcvizApp) -> int | None:
    live = [chip.configuration.number for chip in app.query(ConfigurationChip) if chip.has_class("-live")]
    assert len(live) <= 1, live
    return live[0] if live else None


def caption_lines(app: RpcvizApp) -> list[str]:
    return str(app.query_one("#caption").render()).splitlines()


async def test_m_cycles_the_seven_configurations_and_the_screen_names_each() -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        cluster = app.cluster
        await cluster.wait_ready()
        await settle(app, pilot)
        assert live_chip(app) == 1
        for expected in [*CONFIGURATIONS[1:], CONFIGURATIONS[0]]:
            await pilot.press("m")
            await applied(app, expected.number)
            await settle(app, pilot)
            assert cluster.configuration == expected
            assert live_chip(app) == expected.number
            assert caption_lines(app)[0] == expected.explanation
            box = app.query_one(BalancerBox)
            assert box.border_title == ("L7 proxy (Envoy)" if expected.balancer == "l7" else "L4 LB (ELB/nginx)")
            assert cluster.policy == expected.policy
            if expected.pooled:  # a pick_first channel per pod, each through the VIP
                view = cluster.view()
                assert view.ready_connections == len(cluster.pods) == view.channels, view.connections
        # m from 7 went back to 1: the trap again, and every call ever fired ended
        assert cluster.traffic.stats.failed_total == 0


async def test_every_configuration_chip_fits_80_columns() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await app.cluster.wait_ready()
        await settle(app, pilot)
        chips = list(app.query(ConfigurationChip))
        assert [chip.configuration.number for chip in chips] == [c.number for c in CONFIGURATIONS]
        rights = [chip.region.right for chip in chips]
        assert all(chip.region.width == len(str(chip.render())) for chip in chips), [c.region for c in chips]
        assert rights == sorted(rights) and rights[-1] <= 80, rights


async def test_clicking_a_configuration_applies_it() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await app.cluster.wait_ready()
        await choose(app, pilot, 4)
        await settle(app, pilot)
        assert (app.cluster.policy, app.cluster.balancer) == ("pick_first", "l7")
        assert app.cluster.l7_proxy is not None and app.cluster.proxy is None
        assert live_chip(app) == 4
        text = screen_text(app)
        assert "balances CALLS" in text and "L7Proxy.forward" in text


async def test_configuration_3_shows_connection_age_and_a_goaway_when_it_rotates() -> None:
    app = make_configuration_app(configuration_age=0.5)
    async with app.run_test(size=(100, 40)) as pilot:
        cluster = app.cluster
        await cluster.wait_ready()
        await choose(app, pilot, 3)
        await pilot.press("t")  # steady traffic across the rotations

        def rotations_on_screen() -> int:
            found = re.search(r"\((\d+) GOAWAYs so far\)", " ".join(caption_lines(app)))
            return int(found.group(1)) if found else 0

        await wait_until(lambda: rotations_on_screen() >= 2, 10, "the caption to count two GOAWAYs")
        await wait_until(lambda: "GOAWAY (max_age) from pod #" in screen_text(app), 5, "a GOAWAY event on screen")
        shown = rotations_on_screen()
        # A GOAWAY'd pick_first channel reconnects at its next call: wait for it while the users still call
        # (stopping them right after a GOAWAY left that reconnect undone, and the count one short).
        await wait_until(
            lambda: cluster.view().client_connections_opened >= shown + 1, 5, "the reconnect after the last GOAWAY"
        )
        await pilot.press("t")
        await settle(app, pilot)
        assert "Server keepalive (gRFC A9)" in screen_text(app)
        view = cluster.view()
        assert view.goaways >= shown >= 2 and view.client_connections_opened >= 3
        # each reconnect went back through the VIP and was pinned again
        connects = [e.text for e in cluster.events.of_kind("connect")]
        assert all("the L4 LB picked pod #" in t for t in connects), connects
        # graceful rotation: every call fired ended OK
        stats = cluster.traffic.stats
        assert stats.failed_total == 0 and stats.ok == stats.fired == sum(pod_calls(app))


async def test_configuration_3_connection_line_shows_its_age() -> None:
    app = make_configuration_app(configuration_age=600.0)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.cluster.wait_ready()
        await choose(app, pilot, 3)
        connected = app.cluster.channel.subchannels[0].connected_at
        assert connected is not None
        app.clock = lambda: connected + 42.0
        app.wake()
        app.sample()
        await pilot.pause()
        lines = str(app.query_one("#connection-lines").render())
        assert "conn 1 ━━▶ pod #" in lines and lines.endswith(" 42s"), lines


async def test_configuration_4_one_client_connection_and_every_call_balanced_at_the_proxy() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await app.cluster.wait_ready()
        await choose(app, pilot, 4)
        for _ in range(40):
            await pilot.press("g")
        await settle(app, pilot)
        assert pod_calls(app) == [10, 10, 10, 10]
        view = app.cluster.view()
        assert view.ready_connections == 1 and view.connections[0].via_balancer
        lines = str(app.query_one("#connection-lines").render())
        assert "conn 1 ━━▶ proxy" in lines and "L7 ──▶ #1 #2 #3 #4" in lines, lines
        assert "over its 4: 10/10/10/10" in " ".join(caption_lines(app))
        assert not any(box.has_class("-pinned") for box in app.query(PodBox))


async def test_configuration_5_slow_pod_badge_and_s_toggles_slowness() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        cluster = app.cluster
        await cluster.wait_ready()
        await choose(app, pilot, 5)
        await settle(app, pilot)
        boxes = {box.index: box for box in app.query(PodBox)}
        assert boxes[2].has_class("-slow") and "SLOW×10" in screen_text(app)
        assert "least_request\n→ less busy of 2" in screen_text(app)  # the chip: policy, then what it does
        assert "least_request pick (gRFC A48)" in screen_text(app)
        await pilot.press("s", "3")  # a second slow pod: no preset any more
        await settle(app, pilot)
        assert cluster.pod(3).load_model.slow_factor == 10
        assert live_chip(app) is None
        assert caption_lines(app)[0].startswith("Custom: least_request + slow pod #2, #3")
        await pilot.press("s", "3", "s", "2")  # heal both: least_request, no slow pod
        await settle(app, pilot)
        assert [pod.load_model.slow_factor for pod in cluster.pods] == [1, 1, 1, 1]
        assert "SLOW" not in screen_text(app)


async def test_configuration_7_draws_every_pooled_connection_and_says_where_each_went() -> None:
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:  # room for a line per connection (80×24 sums them up)
        cluster = app.cluster
        await cluster.wait_ready()
        await choose(app, pilot, 7)
        for _ in range(20):
            await pilot.press("g")
        await settle(app, pilot)
        view = cluster.view()
        reached = [c.pod for c in view.connections]
        assert len(reached) == 4 and None not in reached, view.connections
        lines = str(app.query_one("#connection-lines").render()).splitlines()
        assert lines == [f"conn {i} ━━▶ pod #{pod}" for i, pod in enumerate(reached, 1)], lines
        listed = " ".join(f"#{pod}" for pod in sorted(p for p in reached if p is not None))
        caption = " ".join(caption_lines(app))
        assert f"4 HTTP/2 connections through the VIP; the L4 LB sent them to {listed}" in caption, caption
        assert "each greet rides the next connection: " + "/".join(map(str, pod_calls(app))) in caption, caption
        text = screen_text(app)
        assert "4 × pick_first" in text and "4 channels → VIP" in text and "4 HTTP/2 conns" in text
        assert sum(pod_calls(app)) == 20 and cluster.traffic.stats.failed_total == 0


async def test_s_then_a_missing_pod_warns_and_changes_nothing() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await app.cluster.wait_ready()
        await pilot.press("s", "7")
        await pilot.pause()
        assert all(pod.load_model.slow_factor == 1 for pod in app.cluster.pods)
        assert any("there is no pod #7" in str(n.message) for n in app._notifications)


async def test_configuration_6_grows_the_grid_and_new_pods_join_after_reresolution() -> None:
    app = make_configuration_app(configuration_age=0.5, min_reresolution_interval=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        cluster = app.cluster
        await cluster.wait_ready()
        await choose(app, pilot, 6)
        await wait_until(lambda: len(cluster.pods) == 6, 5, "six pods")
        await settle(app, pilot)
        assert len(app.query(PodBox)) == 6
        assert "BACKEND PODS · 6" in screen_text(app)
        await pilot.press("t")
        await wait_until(lambda: all(p.calls_ok > 0 for p in cluster.pods), 15, "pods #5 and #6 to serve calls")
        await pilot.press("t")
        await settle(app, pilot)
        assert any(
            e.text.startswith("re-resolved the headless service: 6 pods") for e in cluster.events.of_kind("resolve")
        )
        assert "UNSEEN" not in screen_text(app)
        assert cluster.traffic.stats.failed_total == 0


async def test_plus_and_minus_scale_between_one_and_eight_pods() -> None:
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        cluster = app.cluster
        await cluster.wait_ready()

        def boxes(n: int) -> Callable[[], bool]:
            return lambda: len(app.query(PodBox)) == n

        for expected in range(5, 9):
            await pilot.press("plus")
            await wait_until(boxes(expected), 5, f"{expected} pod boxes")
        assert len(cluster.pods) == 8
        await pilot.press("plus")  # the ninth is refused, with a word
        await pilot.pause()
        assert len(cluster.pods) == 8
        assert any("already runs 8 pods" in str(n.message) for n in app._notifications)
        for expected in range(7, 0, -1):
            await pilot.press("minus")
            await wait_until(boxes(expected), 5, f"{expected} pod boxes")
        await pilot.press("minus")
        await pilot.pause()
        assert len(cluster.pods) == 1
        assert any("at least one pod" in str(n.message) for n in app._notifications)
        await settle(app, pilot)
        assert "BACKEND PODS · 1" in screen_text(app)


@pytest.mark.parametrize(("start", "after_p"), [(1, 2), (2, 1), (3, 6), (6, 3)])
async def test_p_still_toggles_the_policy_and_the_selector_follows(start: int, after_p: int) -> None:
    app = make_configuration_app(configuration_age=600.0)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.cluster.wait_ready()
        await choose(app, pilot, start)
        await pilot.press("p")
        await applied(app, after_p, scaled=False)
        await settle(app, pilot)
        assert live_chip(app) == after_p
