"""The scene's screen: the diagram, the caption, the newest events and the lower panels.

Every widget here renders one sampled :class:`ClusterView`: the screen holds it in the
``view`` reactive and each widget is data-bound to it, so the app samples once and the
widgets follow. The guided replay is a mode of this screen (its narration bar shows), not
a second copy of the diagram.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.reactive import var
from textual.screen import Screen
from textual.widgets import Footer, Header, TabbedContent, TabPane

from app.cluster import ClusterView
from app.widgets.balancer_box import BalancerBox
from app.widgets.caption import Caption
from app.widgets.client_box import ClientBox
from app.widgets.client_link import ClientLink
from app.widgets.code_panel import CodePanel
from app.widgets.configuration_bar import ConfigurationBar
from app.widgets.pod_grid import BackendsTitle, PodGrid
from app.widgets.pod_links import PodLinks
from app.widgets.questions_panel import QuestionsPanel
from app.widgets.recent_events import RecentEvents


class SceneScreen(Screen[None]):
    #: The latest sample of the cluster; None until the first one.
    view: var[ClusterView | None] = var(None)
    #: The clock connection ages are read against (it ticks while ages are shown).
    now: var[float] = var(0.0)

    def __init__(self, pods: int) -> None:
        super().__init__()
        self._initial_pods = pods

    def compose(self) -> ComposeResult:
        yield Header()
        yield ConfigurationBar(id="configurations").data_bind(SceneScreen.view)
        with Horizontal(id="diagram"):
            yield ClientBox(id="client").data_bind(SceneScreen.view)
            yield ClientLink(id="client-link").data_bind(SceneScreen.view)
            yield BalancerBox(id="balancer").data_bind(SceneScreen.view, SceneScreen.now)
            with Vertical(id="backends"):
                yield BackendsTitle(self._initial_pods, id="backends-title").data_bind(SceneScreen.view)
                yield PodLinks(id="pod-links").data_bind(SceneScreen.view)
                yield PodGrid(self._initial_pods, id="pods").data_bind(SceneScreen.view)
        yield Caption(id="caption").data_bind(SceneScreen.view)
        yield RecentEvents(id="events").data_bind(SceneScreen.view)
        with TabbedContent(id="lower"):
            with TabPane("Code", id="code-tab"):
                yield CodePanel(id="code").data_bind(SceneScreen.view)
            with TabPane("Questions", id="questions-tab"):
                yield QuestionsPanel(id="questions")
        yield Footer(compact=True)
