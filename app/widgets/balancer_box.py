"""The middle of the diagram: the L4 balancer, the policy chip, the connections."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from app.cluster.view import ClusterView
from app.widgets.connection_lines import ConnectionLines
from app.widgets.policy_chip import PolicyChip


class BalancerBox(Vertical):
    def compose(self) -> ComposeResult:
        yield Static("balances CONNECTIONS", id="balancer-role")
        yield PolicyChip(id="policy-chip")
        yield Static(id="balancer-path")
        yield ConnectionLines(id="connection-lines")

    def on_mount(self) -> None:
        self.border_title = "L4 LB (ELB/nginx)"

    def show(self, view: ClusterView) -> None:
        self.query_one(PolicyChip).show(view.policy)
        path = "client → VIP → 1 pod" if view.policy == "pick_first" else "client → pods (VIP bypassed)"
        self.query_one("#balancer-path", Static).update(path)
        self.query_one(ConnectionLines).show(view)
        self.set_class(view.policy == "round_robin", "-bypassed")
