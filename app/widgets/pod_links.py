"""The diagram's wires from the balancer to the pods: a line along the top of the pod grid with an
arrowhead over every pod the traffic reaches, heavy where the client's one connection is pinned."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from app.cluster.view import ClusterView
from app.widgets.pod_grid import grid_geometry


def reached(view: ClusterView) -> dict[int, bool]:
    """Pod index -> whether it is reached through the VIP (pinned) rather than directly: the pods the
    client's READY connections reach, or, through the L7 proxy, the proxy's own."""
    links: dict[int, bool] = {}
    proxied = any(c.via_balancer and c.pod is None and c.state == "READY" for c in view.connections)
    conns = view.upstream if proxied and view.upstream else view.connections
    for conn in conns:
        if conn.state == "READY" and conn.pod is not None:
            links[conn.pod] = links.get(conn.pod, False) or conn.via_balancer
    return links


def links_line(view: ClusterView, width: int) -> Text:
    """One row ``width`` cells wide over the pod grid: ``━━━━━━━━━━━━━━▼`` to a pinned pod,
    ``──▼───────▼──…`` over every pod reached directly; a grid column is marked when a pod in it is."""
    columns, _, column_width = grid_geometry(width, len(view.pods))
    links = reached(view)
    marks: dict[int, bool] = {}
    for position, pod in enumerate(view.pods):
        via = links.get(pod.index)
        if via is not None:
            column = position % columns
            marks[column] = marks.get(column, False) or via
    text = Text(no_wrap=True)
    if not marks:
        return text
    end = max(marks) * column_width + column_width // 2
    heavy = any(marks.values())
    for x in range(end + 1):
        column, offset = divmod(x, column_width)
        if offset == column_width // 2 and column in marks:
            text.append("▼", style="bold")
        else:
            text.append("━" if heavy else "─", style="" if heavy else "dim")
    return text


class PodLinks(Static):
    DEFAULT_CSS = """
    PodLinks {
        height: 1;
    }
    """

    view: reactive[ClusterView | None] = reactive(None)

    def render(self) -> Text:
        if self.view is None:
            return Text()
        return links_line(self.view, self.content_size.width)
