"""BACKEND PODS · N: the pod boxes, in rows of as many as fit; boxes come and go as the cluster scales."""

from __future__ import annotations

import math

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid
from textual.reactive import reactive
from textual.widgets import Static

from app.cluster.view import ClusterView
from app.scene.terms import term
from app.widgets.pod_box import PodBox

#: Narrowest pod box that still reads "pod #8" and "PINNED" inside its border.
MIN_BOX_WIDTH = 9


class BackendsTitle(Static):
    """``BACKEND PODS · N``, and the scene's term for what is live (CONNECTION PINNING, ...)."""

    view: reactive[ClusterView | None] = reactive(None)

    def __init__(self, pods: int, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._pods = pods

    def render(self) -> Text:
        pods = len(self.view.pods) if self.view is not None else self._pods
        live = term(self.view) if self.view is not None else None
        text = Text(justify="center", no_wrap=True, overflow="ellipsis")
        if live is None:
            return text.append(f"BACKEND PODS · {pods}", style="bold")
        head = f"BACKEND PODS · {pods} · " if len(live) + 19 <= self.content_size.width else f"{pods} pods · "
        text.append(head, style="bold")
        return text.append(f" {live} ", style="reverse bold")


class PodGrid(Grid):
    view: reactive[ClusterView | None] = reactive(None)

    def __init__(self, pods: int, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.pods = pods

    def compose(self) -> ComposeResult:
        for i in range(1, self.pods + 1):
            yield PodBox(i, id=f"pod-{i}")

    def on_mount(self) -> None:
        self._arrange()

    def on_resize(self) -> None:
        self._arrange()

    def watch_view(self, view: ClusterView | None) -> None:
        if view is not None:
            self.show(view)

    def show(self, view: ClusterView) -> None:
        boxes = list(self.query(PodBox))
        if len(boxes) != len(view.pods):
            for box in boxes[len(view.pods) :]:
                box.remove()
            new = [PodBox(p.index, id=f"pod-{p.index}") for p in view.pods[len(boxes) :]]
            if new:
                self.mount(*new)
            self.pods = len(view.pods)
            self._arrange()
            boxes = boxes[: len(view.pods)] + new
        latency = any(pod.slow_factor != 1 for pod in view.pods)
        for box, pod in zip(boxes, view.pods):
            box.show(pod, latency)

    def _arrange(self) -> None:
        """As many columns as fit (four at most on one row when they must wrap), all the same width."""
        columns, rows, width = grid_geometry(self.size.width or MIN_BOX_WIDTH * self.pods, self.pods)
        self.styles.grid_size_columns = columns
        self.styles.grid_size_rows = rows
        self.styles.grid_columns = str(width)  # one width for every column: neighbours agree
        diagram = self.screen.query_one("#diagram") if self.is_attached else None
        if diagram is not None:
            diagram.set_class(rows > 1, "-two-rows")


def grid_geometry(width: int, pods: int) -> tuple[int, int, int]:
    """``(columns, rows, column width)`` for ``pods`` boxes in ``width`` cells: as many columns as
    fit (four at most on one row when they must wrap), every column equally wide (what is left
    over stays blank on the right, so neighbouring boxes never differ by a cell)."""
    pods = max(1, pods)
    columns = max(1, min(pods, width // MIN_BOX_WIDTH))
    if columns < pods:
        columns = min(columns, math.ceil(pods / 2), 4) if pods > 4 else columns
    return columns, math.ceil(pods / columns), max(1, width // columns)
