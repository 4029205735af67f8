"""The gRPC client: its HTTP/2 connections and the calls it has sent."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from app.cluster.view import ClusterView


class ClientBox(Static):
    view: reactive[ClusterView | None] = reactive(None)

    def on_mount(self) -> None:
        self.border_title = "gRPC client"

    def watch_view(self, view: ClusterView | None) -> None:
        if view is not None:
            self.show(view)

    def show(self, view: ClusterView) -> None:
        conns = view.ready_connections
        text = Text()
        text.append(f"{conns}", style="bold")
        text.append(f" HTTP/2 conn{'s' if conns != 1 else ''}\n")
        text.append(f"{view.fired}", style="bold")
        text.append(" RPCs sent\n")
        text.append(f"ok {view.ok}\n")
        text.append(f"failed {view.failed_total}\n", style="bold" if view.failed_total else "")
        text.append(f"in flight {view.in_flight}\n")
        if view.steady_rate is not None:
            text.append(f"▶ steady {view.steady_rate:g}/s", style="reverse")
        self.update(text)
