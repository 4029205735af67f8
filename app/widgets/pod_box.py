"""One backend pod: a vertical load meter, % load, calls served, p99, and its badge."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from app.cluster.view import PodView
from app.widgets.client_box import plural, short
from app.widgets.load_meter import meter_bar, meter_lines

#: What the figure under the meter measures (``PodView.load_source``).
LOAD_WORDS = {"model": "load", "orca": "reported", "client": "of calls"}


def badges(pod: PodView) -> list[str]:
    """Every word that is true of the pod now, the most important first (a drained pinned pod
    is both PINNED and DRAINING)."""
    if not pod.serving:
        return ["DOWN"]
    words = []
    if pod.pinned:
        words.append("PINNED")
    if pod.draining:
        words.append("DRAINING")
    if pod.slow_factor != 1:
        words.append(f"SLOW×{pod.slow_factor:g}")
    if pod.resolved is False:
        words.append("UNSEEN")
    return words


class PodBox(Static):
    def __init__(self, index: int, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.index = index
        self._pod: PodView | None = None
        self._latency = False

    def show(self, pod: PodView, latency: bool = False) -> None:
        """``latency``: add the pod's p99 (when a pod is slow, latency is what differs)."""
        if pod != self._pod or latency != self._latency:
            self._pod = pod
            self._latency = latency
            self.set_class(pod.pinned, "-pinned")
            self.set_class(not pod.serving, "-down")
            self.set_class(pod.draining, "-draining")
            self.set_class(pod.load >= 0.8, "-hot")
            self.set_class(pod.slow_factor != 1, "-slow")
            self.set_class(pod.resolved is False, "-unseen")
            self.refresh()

    def render(self) -> Text:
        pod = self._pod
        text = Text(justify="center", no_wrap=True, overflow="ellipsis")
        text.append(f"pod #{self.index}", style="bold")
        if pod is None:
            return text
        width = self.content_size.width
        room = max(0, self.content_size.height - 1)
        load = f"{100 * pod.load:.0f}%"
        calls = plural(pod.calls, "RPC")
        rpcs = _fit(width, calls, f"{short(pod.calls)} RPC{'' if pod.calls == 1 else 's'}", short(pod.calls))
        p99 = f"p99 {pod.p99_ms:.0f}"
        # badges under the name; the meter, load and calls at the bottom, level with the neighbours'
        head = [(_fit(width, f" {word} ", word), "reverse bold") for word in badges(pod)]
        tail: list[tuple[str, str]] = [(rpcs, "")]
        if pod.calls and self._latency and pod.p99_ms > 0:  # 0: no call measured (yet)
            tail.append((_fit(width, p99 + "ms", p99), "dim"))
        meter: list[tuple[str, str]]
        if room >= len(head) + len(tail) + 4:  # tall enough for a column meter of three rows or more
            meter = meter_lines(pod.load, room - len(head) - len(tail) - 1)
            meter.append((_fit(width, f"{load} {LOAD_WORDS.get(pod.load_source, 'load')}", load), ""))
        else:  # short: one horizontal bar with the load beside it
            meter = [(f"{meter_bar(pod.load, width - len(load) - 1)} {load}", "")]
        while len(head) + len(meter) + len(tail) > room and tail[-1][1] == "dim":
            tail.pop()  # the p99 goes first
        gap = [("", "")] * max(0, room - len(head) - len(meter) - len(tail))
        for line, style in [*head, *gap, *meter, *tail][:room]:
            text.append("\n")
            text.append(line, style=style)
        return text


def _fit(width: int, *candidates: str) -> str:
    """The first candidate that fits ``width`` cells (else the last)."""
    for candidate in candidates:
        if len(candidate) <= width:
            return candidate
    return candidates[-1]
