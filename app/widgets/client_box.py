"""The gRPC client: its HTTP/2 connections, the calls it has sent, and the steady traffic it runs."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from app.cluster.view import ClusterView


def plural(n: int, word: str) -> str:
    """``1 RPC``, ``2 RPCs``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def short(n: int) -> str:
    """12 -> "12", 1234 -> "1.2k", 56789 -> "57k", 1234567 -> "1.2M"."""
    if n < 1000:
        return str(n)
    if n < 10_000:
        return f"{n / 1000:.1f}k"
    if n < 1_000_000:
        return f"{n // 1000}k"
    return f"{n / 1_000_000:.1f}M"


def counter_row(labels: tuple[str, ...], n: int, width: int) -> str:
    """``label`` then ``n`` right-aligned in ``width`` cells: the longest label that fits, the number
    shortened (10.5k) only when even the shortest label leaves no room for every digit."""
    for label in labels:
        if len(label) + 1 + len(str(n)) <= width:
            return f"{label} {n:>{width - len(label) - 1}}"
    label = labels[-1]
    return f"{label} {short(n):>{max(0, width - len(label) - 1)}}"


def client_lines(view: ClusterView, width: int) -> list[Text]:
    """The box's lines, none wider than ``width`` (nothing wraps as the counters grow)."""
    conns = view.ready_connections
    head = Text()
    head.append(str(conns), style="bold")
    head.append(f" HTTP/2 conn{'' if conns == 1 else 's'}")
    lines = [
        head,
        Text(counter_row(("RPCs sent", "sent"), view.fired, width)),
        Text(counter_row(("ok",), view.ok, width)),
        Text(counter_row(("failed",), view.failed_total, width), style="bold" if view.failed_total else ""),
        Text(counter_row(("in flight",), view.in_flight, width)),
    ]
    steady: list[str] = []
    if view.users:
        steady = [f"▶ {plural(view.users, 'user')}", f"{view.calls_per_second:.0f} calls/s"]
    elif view.steady_rate is not None:
        steady = ["▶ steady", f"{view.steady_rate:g} calls/s"]
    if steady:
        one = ", ".join(steady)
        if len(one) <= width:
            lines.append(Text(one, style="reverse"))
        else:
            lines.append(Text(steady[0], style="reverse"))
            lines.append(Text(f"  {steady[1]}"))
    return lines


class ClientBox(Static):
    view: reactive[ClusterView | None] = reactive(None)

    def on_mount(self) -> None:
        self.border_title = "gRPC client"

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        if self.view is None:
            return text
        for i, line in enumerate(client_lines(self.view, self.content_size.width)):
            if i:
                text.append("\n")
            text.append_text(line)
        return text
