"""The listings the live state runs: the answer's own (MAX_CONNECTION_AGE, L7, least_request,
re-resolution) first, then the scene's three, with the live branch marked."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.widgets import Static

from app.cluster.view import ClusterView
from app.scene import LISTINGS, Listing, highlighted, listings_for, live_keys

#: Listing slots: the scene's three and at most four answers' listings.
_SLOTS = len(LISTINGS) + 4


def render_listing(listing: Listing, keys: frozenset[str]) -> Text:
    marked = highlighted(listing, keys)
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
    view: reactive[ClusterView | None] = reactive(None)

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._shown: tuple[tuple[Listing, ...], frozenset[str]] | None = None

    def compose(self) -> ComposeResult:
        for _ in range(_SLOTS):
            yield Static(classes="listing")

    def watch_view(self, view: ClusterView | None) -> None:
        if view is not None:
            self.show(view)

    def show(self, view: ClusterView) -> None:
        shown = (listings_for(view), live_keys(view))
        if shown == self._shown:
            return
        self._shown = shown
        listings, keys = shown
        for i, widget in enumerate(self.query(".listing").results(Static)):
            widget.display = i < len(listings)
            if i < len(listings):
                widget.update(render_listing(listings[i], keys))
