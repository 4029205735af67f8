"""Which of the client's connections runs to which pod (and, through the L7 proxy, the proxy's own)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from app.cluster.view import ClusterView, ConnectionView


def describe(number: int, conn: ConnectionView, age: float | None = None, l7: bool = False) -> Text:
    """One connection: ``conn 1 ━━▶ pod #3`` (through the VIP), ``──▶`` (direct), its age when given."""
    line = Text(f"conn {number} ")
    if conn.state == "READY" and (conn.pod is not None or l7):
        line.append("━━▶ " if conn.via_balancer else "──▶ ")
        line.append("proxy" if l7 else f"pod #{conn.pod}", style="bold")
        if age is not None:
            line.append(f" {age:.0f}s", style="dim")
        return line
    if conn.state == "TRANSIENT_FAILURE":
        line.append("✕ ", style="bold")
        if conn.retry_in is not None:
            line.append(f"TF retry {conn.retry_in:.1f}s")
        elif conn.health is not None:
            line.append(f"{conn.pod_label} {conn.health}")
        else:
            line.append("TRANSIENT_FAILURE")
        return line
    return line.append(f"… {conn.state}")


def upstream_lines(upstream: tuple[ConnectionView, ...]) -> list[Text]:
    """The L7 proxy's own connections to the pods: ``L7 ──▶ #1 #2 #3 #4``, four pods to a line
    (a pod it is not connected to is struck through)."""
    lines = []
    for start in range(0, len(upstream), 4):
        line = Text("L7 ──▶" if start == 0 else "      ")
        for conn in upstream[start : start + 4]:
            label = f"#{conn.pod}" if conn.pod is not None else "?"
            line.append(" ")
            line.append(label, style="bold" if conn.state == "READY" else "strike")
        lines.append(line)
    return lines


def pod_ranges(pods: list[int]) -> str:
    """``[1, 2, 3, 4, 6]`` -> ``#1-#4 #6``."""
    parts: list[str] = []
    for pod in sorted(pods):
        if parts and parts[-1].endswith(f"#{pod - 1}"):
            head = parts[-1].split("-")[0]
            parts[-1] = f"{head}-#{pod}"
        else:
            parts.append(f"#{pod}")
    return " ".join(parts)


def connection_lines(view: ClusterView, now: float, rows: int) -> Text:
    """Every connection on its own line, or, when they do not fit in ``rows``, READY ones
    summed on one line and the others listed."""
    l7 = view.policy == "pick_first" and view.balancer == "l7"
    ages = view.max_connection_age is not None

    def age(conn: ConnectionView) -> float | None:
        return max(0.0, now - conn.connected_at) if ages and conn.connected_at is not None else None

    lines = [describe(i, conn, age(conn), l7) for i, conn in enumerate(view.connections, 1)]
    extra = upstream_lines(view.upstream) if l7 else []
    if len(lines) + len(extra) > rows and not l7:
        ready = [c for c in view.connections if c.state == "READY" and c.pod is not None]
        summary = Text(f"{len(ready)} conn{'s' if len(ready) != 1 else ''} ──▶ ")
        summary.append(pod_ranges([c.pod for c in ready if c.pod is not None]), style="bold")
        others = [describe(i, c) for i, c in enumerate(view.connections, 1) if c not in ready]
        lines = [summary, *others]
    text = Text(no_wrap=True, overflow="ellipsis")
    for i, line in enumerate([*lines, *extra][: max(1, rows)]):
        if i:
            text.append("\n")
        text.append_text(line)
    return text


class ConnectionLines(Static):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._view: ClusterView | None = None
        self._now = 0.0

    def show(self, view: ClusterView, now: float) -> None:
        self._view = view
        self._now = now
        self.refresh()

    def render(self) -> Text:
        if self._view is None:
            return Text()
        return connection_lines(self._view, self._now, self.content_size.height)
