"""The middle of the diagram: the VIP (an L4 balancer or an L7 proxy), the policy chip, the connections."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import Static

from app.cluster.view import ClusterView
from app.scene.policy import route, vip_role, vip_title
from app.widgets.connection_lines import ConnectionLines
from app.widgets.policy_chip import PolicyChip
from app.widgets.shown import show


class BalancerBox(Vertical):
    view: reactive[ClusterView | None] = reactive(None)
    #: The clock connection ages are read against.
    now: reactive[float] = reactive(0.0)

    def compose(self) -> ComposeResult:
        yield Static(id="balancer-role")
        yield PolicyChip(id="policy-chip")
        yield Static(id="balancer-path")
        yield ConnectionLines(id="connection-lines")

    def watch_view(self, view: ClusterView | None) -> None:
        if view is not None:
            self.show(view, self.now)

    def watch_now(self, now: float) -> None:
        if self.view is not None:
            self.query_one(ConnectionLines).show(self.view, now)

    def show(self, view: ClusterView, now: float) -> None:
        self.border_title = vip_title(view)
        show(self.query_one("#balancer-role", Static), vip_role(view))
        self.query_one(PolicyChip).show(view)
        show(self.query_one("#balancer-path", Static), route(view))
        self.query_one(ConnectionLines).show(view, now)
        self.set_class(not view.via_vip, "-bypassed")
