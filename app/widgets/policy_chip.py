"""The balancer's policy chip: which policy runs, through what; clicking it toggles pick_first/round_robin."""

from __future__ import annotations

from rich.text import Text
from textual.message import Message
from textual.widgets import Static

from app.cluster.view import ClusterView
from app.scene.policy import policy_summary
from app.widgets.shown import show


def chip_text(view: ClusterView) -> Text:
    """Two lines, the policy's name in bold, then what it does: nothing to wrap, no brackets."""
    name, does = policy_summary(view)
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(name, style="bold")
    text.append("\n")
    text.append(does)
    return text


class PolicyChip(Static):
    class Toggled(Message):
        """The user asked for the other policy."""

    def show(self, view: ClusterView) -> None:
        show(self, chip_text(view))
        self.set_class(view.per_call, "-per-call")

    def on_click(self) -> None:
        self.post_message(self.Toggled())
