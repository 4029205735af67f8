"""``Static.update`` only when the content changed.

``Static.update`` always asks for a layout pass of the whole screen, in case the
new content changed the widget's size. The app samples the cluster several
times a second and most texts (the chips, the VIP's role and route) stay the
same from one sample to the next: updating them anyway made every sample a full
layout, most of the app's CPU under traffic (``python -m bench``, the app row).
"""

from __future__ import annotations

from typing import Any

from textual.widgets import Static

_SHOWN = "_rpcviz_shown"


def show(widget: Static, content: Any, *, layout: bool = True) -> None:
    """``widget.update(content)`` unless it already shows ``content``; ``layout=False`` where CSS fixes its size."""
    if getattr(widget, _SHOWN, None) == content:
        return
    setattr(widget, _SHOWN, content)
    widget.update(content, layout=layout)
