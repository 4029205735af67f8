"""A vertical load meter: a bar of block characters, readable without colour."""

from __future__ import annotations

_EIGHTHS = " ▁▂▃▄▅▆▇█"


def meter_rows(load: float, rows: int, width: int = 4) -> list[str]:
    """Rows of the bar, top first, for ``load`` in 0..1."""
    level = max(0.0, min(1.0, load)) * rows
    lines = []
    for row in range(rows - 1, -1, -1):
        fill = max(0.0, min(1.0, level - row))
        lines.append(_EIGHTHS[round(fill * 8)] * width)
    return lines


_HORIZONTAL_EIGHTHS = " ▏▎▍▌▋▊▉█"


def meter_bar(load: float, width: int) -> str:
    """A horizontal bar ``width`` cells wide for ``load`` in 0..1 (for boxes too short for a column)."""
    if width <= 0:
        return ""
    level = max(0.0, min(1.0, load)) * width
    full = int(level)
    part = _HORIZONTAL_EIGHTHS[round((level - full) * 8)] if full < width else ""
    return ("█" * full + part).ljust(width, "▁")[:width]
