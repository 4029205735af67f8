"""The lines under the diagram: what the live configuration does (bold), then what you see."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from app.cluster.view import ClusterView
from app.scene import caption, configuration_line
from app.widgets.shown import show


class Caption(Static):
    view: reactive[ClusterView | None] = reactive(None)

    def watch_view(self, view: ClusterView | None) -> None:
        if view is not None:
            self.show(view)

    def show(self, view: ClusterView) -> None:
        text = Text()
        text.append(configuration_line(view), style="bold")
        text.append("\n")
        text.append(caption(view))
        show(self, text, layout=False)  # its height is fixed (rpcviz.tcss)
