"""One backend pod: a vertical load meter, % load, calls served, the PINNED badge."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from app.cluster.view import PodView
from app.widgets.load_meter import meter_rows

#: Lines besides the meter: name, load, RPCs, badge.
_TEXT_LINES = 4


class PodBox(Static):
    def __init__(self, index: int, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.index = index
        self._pod: PodView | None = None

    def show(self, pod: PodView) -> None:
        if pod != self._pod:
            self._pod = pod
            self.set_class(pod.pinned, "-pinned")
            self.set_class(not pod.serving, "-down")
            self.set_class(pod.draining, "-draining")
            self.set_class(pod.load >= 0.8, "-hot")
            self.refresh()

    def render(self) -> Text:
        pod = self._pod
        text = Text(justify="center", no_wrap=True, overflow="ellipsis")
        text.append(f"pod #{self.index}\n", style="bold")
        if pod is None:
            return text
        rows = max(1, self.content_size.height - _TEXT_LINES)
        for line in meter_rows(pod.load, rows):
            text.append(line + "\n")
        load = f"{100 * pod.load:.0f}%"
        wide = self.content_size.width >= len(load) + 5
        text.append(f"{load} load\n" if wide else f"{load}\n")
        text.append(f"{pod.calls} RPCs\n")
        if not pod.serving:
            text.append(" DOWN ", style="reverse bold")
        elif pod.draining:
            text.append(" DRAINING ", style="reverse")
        elif pod.pinned:
            text.append(" PINNED ", style="reverse bold")
        return text
