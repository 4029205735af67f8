"""The rpcviz app: scene 09's diagram, live from the in-process cluster.

The App holds bindings, layout, the cluster's lifecycle and one sampling
timer; widgets only render the :class:`ClusterView` it samples.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from textual.actions import ActionParseResult
from textual.app import App
from textual.binding import Binding
from textual.timer import Timer

from app.cluster import MAX_PODS, Cluster, ClusterConfig, ClusterView, configuration
from app.cluster.attached import AttachedCluster, NotOwned
from app.replay import Player, Stage
from app.scene import SCENE_SEED
from app.scene import TITLE as SCENE_TITLE
from app.screens.scene import SceneScreen
from app.widgets.chat_panel import ChatPanel
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
#: How long quitting waits for the pods' and the channel's connections to close.
STOP_GRACE = 0.3


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
        Binding(
            "m", "next_configuration", "Config", tooltip="the next of the seven configurations (or click one above)"
        ),
        Binding("g", "greet", "Greet", tooltip='fire one greet("Ada")'),
        Binding("b", "burst", "Burst", tooltip=f"fire {BURST} greets at once"),
        Binding("t", "steady", "Steady", tooltip=f"start or stop {STEADY_USERS} users greeting back to back"),
        Binding("s", "slow", "Slow", show=False, tooltip="then 1-8: pod N answers ten times slower (again: heals)"),
        Binding(
            "plus",
            "scale(1)",
            "Scale",
            key_display="+/-",
            show=False,
            tooltip=f"add a pod (up to {MAX_PODS}), - removes one",
        ),
        Binding("minus", "scale(-1)", "Scale", show=False),
        Binding("1", "pod(1)", "Kill", key_display="1-8", tooltip="crash pod N, or bring it back"),
        *(Binding(str(n), f"pod({n})", "Kill", show=False) for n in range(2, MAX_PODS + 1)),
        Binding("d", "drain", "Drain", show=False, tooltip="then 1-8: pod N reports NOT_SERVING (again: SERVING)"),
        Binding("r", "reset", "Reset", show=False, tooltip="zero every counter"),
        Binding("c", "chat", "Ask", tooltip="ask the staff engineer: the Chat tab's questions (Enter asks)"),
        Binding(
            "space",
            "replay_forward",
            "Replay",
            key_display="␣",  # the footer fits 80 columns
            tooltip="start the guided replay, or its next step",
        ),
        # priority: a focused tab or scroll view would take ← first (check_action lets it through
        # when no replay runs)
        Binding("left", "replay_back", "Back", show=False, priority=True, tooltip="the replay's step before"),
        Binding("backspace", "replay_back", "Back", show=False, priority=True),
        Binding("escape", "cancel", "Cancel", show=False, tooltip="cancel a pending d or s, or leave the replay"),
        Binding("question_mark", "help", "Help", key_display="?", tooltip="this screen"),
        Binding("q", "quit", "Quit", tooltip="stop the cluster and leave"),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(
        self,
        config: ClusterConfig | None = None,
        steady_users: int = STEADY_USERS,
        replay: bool = False,
        cluster: Cluster | None = None,
    ) -> None:
        super().__init__()
        #: The embedded cluster (it runs the pods), or a client attached to a deployment (``rpcviz attach``).
        self.cluster: Cluster = cluster or Cluster(
            config or ClusterConfig(seed=SCENE_SEED, min_reresolution_interval=MIN_RERESOLUTION_INTERVAL)
        )
        self.steady_users = steady_users
        #: The guided replay (``space`` starts it; ``replay=True`` starts it with the app).
        # (attached, the replay is refused: its steps drive an embedded cluster)
        self.player = Player(Stage(self.cluster, self._set_steady, len(self.cluster.pods)), on_change=self.wake)
        self._replay_at_start = replay
        self._last: ClusterView | None = None
        #: Views handed to the widgets so far (a new one each sample that changed).
        self.views_shown = 0
        #: `d` or `s` was pressed: the next pod number drains or slows it instead of killing it.
        self._pending: str | None = None
        self._unchanged = 0
        self._timer: Timer | None = None
        #: The clock connection ages are read against (tests freeze it for snapshots).
        self.clock: Callable[[], float] = lambda: asyncio.get_running_loop().time()

    def get_default_screen(self) -> SceneScreen:
        return SceneScreen(len(self.cluster.pods), owned=self.cluster.owned)

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
        if self._replay_at_start:
            self.player.start()

    async def on_unmount(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        await self.player.close()
        await self.cluster.stop(grace=STOP_GRACE)

    async def action_quit(self) -> None:
        """Leave within a second: calls still in flight are cancelled (and counted as CANCELLED), and
        the terminal says how many."""
        await self.player.close()
        cancelled = await self.cluster.traffic.cancel()
        message = (
            f"rpcviz: cancelled {cancelled} call{'s' if cancelled != 1 else ''} in flight on quit"
            if cancelled
            else None
        )
        self.exit(message=message)

    # --- sampling -------------------------------------------------------------

    def sample(self) -> None:
        """Read the cluster's counters and hand the view to the widgets."""
        if not self.is_running:
            return  # shutting down: the widgets are going away
        view = self.cluster.view()
        self.scene.narration = self.player.narration(view)
        if view == self._last:
            if _ages_shown(view):
                self.scene.now = self.clock()  # the ages tick: keep sampling
                return
            if view.history.scrolling:
                return  # the history still moves (a second completes): keep sampling
            self._unchanged += 1
            if self._unchanged >= IDLE_SAMPLES and self._timer is not None:
                self._timer.pause()
            return
        self._unchanged = 0
        self._last = view
        scene = self.scene
        scene.now = self.clock()
        scene.view = view
        self.views_shown += 1

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
        await self._apply(message.number)

    async def _apply(self, number: int) -> None:
        try:
            await self.cluster.apply(configuration(number))
        except NotOwned as exc:
            self.notify(str(exc), severity="warning")
        self.wake()

    async def action_scale(self, delta: int) -> None:
        try:
            await (self.cluster.add_pod() if delta > 0 else self.cluster.remove_pod())
        except ValueError as exc:
            self.notify(str(exc), severity="warning")
            return
        self.wake()  # the events row says "pod #5 started: 5 pods" (toasts are kept for refusals)

    def action_greet(self) -> None:
        self.cluster.traffic.greet()
        self.wake()

    def action_burst(self) -> None:
        self.cluster.traffic.burst(BURST)
        self.wake()

    def action_steady(self) -> None:
        self._set_steady(not self.cluster.traffic.steady)

    def action_reset(self) -> None:
        self.cluster.reset()
        self.wake()

    async def action_pod(self, index: int) -> None:
        pending = self._pending
        self._set_pending(None)
        if index > len(self.cluster.pods):
            self.notify(f"there is no pod #{index}", severity="warning")
            return
        # The events row says what happened ("pod #3 killed"); toasts are kept for refusals.
        if pending == "drain":
            self.cluster.toggle_drain(index)
        elif pending == "slow":
            self.cluster.toggle_slow(index)
        else:
            await self.cluster.toggle_pod(index)
        self.wake()

    def action_drain(self) -> None:
        self._owned("drain") and self._set_pending("drain")  # type: ignore[func-returns-value]

    def action_slow(self) -> None:
        self._owned("slow down") and self._set_pending("slow")  # type: ignore[func-returns-value]

    def _owned(self, what: str) -> bool:
        """The app runs the pods (else it says it cannot ``what`` them)."""
        if not self.cluster.owned:
            self.notify(f"rpcviz attach does not own these pods: it cannot {what} them", severity="warning")
        return self.cluster.owned

    def _set_pending(self, pending: str | None) -> None:
        """``d`` or ``s`` waits for a pod number: the header says so until one comes or Esc."""
        self._pending = pending
        if pending is None:
            self.sub_title = SCENE_TITLE
        else:
            verb = "drain" if pending == "drain" else "slow down"
            self.sub_title = f"{verb} which pod? press 1-{len(self.cluster.pods)} · esc cancels"

    async def run_action(self, action: str | ActionParseResult, *args: Any, **kwargs: Any) -> bool:
        # Any other action cancels a pending d or s (it would otherwise catch a later digit).
        if self._pending is not None and isinstance(action, str) and not action.startswith(("pod(", "drain", "slow")):
            self._set_pending(None)
            if action == "cancel":
                return True
        try:
            return await super().run_action(action, *args, **kwargs)
        except NotOwned as exc:  # attached: the pods and the configurations are not ours
            self.notify(str(exc), severity="warning")
            return True

    def action_cancel(self) -> None:
        if self.player.playing:
            self.player.leave()

    def action_chat(self) -> None:
        self.scene.focus_chat()

    async def on_chat_panel_show_me(self, message: ChatPanel.ShowMe) -> None:
        await self._apply(message.configuration)

    # --- the replay ---------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "replay_back":
            return self.player.playing
        return True

    def action_replay_forward(self) -> None:
        if not self.cluster.owned:
            self.notify("the replay drives the embedded cluster: run `rpcviz --replay` for it", severity="warning")
            return
        self.player.forward()

    def action_replay_back(self) -> None:
        self.player.back()

    def _set_steady(self, on: bool) -> None:
        """Start or stop the steady users (``t``; the replay's steps run the same traffic)."""
        traffic = self.cluster.traffic
        if on and not traffic.steady:
            traffic.start_users(self.steady_users, STEADY_THINK_TIME)
        elif not on and traffic.steady:
            traffic.stop_steady()
        self.wake()

    def action_help(self) -> None:
        # every binding, also those inactive now (← only acts during a replay)
        bindings = [binding for binding in self.BINDINGS if isinstance(binding, Binding)]
        self.push_screen(HelpScreen(bindings))


def _ages_shown(view: ClusterView) -> bool:
    """Connection ages are on screen (MAX_CONNECTION_AGE is set and a connection is up)."""
    return view.max_connection_age is not None and any(c.connected_at is not None for c in view.connections)


class AttachApp(RpcvizApp):
    """``rpcviz attach``: the same screen on a deployment the app does not own. Kill, drain, slow and
    scale are hidden (and say why if pressed); the policy toggle, greets, bursts, the steady users and
    the history work as embedded."""

    BINDINGS = [
        Binding("1", "pod(1)", "Kill", show=False),
    ]

    #: The App's interface to a cluster, over pods it does not own (what it cannot do raises NotOwned).
    cluster: AttachedCluster  # type: ignore[assignment]

    def __init__(self, cluster: AttachedCluster) -> None:
        super().__init__(cluster=cluster)  # type: ignore[arg-type]
        pods = f" · pods {cluster.pods_target}" if cluster.pods_target else ""
        self.sub_title = f"attached to VIP {cluster.vip}{pods}"


def run_app(replay: bool = False, seed: int = SCENE_SEED) -> int:
    config = ClusterConfig(seed=seed, min_reresolution_interval=MIN_RERESOLUTION_INTERVAL)
    RpcvizApp(config, replay=replay).run()
    return 0
