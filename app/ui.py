"""The rpcviz app: scene 09's diagram, live from the in-process cluster.

The App holds bindings, layout, the cluster's lifecycle and one sampling
timer; widgets only render the :class:`ClusterView` it samples.
"""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import Footer, Header, Static, TabbedContent, TabPane

from app.cluster import Cluster, ClusterConfig, ClusterView
from app.scene import TITLE as SCENE_TITLE
from app.widgets.balancer_box import BalancerBox
from app.widgets.caption import Caption
from app.widgets.client_box import ClientBox
from app.widgets.code_panel import CodePanel
from app.widgets.help_screen import HelpScreen
from app.widgets.pod_grid import PodGrid
from app.widgets.policy_chip import PolicyChip
from app.widgets.questions_panel import QuestionsPanel

SAMPLE_INTERVAL = 0.1
#: Unchanged samples before the timer pauses (an idle app costs ~nothing).
IDLE_SAMPLES = 10
BURST = 100
#: Below one pod's nominal 200/s, above what it sustains with the loop shared: pinned, one pod runs
#: at ~90-100 %; balanced, ~25 % each.
STEADY_RATE = 150.0


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
        Binding("g", "greet", "Greet", tooltip='fire one greet("Ada")'),
        Binding("b", "burst", "Burst", tooltip=f"fire {BURST} greets at once"),
        Binding("t", "steady", "Steady", tooltip=f"start or stop {STEADY_RATE:g} greets per second"),
        Binding("r", "reset", "Reset", tooltip="zero every counter"),
        Binding("1", "pod(1)", "Kill", key_display="1-4", tooltip="crash pod N, or bring it back"),
        *(Binding(str(n), f"pod({n})", "Kill", show=False) for n in range(2, 5)),
        Binding("d", "drain", "Drain", tooltip="then 1-4: pod N reports NOT_SERVING (again: SERVING)"),
        Binding("question_mark", "help", "Help", key_display="?", tooltip="this screen"),
        Binding("q", "quit", "Quit", tooltip="stop the cluster and leave"),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(self, config: ClusterConfig | None = None, steady_rate: float = STEADY_RATE) -> None:
        super().__init__()
        self.cluster = Cluster(config)
        self.steady_rate = steady_rate
        self._last: ClusterView | None = None
        #: `d` was pressed: the next pod number drains instead of kills.
        self._drain_next = False
        self._unchanged = 0
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="diagram"):
            yield ClientBox(id="client")
            yield BalancerBox(id="balancer")
            with Vertical(id="backends"):
                yield Static(f"BACKEND PODS · {len(self.cluster.pods)}", id="backends-title")
                yield PodGrid(len(self.cluster.pods), id="pods")
        yield Caption(id="caption")
        with TabbedContent(id="lower"):
            with TabPane("Code", id="code-tab"):
                yield CodePanel(id="code")
            with TabPane("Questions", id="questions-tab"):
                yield QuestionsPanel(id="questions")
        yield Footer(compact=True)

    async def on_mount(self) -> None:
        self._client = self.query_one(ClientBox)
        self._balancer = self.query_one(BalancerBox)
        self._pods = self.query_one(PodGrid)
        self._caption = self.query_one(Caption)
        self._code = self.query_one(CodePanel)
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
            self._unchanged += 1
            if self._unchanged >= IDLE_SAMPLES and self._timer is not None:
                self._timer.pause()
            return
        self._unchanged = 0
        self._last = view
        self._client.show(view)
        self._balancer.show(view)
        self._pods.show(view)
        self._caption.show(view)
        self._code.show(view.policy)

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
            traffic.start_steady(self.steady_rate)
        self.wake()

    def action_reset(self) -> None:
        self.cluster.reset()
        self.wake()

    async def action_pod(self, index: int) -> None:
        if index > len(self.cluster.pods):
            self.notify(f"there is no pod #{index}", severity="warning")
            return
        if self._drain_next:
            self._drain_next = False
            draining = self.cluster.toggle_drain(index)
            self.notify(f"pod #{index} reports {'NOT_SERVING' if draining else 'SERVING'}")
        else:
            serving = await self.cluster.toggle_pod(index)
            self.notify(f"pod #{index} {'restarted' if serving else 'killed'}")
        self.wake()

    def action_drain(self) -> None:
        self._drain_next = True
        self.notify("drain which pod? press 1-4")

    def action_help(self) -> None:
        bindings = [active.binding for active in self.screen.active_bindings.values() if active.node is self]
        self.push_screen(HelpScreen(bindings))


def run_app() -> int:
    RpcvizApp().run()
    return 0
