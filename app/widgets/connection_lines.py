"""Which of the client's connections runs to which pod."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from app.cluster.view import ClusterView, ConnectionView


def describe(number: int, conn: ConnectionView) -> Text:
    line = Text(f"conn {number} ")
    if conn.state == "READY" and conn.pod is not None:
        line.append("━━▶ " if conn.via_balancer else "──▶ ")
        line.append(f"pod #{conn.pod}", style="bold")
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


class ConnectionLines(Static):
    def show(self, view: ClusterView) -> None:
        text = Text()
        for i, conn in enumerate(view.connections, 1):
            if i > 1:
                text.append("\n")
            text.append_text(describe(i, conn))
        self.update(text)
