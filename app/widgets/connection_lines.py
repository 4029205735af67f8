"""Which of the client's connections runs to which pod (and, through the L7 proxy, the proxy's own).

Every line fits the box: a connection whose description is too wide takes two or three lines
(``TRANSIENT_FAILURE`` spelled out, never "TF"), and when they do not all fit in the rows there
are, the READY ones are summed on one line, and what still does not fit is counted ("+2 more").
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from app.cluster.view import ClusterView, ConnectionView

#: A connection's continuation lines are indented under its number.
INDENT = " "


def describe_forms(number: int, conn: ConnectionView, age: float | None = None, l7: bool = False) -> list[list[Text]]:
    """Ways to show one connection, from one wide line to several narrow ones: ``conn 1 ━━▶ pod #3``
    (through the VIP), ``──▶`` (direct), its age when given; a failing one says why."""
    head = f"conn {number} "
    if conn.state == "READY" and (conn.pod is not None or l7):
        arrow = "━━▶ " if conn.via_balancer else "──▶ "
        where = "proxy" if l7 else f"pod #{conn.pod}"
        line = Text(head + arrow)
        line.append(where, style="bold")
        compact = Text(head + arrow)
        compact.append("proxy" if l7 else f"#{conn.pod}", style="bold")
        if age is None:
            return [[line], [compact]]
        seconds = f"{age:.0f}s"
        return [
            [line + Text(f" {seconds}", style="dim")],
            [line, Text(f"{INDENT}age {seconds}", style="dim")],
            [compact + Text(f" {seconds}", style="dim")],
        ]
    if conn.state == "TRANSIENT_FAILURE":
        alone = Text(head)
        alone.append("✕", style="bold")
        failing = alone + " "
        if conn.retry_in is not None:
            retry = f"retry in {conn.retry_in:.1f} s"
            return [
                [failing + Text(f"TRANSIENT_FAILURE, {retry}")],
                [failing + Text("TRANSIENT_FAILURE"), Text(INDENT + retry)],
                [alone.copy(), Text(INDENT + "TRANSIENT_FAILURE"), Text(INDENT + retry)],
            ]
        if conn.health is not None:
            return [
                [failing + Text(f"{conn.pod_label} {conn.health}")],
                [failing + Text(conn.pod_label), Text(INDENT + conn.health)],
            ]
        return [[failing + Text("TRANSIENT_FAILURE")], [alone.copy(), Text(INDENT + "TRANSIENT_FAILURE")]]
    return [[Text(f"{head}… {conn.state}")], [Text(f"{head}…"), Text(INDENT + conn.state)]]


def fitted(forms: list[list[Text]], width: int, short: bool = False) -> list[Text]:
    """The first form whose every line fits ``width`` cells (``short``: of those, the one with the
    fewest lines); when none fits, the narrowest."""
    fits = [form for form in forms if all(line.cell_len <= width for line in form)]
    if not fits:
        return min(forms, key=lambda form: max(line.cell_len for line in form))
    return min(fits, key=len) if short else fits[0]


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
    """``[1, 2, 3, 4, 6, 7]`` -> ``#1-#4 #6 #7`` (a range from three pods on)."""
    runs: list[list[int]] = []
    for pod in sorted(pods):
        if runs and runs[-1][-1] == pod - 1:
            runs[-1].append(pod)
        else:
            runs.append([pod])
    parts = [f"#{run[0]}-#{run[-1]}" if len(run) >= 3 else " ".join(f"#{p}" for p in run) for run in runs]
    return " ".join(parts)


def summary_forms(ready: list[ConnectionView]) -> list[list[Text]]:
    """The READY connections on one line: ``3 conns ──▶ #1 #2 #4`` (or narrower)."""
    n = len(ready)
    conns = f"{n} conn{'s' if n != 1 else ''}"
    pods = pod_ranges([c.pod for c in ready if c.pod is not None])
    forms = []
    for arrow in (" ──▶ ", " → "):
        line = Text(conns + arrow)
        line.append(pods, style="bold")
        forms.append([line])
    forms.append([Text(conns + " ──▶"), Text(INDENT + pods, style="bold")])
    return forms


def _rows(blocks: list[list[Text]]) -> int:
    return sum(len(block) for block in blocks)


def connection_blocks(view: ClusterView, now: float, rows: int, width: int) -> list[list[Text]]:
    """Each connection's lines (one block per connection), fitted to ``width``; when they do not fit
    in ``rows``, the READY ones summed in one block, the others listed, then "+N more"."""
    l7 = view.through_l7
    ages = view.max_connection_age is not None

    def age(conn: ConnectionView) -> float | None:
        return max(0.0, now - conn.connected_at) if ages and conn.connected_at is not None else None

    conns = list(enumerate(view.connections, 1))
    forms = [describe_forms(i, conn, age(conn), l7) for i, conn in conns]
    blocks = [fitted(f, width) for f in forms]
    extra = [[line] for line in upstream_lines(view.upstream)] if l7 else []
    if _rows(blocks) + _rows(extra) > rows:  # fewer lines each, before summing them up
        blocks = [fitted(f, width, short=True) for f in forms]
    if _rows(blocks) + _rows(extra) > rows and not l7:
        ready = [c for _, c in conns if c.state == "READY" and c.pod is not None]
        others = [fitted(describe_forms(i, c), width, short=True) for i, c in conns if c not in ready]
        blocks = ([fitted(summary_forms(ready), width, short=True)] if ready else []) + others
    blocks += extra
    if _rows(blocks) <= rows:
        return blocks
    shown: list[list[Text]] = []
    for n, block in enumerate(blocks):
        left = len(blocks) - n - 1
        if _rows(shown) + len(block) + (1 if left else 0) > rows:
            break
        shown.append(block)
    hidden = len(blocks) - len(shown)
    return [*shown, [Text(f"+{hidden} more", style="dim")]] if hidden else shown


def connection_lines(view: ClusterView, now: float, rows: int, width: int = 1_000) -> Text:
    """The blocks of :func:`connection_blocks` as one text, a line per row, none wider than ``width``."""
    text = Text(no_wrap=True, overflow="ellipsis")
    lines = [line for block in connection_blocks(view, now, max(1, rows), width) for line in block]
    for i, line in enumerate(lines[: max(1, rows)]):
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
        size = self.content_size
        return connection_lines(self._view, self._now, size.height, size.width)
