"""Change over time: per pod calls/s over the last 60 s on ONE shared scale, and the balance.

Textual's Sparkline scales each series to its own min and max, so a pod serving 10 calls/s and one
serving 150 draw equally tall: four of them cannot be compared. Here every pod's row uses the same
scale (printed in the header), drawn in the load meters' block eighths, newest second on the right;
a second without calls draws a dim dotted track, so an idle pod reads as a visible flat line.
Each row ends with the pod's calls/s in the last second and its p50/p99 over the window. The last
row is the busiest pod's share of each second's calls on 0-100 %: the moment pick_first gives way
to round_robin is a step from 100 % down to 25 %.

Readable without colour: bars are characters, figures are numbers, the track is ``·``.
"""

from __future__ import annotations

import math

from rich.style import Style
from rich.text import Text
from textual.geometry import Size
from textual.reactive import reactive
from textual.widget import Widget

from app.cluster.history import HistoryView, PodHistory
from app.cluster.view import ClusterView

_EIGHTHS = " ▁▂▃▄▅▆▇█"
#: What a second without calls draws on a row's bottom line.
TRACK = "·"
#: Scale tops are the smallest of these times a power of ten at or above the peak.
_NICE = (1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0)
#: Below this many seconds of chart, the rows drop p50/p99 to keep the seconds.
_MIN_SECONDS_WITH_LATENCY = 20


def nice_top(peak: float) -> int:
    """The scale's top: the peak rounded up to 1, 1.5, 2, 3, 5 or 7.5 times a power of ten (>= 1)."""
    if peak <= 1:
        return 1
    magnitude = 10.0 ** math.floor(math.log10(peak))
    for step in _NICE:
        if step * magnitude >= peak:
            return math.ceil(step * magnitude)
    return math.ceil(10 * magnitude)  # pragma: no cover - 10 × magnitude is always >= peak


def column(fraction: float | None, rows: int) -> list[str]:
    """One second's column, ``rows`` cells, top first: ``fraction`` of the scale in eighths (any
    non-zero value shows at least one eighth); 0 or None draws the track on the bottom cell."""
    if not fraction or fraction <= 0:
        return [" "] * (rows - 1) + [TRACK]
    eighths = max(1, round(min(1.0, fraction) * rows * 8))
    return [_EIGHTHS[max(0, min(8, eighths - 8 * row))] for row in range(rows - 1, -1, -1)]


def format_ms(ms: float | None) -> str:
    """``4.2ms``, ``38ms``, ``1.2s``; ``–`` without calls in the window."""
    if ms is None:
        return "–"
    if ms < 10:
        return f"{ms:.1f}ms"
    if ms < 1000:
        return f"{ms:.0f}ms"
    return f"{ms / 1000:.1f}s"


class HistoryChart(Widget):
    """Set :attr:`history` (or call :meth:`show`) with ``ClusterView.history``; it renders that, for any number of pods."""

    DEFAULT_CSS = """
    HistoryChart {
        height: auto;
    }
    HistoryChart > .history-chart--header {
        text-style: bold;
    }
    HistoryChart > .history-chart--track {
        color: $text-muted;
    }
    HistoryChart > .history-chart--figures {
        color: $text-muted;
    }
    """
    COMPONENT_CLASSES = {"history-chart--header", "history-chart--track", "history-chart--figures"}

    history: reactive[HistoryView] = reactive(HistoryView, layout=True)
    #: The screen's sampled view (data-bound); its history is what this draws.
    view: reactive[ClusterView | None] = reactive(None)

    def watch_view(self, view: ClusterView | None) -> None:
        if view is not None:
            self.history = view.history

    def show(self, history: HistoryView) -> None:
        """Take the sampled history (a view equal to the last one changes nothing)."""
        self.history = history

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        """With ``height: auto``: the header, one row per pod and the balance row."""
        return 2 + len(self.history.pods)

    def render(self) -> Text:
        history = self.history
        width = self.content_size.width
        pods = history.pods
        spare = max(0, self.content_size.height - 2)
        rows = max(1, spare // len(pods)) if pods else 1
        labels = [f"pod #{p.index}" for p in pods] + ["share"]
        label_width = max(len(label) for label in labels) + 1
        full = [_pod_figures(p, latency=True) for p in pods] + [_share_figures(history, long=True)]
        tail_width = max(len(t) for t in full)
        seconds = min(history.seconds, max(0, width - label_width - tail_width))
        if seconds < _MIN_SECONDS_WITH_LATENCY and seconds < history.seconds:
            full = [_pod_figures(p, latency=False) for p in pods] + [_share_figures(history, long=False)]
            tail_width = max(len(t) for t in full)
            seconds = min(history.seconds, max(0, width - label_width - tail_width))
        top = nice_top(max((max(p.calls[-seconds:], default=0) for p in pods), default=0) if seconds else 0)

        track = self.get_component_rich_style("history-chart--track", partial=True)
        figures = self.get_component_rich_style("history-chart--figures", partial=True)
        header = self.get_component_rich_style("history-chart--header", partial=True)
        latency = bool(pods) and len(full[0]) > len(_pod_figures(pods[0], latency=False))
        heading = f"{'now':>7}" + (f"{'p50':>7}{'p99':>7}" if latency else "")
        title = _title(
            seconds, top if history.peak else None, history.seconds if latency else None, width - len(heading)
        )
        first = Text(title, style=header)
        first.append(heading.rjust(label_width + seconds + tail_width - len(title)), style=figures)
        lines = [first]
        for pod, tail in zip(pods, full):
            cells = [column(n / top, rows) for n in pod.calls[-seconds:]] if seconds else []
            for row in range(rows):
                line = Text((f"pod #{pod.index}" if row == rows - 1 else "").ljust(label_width))
                _append_cells(line, [c[row] for c in cells], track)
                if row == rows - 1:
                    line.append(tail.rjust(tail_width), style=figures)
                lines.append(line)
        balance = Text("share".ljust(label_width))
        shares = history.busiest_share[-seconds:] if seconds else ()
        _append_cells(balance, [column(share, 1)[0] for share in shares], track)
        balance.append(full[-1].rjust(tail_width), style=figures)
        lines.append(balance)
        for line in lines:  # narrow: crop, never wrap (a wrapped row would read as another pod)
            line.truncate(width, overflow="crop")
        return Text("\n", no_wrap=True, overflow="crop", end="").join(lines)


def _title(seconds: int, top: int | None, window: int | None, room: int) -> str:
    """The longest header that fits ``room`` cells; every one names the shared scale."""
    scale = "no calls" if top is None else f"one scale 0–{top} calls/s"
    candidates = [
        f"calls/s per pod, last {seconds} s, {scale}",
        f"calls/s, last {seconds} s, {scale}",
        "no calls" if top is None else f"scale 0–{top} calls/s",
    ]
    if window is not None:
        candidates.insert(0, f"{candidates[0]} · latency over {window} s")
    return next((c for c in candidates if len(c) <= room), candidates[-1])


def _append_cells(text: Text, cells: list[str], track: Style) -> None:
    for cell in cells:
        text.append(cell, style=track if cell == TRACK else "")


def _pod_figures(pod: PodHistory, *, latency: bool) -> str:
    now = f" {pod.now:>4}/s"
    if not latency:
        return now
    return f"{now} {format_ms(pod.p50_ms):>6} {format_ms(pod.p99_ms):>6}"


def _share_figures(history: HistoryView, *, long: bool) -> str:
    share = history.busiest_share[-1] if history.busiest_share else None
    figure = "  –" if share is None else f"{100 * share:3.0f} %"
    return f" busiest pod's share {figure}" if long else f" {figure}"
