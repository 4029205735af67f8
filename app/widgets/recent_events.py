"""The newest events under the caption: connections READY, GOAWAYs, re-resolutions, pods."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from app.cluster.events import Event
from app.cluster.view import ClusterView

#: Events worth the eye: a GOAWAY or a lost connection stands out.
_STYLE = {"goaway": "bold", "lost": "bold", "configuration": "italic"}


def render_events(events: tuple[Event, ...]) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    for i, event in enumerate(events):
        if i:
            text.append("\n")
        text.append(f"#{event.number} ", style="dim")
        text.append(event.text, style=_STYLE.get(event.kind, ""))
    return text


class RecentEvents(Static):
    view: reactive[ClusterView | None] = reactive(None)

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._events: tuple[Event, ...] = ()

    def watch_view(self, view: ClusterView | None) -> None:
        if view is not None:
            self.show(view.events)

    def show(self, events: tuple[Event, ...]) -> None:
        if events != self._events:
            self._events = events
            self.refresh()

    def render(self) -> Text:
        rows = max(1, self.content_size.height)
        return render_events(self._events[-rows:])
