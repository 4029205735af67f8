"""The guided replay: space walks scene 09 on the real cluster, each step waiting for its event.

Every test runs the app with the real in-process cluster (pods, the L4 balancer, sockets on
127.0.0.1) and reads what the narration bar and the diagram render.
"""

from __future__ import annotations

import re

from app.cluster import ClusterConfig
from app.replay import STEPS
from app.scene import SCENE_SEED
from app.scene.terms import CLIENT_SIDE_LOAD_BALANCING, CONNECTION_PINNING
from app.ui import RpcvizApp
from app.widgets.pod_box import PodBox
from tests.helpers import FAST_BACKOFF, wait_until

#: The scene's seed, with a short age and re-resolution interval so the answers' steps come quickly.
REPLAY_CONFIG = ClusterConfig(
    seed=SCENE_SEED, backoff=FAST_BACKOFF, min_reresolution_interval=1.0, configuration_age=1.5
)


def narration_text(app: RpcvizApp) -> str:
    return str(app.query_one("#narration").render())


def diagram_term(app: RpcvizApp) -> str:
    return str(app.query_one("#backends-title").render())


async def test_the_whole_replay_reaches_every_step_on_the_live_cluster() -> None:
    app = RpcvizApp(REPLAY_CONFIG, replay=True)
    async with app.run_test(size=(120, 36)) as pilot:
        player = app.player
        said: dict[str, str] = {}
        for number, step in enumerate(STEPS, 1):
            await player.wait_reached(60)
            assert player.phase == "reached", f"step {number} ({step.title}) is {player.phase}"
            app.sample()
            await pilot.pause()
            bar = narration_text(app)
            assert f"step {number} of {len(STEPS)}" in bar
            assert step.title in bar
            said[step.title] = bar
            if step.term is not None:  # the term the step defines is on the diagram while it is live
                assert step.term in diagram_term(app), (step.title, diagram_term(app))
            if number < len(STEPS):
                await pilot.press("space")
        await pilot.press("space")  # after the last step the replay ends
        await wait_until(lambda: not player.playing, 5, "the replay to end")
        app.sample()
        await pilot.pause()
        assert not app.query_one("#narration").display
        assert app.query_one("#caption").display

    # The narrated figures are the live ones: pod #3 (the scene's seed) got every call, then the spread.
    pinned = said["Every greet lands there"]
    served = re.search(r"pod #(\d) served (\d+) of (\d+)", pinned)
    assert served is not None, pinned
    assert served.group(1) == "3" and served.group(2) == served.group(3) and int(served.group(3)) >= 40, pinned
    assert "pods #1, #2 and #4 stay dark" in pinned
    assert CONNECTION_PINNING in pinned
    spread = re.search(r"balance: (\d+)/(\d+)/(\d+)/(\d+) calls since the switch", said["The meters balance"])
    assert spread is not None and min(int(n) for n in spread.groups()) >= 15, said["The meters balance"]
    assert "GOAWAY" in said["Answer 1: MAX_CONNECTION_AGE"]
    assert re.search(r"holds 4 of its own to the pods", said["Answer 2: an L7 proxy"])
    assert re.search(r"Pod #2 answers 10× slower", said["Answer 3: least_request vs a slow pod"])
    assert re.search(r"pods #5 and #6 only when it re-resolved", said["Answer 4: scale-up and re-resolution"])


async def test_back_steps_replay_a_step_from_its_start_and_esc_leaves() -> None:
    app = RpcvizApp(REPLAY_CONFIG)
    async with app.run_test(size=(100, 30)) as pilot:
        player = app.player
        await app.cluster.wait_ready()
        assert not player.playing
        for _ in range(6):  # space starts the replay, then steps 2-6
            await pilot.press("space")
            await player.wait_reached(30)
        assert player.index == 5 and app.cluster.policy == "round_robin"
        app.sample()
        await pilot.pause()
        assert CLIENT_SIDE_LOAD_BALANCING in diagram_term(app)
        await pilot.press("left")  # back to "every greet lands there": pick_first through the L4 LB again
        await player.wait_reached(30)
        assert player.index == 4 and player.phase == "reached"
        assert app.cluster.policy == "pick_first"
        app.sample()
        await pilot.pause()
        assert "step 5 of" in narration_text(app)
        assert CONNECTION_PINNING in diagram_term(app)
        await pilot.press("backspace")
        await player.wait_reached(30)
        assert player.index == 3
        await pilot.press("escape")
        assert not player.playing
        app.sample()
        await pilot.pause()
        assert not app.query_one("#narration").display


async def test_a_step_narrates_only_after_its_event() -> None:
    """Until the connection is READY, step 3 says what to watch, not what happened."""
    app = RpcvizApp(REPLAY_CONFIG)
    async with app.run_test(size=(100, 30)) as pilot:
        player = app.player
        await app.cluster.wait_ready()
        player.go(2)  # "the client opens ONE connection": it redials
        app.sample()
        await pilot.pause()
        if player.phase != "reached":
            assert "Watch: the client opens ONE connection" in narration_text(app)
            assert "opened ONE HTTP/2 connection" not in narration_text(app)
        await player.wait_reached(10)
        app.sample()
        await pilot.pause()
        assert "opened ONE HTTP/2 connection (1 READY)" in narration_text(app)


async def test_the_default_seed_pins_pod_3_without_the_replay() -> None:
    app = RpcvizApp()  # the app's own defaults
    async with app.run_test(size=(100, 30)) as pilot:
        await app.cluster.wait_ready()
        await wait_until(lambda: app.cluster.view().pinned_pod is not None, 5, "the L4 LB's pick")
        app.sample()
        await pilot.pause()
        assert app.cluster.view().pinned_pod == 3
        assert {box.index for box in app.query(PodBox) if box.has_class("-pinned")} == {3}
