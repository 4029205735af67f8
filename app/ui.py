"""The rpcviz app: scene 09's diagram, live from the in-process cluster.

The App holds bindings, layout, the cluster's lifecycle and one sampling
timer; widgets only render the :class:`ClusterView` it samples.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from textual.app import App
from textual.binding import Binding
from textual.timer import Timer

from app.cluster import MAX_PODS, Cluster, ClusterConfig, ClusterView, configuration
from app.scene import TITLE as SCENE_TITLE
from app.screens.scene import SceneScreen
from app.widgets.configuration_bar import ConfigurationBar
from app.widgets.help_screen import HelpScreen
from app.widgets.policy_chip import PolicyChip

SAMPLE_INTERVAL = 0.1
#: Unchanged samples before the timer pauses (an idle app costs ~nothing).
IDLE_SAMPLES = 10
BURST = 100
#: Steady traffic (`t`): users greeting back to back with a think time (a closed loop). They offer
#: ~235 calls/s, above one pod's 200/s (4 workers x 20 ms): pinned, the pod pegs at 100 % and calls
#: queue (~50-100 ms; never more calls than users); balanced, ~30 % each.
STEADY_USERS = 40
STEADY_THINK_TIME = 0.15
#: The app's client re-resolves at most every 10 s (gRPC's DNS resolver: 30 s), so a new pod
#: joins round_robin within a newcomer's patience; the caption says the figure.
MIN_RERESOLUTION_INTERVAL = 10.0


class RpcvizApp(App[None]):
    CSS_PATH = "rpcviz.tcss"
    TITLE = "rpcviz"
    SUB_TITLE = SCENE_TITLE
    ENABLE_COMMAND_PALETTE = False
    #: Wide terminals show the three listings side by side; tall ones, taller meters (rpcviz.tcss).
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (200, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (40, "-tall")]
    BINDINGS = [
        Binding("p", "toggle_policy", "Policy", tooltip="switch pick_first / round_robin (or click the chip)"),
        Binding("m", "next_configuration", "Config", tooltip="the next of the six configurations (or click one above)"),
        Binding("g", "greet", "Greet", tooltip='fire one greet("Ada")'),
        Binding("b", "burst", "Burst", tooltip=f"fire {BURST} greets at once"),
        Binding("t", "steady", "Steady", tooltip=f"start or stop {STEADY_USERS} users greeting back to back"),
        Binding("s", "slow", "Slow", tooltip="then 1-8: pod N answers ten times slower (again: heals)"),
        Binding("plus", "scale(1)", "Scale", key_display="+/-", tooltip=f"add a pod (up to {MAX_PODS}), - removes one"),
        Binding("minus", "scale(-1)", "Scale", show=False),
        Binding("1", "pod(1)", "Kill", key_display="1-8", tooltip="crash pod N, or bring it back"),
        *(Binding(str(n), f"pod({n})", "Kill", show=False) for n in range(2, MAX_PODS + 1)),
        Binding("d", "drain", "Drain", show=False, tooltip="then 1-8: pod N reports NOT_SERVING (again: SERVING)"),
        Binding("r", "reset", "Reset", show=False, tooltip="zero every counter"),
        Binding("question_mark", "help", "Help", key_display="?", tooltip="this screen"),
        Binding("q", "quit", "Quit", tooltip="stop the cluster and leave"),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(self, config: ClusterConfig | None = None, steady_users: int = STEADY_USERS) -> None:
        super().__init__()
        self.cluster = Cluster(config or ClusterConfig(min_reresolution_interval=MIN_RERESOLUTION_INTERVAL))
        self.steady_users = steady_users
        self._last: ClusterView | None = None
        #: `d` or `s` was pressed: the next pod number drains or slows it instead of killing it.
        self._pending: str | None = None
        self._unchanged = 0
        self._timer: Timer | None = None
        #: The clock connection ages are read against (tests freeze it for snapshots).
        self.clock: Callable[[], float] = lambda: asyncio.get_running_loop().time()

    def get_default_screen(self) -> SceneScreen:
        return SceneScreen(len(self.cluster.pods))

    @property
    def scene(self) -> SceneScreen:
        """The scene's screen (the default screen: help and other modals stack on it)."""
        screen = self.screen_stack[0]
        assert isinstance(screen, SceneScreen)
        return screen

    async def on_mount(self) -> None:
        await self.cluster.start("pick_first")
        self.cluster.add_listener(self.wake)
        self._timer = self.set_interval(SAMPLE_INTERVAL, self.sample)
        self.sample()

    async def on_unmount(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        await self.cluster.stop()

    # --- sampling -------------------------------------------------------------

    def sample(self) -> None:
        """Read the cluster's counters and hand the view to the widgets."""
        if not self.is_running:
            return  # shutting down: the widgets are going away
        view = self.cluster.view()
        if view == self._last:
            if _ages_shown(view):
                self.scene.now = self.clock()  # the ages tick: keep sampling
                return
            self._unchanged += 1
            if self._unchanged >= IDLE_SAMPLES and self._timer is not None:
                self._timer.pause()
            return
        self._unchanged = 0
        self._last = view
        scene = self.scene
        scene.now = self.clock()
        scene.view = view

    @property
    def sampling(self) -> bool:
        """False while the sampler is paused because nothing changes."""
        return self._timer is not None and self._unchanged < IDLE_SAMPLES

    def wake(self) -> None:
        """Something changed: sample again until it settles."""
        self._unchanged = 0
        if self._timer is not None:
            self._timer.resume()

    # --- actions ----------------------------------------------------------------

    def action_toggle_policy(self) -> None:
        self.cluster.toggle_policy()
        self.wake()

    def on_policy_chip_toggled(self, _: PolicyChip.Toggled) -> None:
        self.action_toggle_policy()

    async def action_next_configuration(self) -> None:
        await self.cluster.next_configuration()  # the selector and the caption say which
        self.wake()

    async def on_configuration_bar_selected(self, message: ConfigurationBar.Selected) -> None:
        await self.cluster.apply(configuration(message.number))
        self.wake()

    async def action_scale(self, delta: int) -> None:
        try:
            pod = await (self.cluster.add_pod() if delta > 0 else self.cluster.remove_pod())
        except ValueError as exc:
            self.notify(str(exc), severity="warning")
            return
        self.notify(f"pod #{pod.index} {'started' if delta > 0 else 'removed'}: {len(self.cluster.pods)} pods")
        self.wake()

    def action_greet(self) -> None:
        self.cluster.traffic.greet()
        self.wake()

    def action_burst(self) -> None:
        self.cluster.traffic.burst(BURST)
        self.wake()

    def action_steady(self) -> None:
        traffic = self.cluster.traffic
        if traffic.steady:
            traffic.stop_steady()
        else:
            traffic.start_users(self.steady_users, STEADY_THINK_TIME)
        self.wake()

    def action_reset(self) -> None:
        self.cluster.reset()
        self.wake()

    async def action_pod(self, index: int) -> None:
        pending, self._pending = self._pending, None
        if index > len(self.cluster.pods):
            self.notify(f"there is no pod #{index}", severity="warning")
            return
        if pending == "drain":
            draining = self.cluster.toggle_drain(index)
            self.notify(f"pod #{index} reports {'NOT_SERVING' if draining else 'SERVING'}")
        elif pending == "slow":
            slow = self.cluster.toggle_slow(index)
            factor = self.cluster.config.slow_factor
            self.notify(f"pod #{index} {f'answers {factor:g}× slower' if slow else 'healed'}")
        else:
            serving = await self.cluster.toggle_pod(index)
            self.notify(f"pod #{index} {'restarted' if serving else 'killed'}")
        self.wake()

    def action_drain(self) -> None:
        self._pending = "drain"
        self.notify(f"drain which pod? press 1-{len(self.cluster.pods)}")

    def action_slow(self) -> None:
        self._pending = "slow"
        self.notify(f"slow down which pod? press 1-{len(self.cluster.pods)}")

    def action_help(self) -> None:
        bindings = [active.binding for active in self.screen.active_bindings.values() if active.node is self]
        self.push_screen(HelpScreen(bindings))


def _ages_shown(view: ClusterView) -> bool:
    """Connection ages are on screen (MAX_CONNECTION_AGE is set and a connection is up)."""
    return view.max_connection_age is not None and any(c.connected_at is not None for c in view.connections)


def run_app() -> int:
    RpcvizApp().run()
    return 0
