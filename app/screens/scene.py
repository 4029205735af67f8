"""The scene's screen: the diagram, the caption, the newest events and the lower panels.

Every widget here renders one sampled :class:`ClusterView`: the screen holds it in the
``view`` reactive and each widget is data-bound to it, so the app samples once and the
widgets follow. The guided replay is a mode of this screen (its narration bar shows), not
a second copy of the diagram.
"""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.reactive import var
from textual.screen import Screen
from textual.widgets import Footer, Header, Static, TabbedContent, TabPane

from app.cluster import ClusterView
from app.replay import Narration
from app.widgets.balancer_box import BalancerBox
from app.widgets.caption import Caption
from app.widgets.chat_panel import ChatPanel
from app.widgets.client_box import ClientBox
from app.widgets.client_link import ClientLink
from app.widgets.code_panel import CodePanel
from app.widgets.configuration_bar import ConfigurationBar
from app.widgets.history_chart import HistoryChart
from app.widgets.narration_bar import NarrationBar
from app.widgets.pod_grid import BackendsTitle, PodGrid
from app.widgets.pod_links import PodLinks
from app.widgets.recent_events import RecentEvents

#: Below this the diagram cannot be drawn without clipping: a notice says so instead.
MIN_WIDTH, MIN_HEIGHT = 80, 24


class SceneScreen(Screen[None]):
    #: The latest sample of the cluster; None until the first one.
    view: var[ClusterView | None] = var(None)
    #: The clock connection ages are read against (it ticks while ages are shown).
    now: var[float] = var(0.0)
    #: The replay's narration, or None when no replay runs (the bar then hides).
    narration: var[Narration | None] = var(None)

    def __init__(self, pods: int, owned: bool = True) -> None:
        super().__init__()
        self._initial_pods = pods
        #: False when attached to a deployment: its configurations are not the app's to switch.
        self._owned = owned

    def compose(self) -> ComposeResult:
        yield Header()
        bar = ConfigurationBar(id="configurations").data_bind(SceneScreen.view)
        bar.display = self._owned
        yield bar
        with Horizontal(id="diagram"):
            yield ClientBox(id="client").data_bind(SceneScreen.view)
            yield ClientLink(id="client-link").data_bind(SceneScreen.view)
            yield BalancerBox(id="balancer").data_bind(SceneScreen.view, SceneScreen.now)
            with Vertical(id="backends"):
                yield BackendsTitle(self._initial_pods, id="backends-title").data_bind(SceneScreen.view)
                yield PodLinks(id="pod-links").data_bind(SceneScreen.view)
                yield PodGrid(self._initial_pods, id="pods").data_bind(SceneScreen.view)
        yield NarrationBar(id="narration").data_bind(SceneScreen.narration)
        yield Caption(id="caption").data_bind(SceneScreen.view)
        yield RecentEvents(id="events").data_bind(SceneScreen.view)
        with TabbedContent(id="lower"):
            with TabPane("Code", id="code-tab"):
                yield CodePanel(id="code").data_bind(SceneScreen.view)
            with TabPane("History", id="history-tab"), VerticalScroll():
                yield HistoryChart(id="history").data_bind(SceneScreen.view)
            with TabPane("Chat", id="chat-tab"):
                yield ChatPanel(id="chat").data_bind(SceneScreen.view)
        yield Static(id="too-small")
        yield Footer(compact=True)

    def focus_chat(self) -> None:
        """Open the chat tab and focus its first question."""
        self.query_one(TabbedContent).active = "chat-tab"
        self.call_after_refresh(self.query_one(ChatPanel).focus_questions)  # once the tab shows

    def watch_narration(self, narration: Narration | None) -> None:
        self.set_class(narration is not None, "-replay")

    def on_resize(self, event: events.Resize) -> None:
        width, height = event.size
        small = width < MIN_WIDTH or height < MIN_HEIGHT
        self.set_class(small, "-too-small")
        if small:
            self.query_one("#too-small", Static).update(
                f"The terminal is {width}×{height}: rpcviz needs at least {MIN_WIDTH}×{MIN_HEIGHT}.\n"
                "Make the window larger (or press q to quit)."
            )
