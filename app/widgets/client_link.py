"""The diagram's wire from the client to the balancer, labelled with what runs on it: "1 HTTP/2 conn",
"one connection" (heavy: through the VIP), or "4 HTTP/2 conns", "one per pod" (thin: direct)."""

from __future__ import annotations

import textwrap

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from app.cluster.view import ClusterView


def link_labels(view: ClusterView) -> tuple[str, str]:
    """What the wire carries (``1 HTTP/2 conn``) and what that means (``one connection``)."""
    ready = [c for c in view.connections if c.state == "READY"]
    n = len(ready)
    count = f"{n} HTTP/2 conn{'' if n == 1 else 's'}"
    if n == 0:
        return count, "connecting…" if view.connections else ""
    if n == 1:
        return count, "one connection"
    pods = {c.pod for c in ready if c.pod is not None}
    if not any(c.via_balancer for c in ready) and len(pods) == n:
        return count, "one per pod"
    return count, f"{n} connections"


def link_lines(view: ClusterView, width: int, rows: int) -> list[Text]:
    """Three rows, ``width`` cells wide: the label (when it fits on one line; the client box beside
    it says the same), an arrow ``━━━━▶`` (heavy through the VIP, ``──▶`` direct), and the meaning
    below it, wrapped, when its words fit."""
    if width < 2 or rows < 2:
        return []
    count, meaning = link_labels(view)
    below = textwrap.wrap(meaning, width, break_long_words=False) if meaning else []
    if any(len(line) > width for line in below):
        below = []
    ready = [c for c in view.connections if c.state == "READY"]
    heavy = any(c.via_balancer for c in ready)
    shaft = "━" if heavy else ("─" if ready else "╌")
    lines = [
        Text(count.center(width).rstrip() if len(count) <= width else ""),
        Text(shaft * (width - 1) + "▶", style="bold" if heavy else ""),
    ]
    lines += [Text(line.center(width).rstrip(), style="dim") for line in below]
    return lines[:rows]


class ClientLink(Static):
    view: reactive[ClusterView | None] = reactive(None)

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="crop")
        if self.view is None:
            return text
        size = self.content_size
        for i, line in enumerate(link_lines(self.view, size.width, size.height)):
            if i:
                text.append("\n")
            text.append_text(line)
        return text
