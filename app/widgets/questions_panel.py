"""Short answers to what a newcomer asks about this scene."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Collapsible, Static

from app.scene import QUESTIONS


class QuestionsPanel(VerticalScroll):
    def compose(self) -> ComposeResult:
        for question, answer in QUESTIONS:
            with Collapsible(title=question, collapsed=True):
                yield Static(answer)
