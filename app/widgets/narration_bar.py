"""The replay's narration: "step k of n", the step's title and what it says, from live state."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from app.replay import Narration
from app.widgets.shown import show

_PHASE = {"driving": "switching…", "waiting": "watching…", "reached": "", "stuck": "still waiting"}


def render_narration(narration: Narration) -> Text:
    text = Text()
    text.append(f" step {narration.number} of {narration.steps} ", style="reverse bold")
    text.append(f" {narration.title}", style="bold")
    phase = _PHASE[narration.phase]
    if phase:
        text.append(f"  {phase}", style="italic dim")
    text.append("\n")
    text.append(narration.text)
    text.append("\n")
    text.append("space next · ← back · esc leave the replay", style="dim")
    return text


class NarrationBar(Static):
    narration: reactive[Narration | None] = reactive(None)

    def watch_narration(self, narration: Narration | None) -> None:
        show(self, render_narration(narration) if narration is not None else "", layout=False)  # fixed height
