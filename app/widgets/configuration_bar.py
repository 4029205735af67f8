"""The configuration selector: one chip per preset; the live one is marked, a click applies one."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Static

from app.cluster.configurations import CONFIGURATIONS, Configuration
from app.cluster.view import ClusterView
from app.widgets.shown import show


class ConfigurationChip(Static):
    def __init__(self, configuration: Configuration, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.configuration = configuration
        self.tooltip = f"{configuration.number} · {configuration.title}: {configuration.explanation}"

    def show(self, live: bool) -> None:
        # "▶" marks the live one without colour; the mark's column also parts a chip from the one before
        # (no trailing space: seven chips fit 80 columns).
        mark = "▶" if live else " "
        show(self, f"{mark}{self.configuration.number} {self.configuration.name}")
        self.set_class(live, "-live")

    def on_click(self) -> None:
        self.post_message(ConfigurationBar.Selected(self.configuration.number))


class ConfigurationBar(Horizontal):
    view: reactive[ClusterView | None] = reactive(None)

    class Selected(Message):
        """The user picked configuration ``number``."""

        def __init__(self, number: int) -> None:
            super().__init__()
            self.number = number

    def compose(self) -> ComposeResult:
        for configuration in CONFIGURATIONS:
            yield ConfigurationChip(configuration, id=f"configuration-{configuration.number}")

    def on_mount(self) -> None:
        self.show(None)

    def watch_view(self, view: ClusterView | None) -> None:
        if view is not None:
            self.show(view.configuration)

    def show(self, live: int | None) -> None:
        for chip in self.query(ConfigurationChip):
            chip.show(chip.configuration.number == live)
