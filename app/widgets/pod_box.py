"""One backend pod: a vertical load meter, % load, calls served, p99, and its badge."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from app.cluster.view import PodView
from app.widgets.load_meter import meter_bar, meter_rows


def badge(pod: PodView) -> str | None:
    """The one word that matters most about the pod now, if any."""
    if not pod.serving:
        return "DOWN"
    if pod.draining:
        return "DRAINING"
    if pod.pinned:
        return "PINNED"
    if pod.slow_factor != 1:
        return f"SLOW×{pod.slow_factor:g}"
    if pod.resolved is False:
        return "UNSEEN"
    return None


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
        rpcs = _fit(width, f"{pod.calls} RPCs", f"{pod.calls} RPC", _short(pod.calls))
        p99 = f"p99 {pod.p99_ms:.0f}"
        tail: list[tuple[str, str]] = [(rpcs, "")]
        word = badge(pod)
        if word is not None:
            tail.append((_fit(width, f" {word} ", word), "reverse bold"))
        if pod.calls and self._latency:
            tail.append((_fit(width, p99 + "ms", p99), "dim"))
        lines: list[tuple[str, str]]
        if room >= len(tail) + 4:  # tall enough for a column meter of three rows or more
            lines = [(row, "") for row in meter_rows(pod.load, room - len(tail) - 1)]
            lines.append((_fit(width, f"{load} load", load), ""))
        else:  # short: one horizontal bar with the load beside it
            lines = [(f"{meter_bar(pod.load, width - len(load) - 1)} {load}", "")]
        lines += tail
        while len(lines) > room and lines[-1][1] == "dim":
            lines.pop()  # the p99 goes first
        for line, style in lines[:room]:
            text.append("\n")
            text.append(line, style=style)
        return text


def _fit(width: int, *candidates: str) -> str:
    """The first candidate that fits ``width`` cells (else the last)."""
    for candidate in candidates:
        if len(candidate) <= width:
            return candidate
    return candidates[-1]


def _short(n: int) -> str:
    """12 -> "12", 1234 -> "1.2k", 56789 -> "57k"."""
    if n < 1000:
        return str(n)
    if n < 10_000:
        return f"{n / 1000:.1f}k"
    return f"{n // 1000}k"
