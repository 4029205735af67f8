"""The middle of the diagram: the VIP (an L4 balancer or an L7 proxy), the policy chip, the connections."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import Static

from app.cluster.view import ClusterView
from app.widgets.connection_lines import ConnectionLines
from app.widgets.policy_chip import PolicyChip

TITLES = {"l4": "L4 LB (ELB/nginx)", "l7": "L7 proxy (Envoy)"}
ROLES = {"l4": "balances CONNECTIONS", "l7": "balances CALLS"}


def path(view: ClusterView) -> str:
    if view.policy != "pick_first":
        return "direct to pods"
    if view.balancer == "l7":
        return "via L7 → every pod"
    if view.channels > 1:
        return f"{view.channels} channels → VIP"
    return "via VIP → 1 pod"


class BalancerBox(Vertical):
    view: reactive[ClusterView | None] = reactive(None)
    #: The clock connection ages are read against.
    now: reactive[float] = reactive(0.0)

    def compose(self) -> ComposeResult:
        yield Static(ROLES["l4"], id="balancer-role")
        yield PolicyChip(id="policy-chip")
        yield Static(id="balancer-path")
        yield ConnectionLines(id="connection-lines")

    def on_mount(self) -> None:
        self.border_title = TITLES["l4"]

    def watch_view(self, view: ClusterView | None) -> None:
        if view is not None:
            self.show(view, self.now)

    def watch_now(self, now: float) -> None:
        if self.view is not None:
            self.query_one(ConnectionLines).show(self.view, now)

    def show(self, view: ClusterView, now: float) -> None:
        self.border_title = TITLES[view.balancer]
        self.query_one("#balancer-role", Static).update(ROLES[view.balancer])
        self.query_one(PolicyChip).show(view)
        self.query_one("#balancer-path", Static).update(path(view))
        self.query_one(ConnectionLines).show(view, now)
        self.set_class(view.policy != "pick_first", "-bypassed")
