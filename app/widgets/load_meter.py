"""A vertical load meter: a bar of block characters, readable without colour."""

from __future__ import annotations

_EIGHTHS = " ▁▂▃▄▅▆▇█"


#: What an empty meter's bottom row shows: a flat line, so a pod at 0 % is visibly a meter at rest.
TRACK = "▁"


def meter_rows(load: float, rows: int, width: int = 4) -> list[str]:
    """Rows of the bar, top first, for ``load`` in 0..1 (an empty row is blank)."""
    level = max(0.0, min(1.0, load)) * rows
    lines = []
    for row in range(rows - 1, -1, -1):
        fill = max(0.0, min(1.0, level - row))
        lines.append(_EIGHTHS[round(fill * 8)] * width)
    return lines


def meter_lines(load: float, rows: int, width: int = 4) -> list[tuple[str, str]]:
    """:func:`meter_rows` with their styles: an empty bottom row is the dim :data:`TRACK`."""
    lines = [(row, "") for row in meter_rows(load, rows, width)]
    if lines and not lines[-1][0].strip():
        lines[-1] = (TRACK * width, "dim")
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
