"""BACKEND PODS · N: a row of pod boxes."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal

from app.cluster.view import ClusterView
from app.widgets.pod_box import PodBox


class PodGrid(Horizontal):
    def __init__(self, pods: int, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.pods = pods

    def compose(self) -> ComposeResult:
        for i in range(1, self.pods + 1):
            yield PodBox(i, id=f"pod-{i}")

    def show(self, view: ClusterView) -> None:
        for box, pod in zip(self.query(PodBox), view.pods):
            box.show(pod)
