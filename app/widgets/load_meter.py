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
