"""The help screen, generated from the live bindings so it cannot drift."""

from __future__ import annotations

from collections.abc import Iterable

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from app.scene import TITLE


def bindings_table(bindings: Iterable[Binding]) -> Table:
    table = Table(box=None, show_header=True, pad_edge=False)
    table.add_column("key", style="bold")
    table.add_column("does")
    seen: set[str] = set()
    for binding in bindings:
        if binding.description and binding.action not in seen:
            seen.add(binding.action)
            table.add_row(_key_label(binding), binding.description)
    return table


def _key_label(binding: Binding) -> str:
    if binding.key_display:
        return binding.key_display
    return {"question_mark": "?", "ctrl+q": "ctrl+q"}.get(binding.key, binding.key)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "dismiss", "Close"),
        Binding("question_mark", "dismiss", "Close", show=False),
        Binding("q", "dismiss", "Close", show=False),
    ]

    def __init__(self, bindings: list[Binding]) -> None:
        super().__init__()
        self._bindings = bindings

    def compose(self) -> ComposeResult:
        with Vertical(id="help"):
            yield Static(TITLE, id="help-title")
            yield Static(
                "An L4 balancer sees connections, not calls: with one HTTP/2 connection every call lands on one "
                "pod. round_robin resolves every pod and picks one per call.",
                id="help-intro",
            )
            yield Static(bindings_table(self._bindings), id="help-keys")
            yield Static("esc closes this screen", id="help-close")
