"""The sentence under the diagram that says what you see."""

from __future__ import annotations

from textual.widgets import Static

from app.cluster.view import ClusterView
from app.scene import caption


class Caption(Static):
    def show(self, view: ClusterView) -> None:
        self.update(caption(view))
