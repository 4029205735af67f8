"""The staff engineer's chat: question chips on the left, the chat log on the right.

Asking (Enter or a click on a chip) appends two messages to the log, the question and
the answer, computed from the latest view the screen handed over with :meth:`ChatPanel.show`,
so its figures are the ones on screen at that moment. An answer that a configuration
demonstrates ends with a "show me" chip; it (or the panel's ``w`` key while that answer
is the latest) posts :class:`ChatPanel.ShowMe` for the screen to apply.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Static

from app.cluster.view import ClusterView
from app.scene.chat import PROMPT, QUESTIONS, Answer, Question, ask, show_me_label

#: Messages the log keeps (the oldest go first): a hundred questions and their answers.
KEEP_MESSAGES = 200

#: What the log says when asked before the first view arrived.
NOT_STARTED = "The cluster is still starting — ask me again in a moment."


class QuestionChip(Static, can_focus=True):
    """One question: Enter or a click asks it; up/down move to the neighbouring chip."""

    BINDINGS = [
        Binding("enter", "ask", "Ask", tooltip="ask the staff engineer this question"),
        Binding("up", "neighbour(-1)", "Previous question", show=False),
        Binding("down", "neighbour(1)", "Next question", show=False),
    ]

    class Pressed(Message):
        def __init__(self, question: Question) -> None:
            super().__init__()
            self.question = question

    def __init__(self, question: Question, **kwargs: object) -> None:
        super().__init__(f"▸ {question.text}", **kwargs)  # type: ignore[arg-type]
        self.question = question

    def action_ask(self) -> None:
        self.post_message(self.Pressed(self.question))

    def on_click(self) -> None:
        self.action_ask()

    def action_neighbour(self, step: int) -> None:
        chips = list(self.parent.query_children(QuestionChip)) if self.parent is not None else [self]
        index = chips.index(self) + step
        if 0 <= index < len(chips):
            chips[index].focus()


class ShowMeChip(Static, can_focus=True):
    """``▶ show me: configuration 4 (L7 proxy)`` after an answer: Enter or a click switches to it."""

    BINDINGS = [Binding("enter", "show_me", "Show me", tooltip="switch the cluster to this configuration")]

    def __init__(self, configuration: int, **kwargs: object) -> None:
        super().__init__(show_me_label(configuration), **kwargs)  # type: ignore[arg-type]
        self.configuration = configuration

    def action_show_me(self) -> None:
        self.post_message(ChatPanel.ShowMe(self.configuration))

    def on_click(self) -> None:
        self.action_show_me()


class ChatMessage(Static):
    """One message of the log: ``You: …`` or ``Staff engineer: …``."""

    def __init__(self, speaker: str, text: str, **kwargs: object) -> None:
        line = Text()
        line.append(f"{speaker}: ", style="bold")
        line.append(text)
        super().__init__(line, **kwargs)  # type: ignore[arg-type]
        self.speaker = speaker
        self.text = text


class ChatPanel(Vertical):
    """The scene's prompt, the question chips, and the chat log."""

    DEFAULT_CSS = """
    ChatPanel {
        height: 1fr;
    }
    ChatPanel > #chat-prompt {
        padding: 0 1;
        text-style: italic;
    }
    ChatPanel > #chat-body {
        height: 1fr;
    }
    ChatPanel #chat-questions {
        width: 42%;
        min-width: 30;
        max-width: 50;
        height: 1fr;
        scrollbar-size-vertical: 1;
    }
    ChatPanel #chat-log {
        width: 1fr;
        height: 1fr;
        padding: 0 1;
        border-left: vkey $panel-lighten-2;
        scrollbar-size-vertical: 1;
    }
    QuestionChip {
        padding: 0 1;
    }
    QuestionChip:hover {
        text-style: underline;
    }
    QuestionChip:focus {
        text-style: reverse bold;
    }
    ChatMessage.-staff {
        margin-bottom: 1;
    }
    ChatMessage.-staff.-show-me {
        margin-bottom: 0;
    }
    ShowMeChip {
        width: auto;
        margin-bottom: 1;
        text-style: bold;
    }
    ShowMeChip:hover {
        text-style: bold underline;
    }
    ShowMeChip:focus {
        text-style: reverse bold;
    }
    """

    BINDINGS = [Binding("w", "show_me", "Show me", tooltip="switch to the configuration the latest answer names")]
    #: The screen's sampled view (data-bound): answers use the figures of the moment they are asked.
    view: reactive[ClusterView | None] = reactive(None)

    class ShowMe(Message):
        """Switch the cluster to configuration ``configuration`` (the screen applies it)."""

        def __init__(self, configuration: int) -> None:
            super().__init__()
            self.configuration = configuration

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._view: ClusterView | None = None
        #: The latest answer's "show me", while it is the latest.
        self._show_me: int | None = None

    def compose(self) -> ComposeResult:
        yield Static(PROMPT, id="chat-prompt")
        with Horizontal(id="chat-body"):
            with VerticalScroll(id="chat-questions", can_focus=False):
                for question in QUESTIONS:
                    yield QuestionChip(question, id=f"question-{question.key}")
            yield VerticalScroll(id="chat-log", can_focus=False)

    # --- what the screen calls ------------------------------------------------------------

    def watch_view(self, view: ClusterView | None) -> None:
        if view is not None:
            self.show(view)

    def show(self, view: ClusterView) -> None:
        """The latest sampled view: the next answer's figures come from it."""
        self._view = view

    def focus_questions(self) -> None:
        """Focus the first question chip (the app's ``c``)."""
        self.query(QuestionChip).first().focus()

    # --- asking ---------------------------------------------------------------------------

    @property
    def messages(self) -> list[ChatMessage]:
        """The log's messages, oldest first."""
        return list(self.query_one("#chat-log", VerticalScroll).query_children(ChatMessage))

    async def ask(self, question: Question) -> Answer | None:
        """Append ``question`` and the staff engineer's answer to the log (None before the first view)."""
        answer = ask(question, self._view) if self._view is not None else None
        log = self.query_one("#chat-log", VerticalScroll)
        for old in log.query_children(ShowMeChip):
            old.can_focus = False  # only the latest answer's is on the keyboard path; a click still works
        asked = ChatMessage("You", question.text, classes="-you")
        show_me = answer.show_me if answer is not None else None
        staff = "-staff" if show_me is None else "-staff -show-me"
        widgets: list[Static] = [
            asked,
            ChatMessage("Staff engineer", answer.text if answer else NOT_STARTED, classes=staff),
        ]
        if show_me is not None:
            widgets.append(ShowMeChip(show_me))
        self._show_me = show_me
        self.refresh_bindings()
        await log.mount_all(widgets)
        await self._trim(log)
        # the new exchange from its question (an answer taller than the log reads from its start)
        self.call_after_refresh(log.scroll_to_widget, asked, top=True, animate=False)
        return answer

    async def _trim(self, log: VerticalScroll) -> None:
        """Keep the newest :data:`KEEP_MESSAGES` messages (with the show-me chips after them)."""
        children = list(log.children)
        excess = sum(1 for child in children if isinstance(child, ChatMessage)) - KEEP_MESSAGES
        if excess <= 0:
            return
        doomed = []
        for child in children:
            if isinstance(child, ChatMessage):
                if excess == 0:
                    break
                excess -= 1
            doomed.append(child)
        await log.remove_children(doomed)

    async def on_question_chip_pressed(self, message: QuestionChip.Pressed) -> None:
        message.stop()
        await self.ask(message.question)

    def on_chat_panel_show_me(self, message: ChatPanel.ShowMe) -> None:
        # the chip's message bubbles on to the screen; the latest answer's "show me" has been taken
        if message.configuration == self._show_me:
            self._show_me = None
            self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "show_me":
            return True if self._show_me is not None else None  # greyed out in the footer while none
        return True

    def action_show_me(self) -> None:
        if self._show_me is not None:
            self.post_message(self.ShowMe(self._show_me))
