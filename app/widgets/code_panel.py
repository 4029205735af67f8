"""The scene's three listings, with the current policy's branch marked."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from app.scene import LISTINGS, Listing, highlighted


def render_listing(listing: Listing, policy: str) -> Text:
    marked = highlighted(listing, policy)
    text = Text()
    text.append(listing.name, style="bold")
    text.append(f"  {listing.purpose}\n", style="italic")
    for number, line in enumerate(listing.lines, 1):
        on = number in marked
        text.append("▶" if on else " ", style="bold")
        text.append(f"{number:>2} ", style="dim")
        text.append(line + "\n", style="reverse" if on else "")
    return text


class CodePanel(VerticalScroll):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._policy = ""

    def compose(self) -> ComposeResult:
        for listing in LISTINGS:
            yield Static(classes="listing")

    def show(self, policy: str) -> None:
        if policy == self._policy:
            return
        self._policy = policy
        for widget, listing in zip(self.query(".listing").results(Static), LISTINGS):
            widget.update(render_listing(listing, policy))
