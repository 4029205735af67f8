"""The balancer's policy chip; clicking it toggles pick_first/round_robin."""

from __future__ import annotations

from textual.message import Message
from textual.widgets import Static

CHIP_TEXT = {
    "pick_first": "pick_first → pinned to 1 pod",
    "round_robin": "round_robin → one pick per call",
}


class PolicyChip(Static):
    class Toggled(Message):
        """The user asked for the other policy."""

    def show(self, policy: str) -> None:
        self.update(f"[{CHIP_TEXT[policy]}]")
        self.set_class(policy == "round_robin", "-round-robin")

    def on_click(self) -> None:
        self.post_message(self.Toggled())
