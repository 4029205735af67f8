"""The balancer's policy chip: which policy runs, through what; clicking it toggles pick_first/round_robin."""

from __future__ import annotations

from textual.message import Message
from textual.widgets import Static

from app.cluster.view import ClusterView


def chip_text(view: ClusterView) -> str:
    if view.policy == "pick_first":
        if view.balancer == "l7":
            return "pick_first → L7 picks per call"
        return f"{view.channels} × pick_first" if view.channels > 1 else "pick_first → pinned to 1 pod"
    if view.policy == "round_robin":
        return "round_robin → one pick per call"
    return "least_request → less busy of 2"


class PolicyChip(Static):
    class Toggled(Message):
        """The user asked for the other policy."""

    def show(self, view: ClusterView) -> None:
        self.update(f"[{chip_text(view)}]")
        balanced = view.policy != "pick_first" or view.balancer == "l7"
        self.set_class(balanced, "-round-robin")

    def on_click(self) -> None:
        self.post_message(self.Toggled())
