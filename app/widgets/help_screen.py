"""The help screen, generated from the live bindings so it cannot drift."""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from app.scene import TITLE


def bindings_text(bindings: Iterable[Binding]) -> Text:
    """One line per action: its keys, description, and the longer tooltip if any.

    Actions appear in the order of their first binding shown in the Footer.
    """
    groups: dict[str, list[Binding]] = {}
    position: dict[str, int] = {}
    for index, binding in enumerate(bindings):
        if binding.description:
            groups.setdefault(binding.description, []).append(binding)
            if binding.show:
                position.setdefault(binding.description, index)
    ordered = sorted(groups.values(), key=lambda group: position.get(group[0].description, len(position) + 1_000))
    text = Text()
    for group in ordered:
        main = next((b for b in group if b.show), group[0])
        shown = [b for b in group if b.show]
        keys = ", ".join(_key_label(b) for b in (shown + [b for b in group if not b.show] if len(group) < 4 else shown))
        text.append(f"{keys:>9}  ", style="bold")
        text.append(main.description)
        tooltip = next((b.tooltip for b in group if b.tooltip), "")
        if tooltip:
            text.append(f" — {tooltip}")
        text.append("\n")
    return text


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
        self._shown_bindings = bindings

    def compose(self) -> ComposeResult:
        with Vertical(id="help"):
            yield Static(TITLE, id="help-title")
            yield Static(
                "An L4 balancer sees connections, not calls: with one HTTP/2 connection every call lands on one "
                "pod. round_robin resolves every pod and picks one per call.",
                id="help-intro",
            )
            yield Static(bindings_text(self._shown_bindings), id="help-keys")
            yield Static("esc closes this screen", id="help-close")
