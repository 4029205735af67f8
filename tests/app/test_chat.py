"""The staff engineer's chat: every question asked through the panel, answered with the live cluster's figures.

A small harness App hosts the ChatPanel over a real in-process Cluster (pods, proxies, sockets on
127.0.0.1) and hands it ``cluster.view()`` as the screen does; a "show me" is applied to the cluster.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace

from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets import Footer

from app.cluster import Cluster, ClusterConfig, configuration
from app.scene.chat import PROMPT, QUESTIONS, question
from app.widgets.chat_panel import KEEP_MESSAGES, NOT_STARTED, ChatPanel, QuestionChip, ShowMeChip
from tests.helpers import FAST_BACKOFF, wait_until

#: Seeded, no service time, fast reconnects: the same pods and counts on every run.
CONFIG = ClusterConfig(seed=3, service_time=0.0, load_window=0.05, backoff=FAST_BACKOFF)


class ChatHarness(App[None]):
    """The chat panel over a real cluster, wired as the screen wires it: ``show(view)``, ShowMe -> apply."""

    CSS = "ChatPanel { height: 1fr; }"

    def __init__(self, config: ClusterConfig = CONFIG) -> None:
        super().__init__()
        self.cluster = Cluster(config)
        #: The configurations "show me" asked for, in order.
        self.shown: list[int] = []

    def compose(self) -> ComposeResult:
        yield ChatPanel(id="chat")
        yield Footer()

    async def on_mount(self) -> None:
        await self.cluster.start("pick_first")
        await self.cluster.wait_ready()
        self.feed()

    async def on_unmount(self) -> None:
        await self.cluster.stop()

    def feed(self) -> None:
        """What the screen's sampler does each tick."""
        self.query_one(ChatPanel).show(self.cluster.view())

    async def on_chat_panel_show_me(self, message: ChatPanel.ShowMe) -> None:
        self.shown.append(message.configuration)
        await self.cluster.apply(configuration(message.configuration))
        self.feed()


def panel(app: ChatHarness) -> ChatPanel:
    return app.query_one(ChatPanel)


def log(app: ChatHarness) -> list[str]:
    """The chat log as ``speaker: text`` lines, oldest first."""
    return [f"{m.speaker}: {m.text}" for m in panel(app).messages]


def last_answer(app: ChatHarness) -> str:
    messages = panel(app).messages
    assert messages and messages[-1].speaker == "Staff engineer", log(app)
    return messages[-1].text


async def fire(app: ChatHarness, pilot: Pilot[None], n: int) -> None:
    """``n`` greets, all ended, then one sample handed to the panel."""
    await asyncio.gather(*app.cluster.traffic.burst(n))
    app.feed()
    await pilot.pause()


async def ask_by_keyboard(pilot: Pilot[None], key: str) -> None:
    """``c`` then arrows: focus the first chip, walk down to ``key``'s, press Enter."""
    app = pilot.app
    assert isinstance(app, ChatHarness)
    panel(app).focus_questions()
    await pilot.pause()
    for _ in range([q.key for q in QUESTIONS].index(key)):
        await pilot.press("down")
    focused = app.focused
    assert isinstance(focused, QuestionChip) and focused.question.key == key, focused
    await pilot.press("enter")
    await pilot.pause()


async def ask_by_click(pilot: Pilot[None], key: str) -> None:
    await pilot.click(f"#question-{key}")
    await pilot.pause()


def spread(app: ChatHarness) -> str:
    return "/".join(str(p.calls_since_switch) for p in app.cluster.view().pods)


# --- the panel ---------------------------------------------------------------------------------


async def test_the_panel_shows_the_scenes_line_and_a_chip_per_question() -> None:
    app = ChatHarness()
    async with app.run_test(size=(120, 36)):
        assert str(app.query_one("#chat-prompt").render()) == PROMPT
        assert PROMPT == "Not sure what to ask? Tap a question — the staff engineer answers in the chat panel."
        chips = list(app.query(QuestionChip))
        assert [chip.question.key for chip in chips] == [q.key for q in QUESTIONS]
        assert len(chips) == 10
        assert panel(app).messages == []


async def test_up_down_and_tab_move_between_chips_and_enter_asks() -> None:
    app = ChatHarness()
    async with app.run_test(size=(120, 36)) as pilot:
        panel(app).focus_questions()
        await pilot.pause()
        keys = [q.key for q in QUESTIONS]
        assert isinstance(app.focused, QuestionChip) and app.focused.question.key == keys[0]
        await pilot.press("up")  # already the first: stays
        assert isinstance(app.focused, QuestionChip) and app.focused.question.key == keys[0]
        await pilot.press("down", "down")
        assert isinstance(app.focused, QuestionChip) and app.focused.question.key == keys[2]
        await pilot.press("tab")
        assert isinstance(app.focused, QuestionChip) and app.focused.question.key == keys[3]
        await pilot.press("shift+tab", "up")
        assert isinstance(app.focused, QuestionChip) and app.focused.question.key == keys[1]
        await pilot.press("enter")
        await pilot.pause()
        assert log(app)[0] == f"You: {QUESTIONS[1].text}"
        assert len(log(app)) == 2


async def test_every_question_pinned_answers_with_the_pinned_pod_and_its_calls() -> None:
    """20 greets pinned to pod N: each question, asked by keyboard (one by click), carries a live
    figure of that state; the log holds 2 messages per ask."""
    app = ChatHarness()
    async with app.run_test(size=(120, 36)) as pilot:
        await fire(app, pilot, 20)
        pinned = app.cluster.view().pinned_pod
        assert pinned is not None
        calls = spread(app)
        assert sorted(calls.split("/")) == ["0", "0", "0", "20"], calls
        expected = {
            "one-connection": f"Right now pod #{pinned} has served 20 of 20 calls on 1 connection, and the other 3",
            "l4-pins": f"Right now pod #{pinned} has served 20 of 20 calls on 1 connection",
            "more-connections": "4 connections over your 4 pods all land on different pods only 9% of the time",
            "round-robin": f"Right now the client runs pick_first and the spread is {calls}",
            "l7-proxy": f"Here, without it, pod #{pinned} has served 20 of 20 calls on 1 connection",
            "max-connection-age": "It is off right now: the client has opened 1 connection",
            "kubernetes": f"with 4 pods behind it, and it sent this client's connection to pod #{pinned}.",
            "pod-dies": "All 4 pods serve right now",
            "cost": "4 pods × 1,000 clients is 4,000 connections",
            "slow-pod": "No pod is slow right now: the calls' p99 is ",
        }
        assert set(expected) == {q.key for q in QUESTIONS}
        for n, q in enumerate(QUESTIONS, 1):
            if q.key == "l7-proxy":
                await ask_by_click(pilot, q.key)
            else:
                await ask_by_keyboard(pilot, q.key)
            assert len(panel(app).messages) == 2 * n
            assert log(app)[-2] == f"You: {q.text}"
            assert expected[q.key] in last_answer(app), (q.key, last_answer(app))
        assert "This client holds 1 connection right now." in log(app)[2 * 9 - 1]
        assert f"({calls})" in log(app)[-1]


async def test_after_the_switch_the_answers_name_round_robins_spread() -> None:
    app = ChatHarness()
    async with app.run_test(size=(120, 36)) as pilot:
        await fire(app, pilot, 20)
        app.cluster.set_policy("round_robin")
        await app.cluster.wait_ready()
        await fire(app, pilot, 20)
        assert spread(app) == "5/5/5/5"
        await ask_by_keyboard(pilot, "round-robin")
        answer = last_answer(app)
        assert "Right now round_robin holds 4 READY connections, one per pod it resolved" in answer, answer
        assert "its spread since the switch is 5/5/5/5." in answer, answer
        await ask_by_keyboard(pilot, "one-connection")
        assert "Not under round_robin: it opens a connection per pod." in last_answer(app)
        await ask_by_keyboard(pilot, "l4-pins")
        assert "Right now the client bypasses it: round_robin dials every pod itself." in last_answer(app)
        await ask_by_keyboard(pilot, "cost")
        assert "This client holds 4 connections right now." in last_answer(app)
        await ask_by_keyboard(pilot, "kubernetes")
        assert "the client has resolved the pods' list once: all 4 pods are in it." in last_answer(app)
        await ask_by_keyboard(pilot, "l7-proxy")
        assert "Here round_robin spreads them at the client: 5/5/5/5." in last_answer(app)


async def test_the_same_question_twice_keeps_both_answers_each_with_its_moments_figures() -> None:
    app = ChatHarness()
    async with app.run_test(size=(120, 36)) as pilot:
        await fire(app, pilot, 20)
        pinned = app.cluster.view().pinned_pod
        await ask_by_keyboard(pilot, "one-connection")
        await fire(app, pilot, 10)
        await ask_by_keyboard(pilot, "one-connection")
        lines = log(app)
        assert len(lines) == 4
        assert lines[0] == lines[2] == f"You: {question('one-connection').text}"
        assert f"pod #{pinned} has served 20 of 20 calls" in lines[1], lines[1]
        assert f"pod #{pinned} has served 30 of 30 calls" in lines[3], lines[3]


async def test_show_me_by_key_posts_the_configuration_and_the_cluster_runs_it() -> None:
    app = ChatHarness()
    async with app.run_test(size=(120, 36)) as pilot:
        await ask_by_keyboard(pilot, "l7-proxy")
        chips = list(app.query(ShowMeChip))
        assert [str(chip.render()) for chip in chips] == ["▶ show me: configuration 4 (L7 proxy)"]
        await pilot.press("w")
        await wait_until(lambda: app.shown == [4], 5, "show me to post configuration 4")
        live = app.cluster.configuration
        assert live is not None and live.number == 4
        await app.cluster.wait_ready()
        # in configuration 4 the answer is live and offers no "show me" of what already runs
        await fire(app, pilot, 40)
        await ask_by_keyboard(pilot, "l7-proxy")
        answer = last_answer(app)
        assert "It runs now: the client holds 1 connection to it, it holds 4 to the pods" in answer, answer
        assert "it picked per call: 10/10/10/10." in answer, answer
        assert re.search(r"your calls' p50 is [\d.]+ ms and p99 [\d.]+ ms", answer), answer
        assert len(app.query(ShowMeChip)) == 1  # the first answer's only
        await pilot.press("w")  # nothing to show: the latest answer has none
        await pilot.pause()
        assert app.shown == [4]


async def test_show_me_by_click_and_by_enter_on_the_chip() -> None:
    app = ChatHarness()
    async with app.run_test(size=(120, 36)) as pilot:
        await ask_by_keyboard(pilot, "more-connections")
        await pilot.click("ShowMeChip")
        await wait_until(lambda: app.shown == [7], 5, "the click to post configuration 7")
        live = app.cluster.configuration
        assert live is not None and live.number == 7
        await app.cluster.wait_ready()
        await ask_by_keyboard(pilot, "max-connection-age")
        # keyboard: the latest answer's chip is the next focus after the last question
        chip = list(app.query(ShowMeChip))[-1]
        assert str(chip.render()) == "▶ show me: configuration 3 (max age)"
        assert not next(iter(app.query(ShowMeChip))).can_focus  # the older one is off the keyboard path
        panel(app).query(QuestionChip).last().focus()
        await pilot.press("tab")
        assert app.focused is chip
        await pilot.press("enter")
        await wait_until(lambda: app.shown == [7, 3], 5, "Enter on the chip to post configuration 3")
        live = app.cluster.configuration
        assert live is not None and live.number == 3


async def test_configuration_7_answer_counts_the_connections_per_pod() -> None:
    """In the pool, "why not more connections?" names where the L4 LB sent each connection, and the spread."""
    app = ChatHarness()
    async with app.run_test(size=(120, 36)) as pilot:
        await app.cluster.apply(configuration(7))
        await app.cluster.wait_ready()
        await fire(app, pilot, 40)
        view = app.cluster.view()
        reached = sorted(c.pod for c in view.connections if c.pod is not None)
        assert len(reached) == 4
        await ask_by_keyboard(pilot, "more-connections")
        answer = last_answer(app)
        listed = ", ".join(f"#{p}" for p in reached)
        assert f"That is what runs: 4 connections through the VIP, and the L4 LB sent them to {listed}." in answer
        assert f"the spread follows them: {spread(app)}." in answer, answer
        assert not app.query(ShowMeChip)  # configuration 7 runs: nothing to show


async def test_pod_dies_or_drains_answers_from_the_live_pods() -> None:
    app = ChatHarness()
    async with app.run_test(size=(120, 36)) as pilot:
        cluster = app.cluster
        await fire(app, pilot, 10)
        pinned = cluster.view().pinned_pod
        assert pinned is not None
        cluster.toggle_drain(pinned)
        app.feed()
        await ask_by_keyboard(pilot, "pod-dies")
        answer = last_answer(app)
        assert f"Right now pod #{pinned} reports NOT_SERVING (draining)." in answer, answer
        assert f"pick_first does not watch health, so its connection stays on pod #{pinned}" in answer, answer
        cluster.toggle_drain(pinned)
        await cluster.toggle_pod(pinned)  # kill it: the connection drops
        await wait_until(lambda: cluster.view().ready_connections == 0, 5, "the pinned connection to drop")
        app.feed()
        await ask_by_keyboard(pilot, "pod-dies")
        answer = last_answer(app)
        assert f"Right now pod #{pinned} is down." in answer, answer
        assert "The client's connection is gone (IDLE): its next call dials the VIP" in answer, answer
        await fire(app, pilot, 10)  # pick_first reconnects through the VIP; the L4 LB skips the dead pod
        now = cluster.view().pinned_pod
        assert now is not None and now != pinned
        await ask_by_keyboard(pilot, "pod-dies")
        answer = last_answer(app)
        assert f"the L4 LB picked again: pod #{now} now" in answer, answer
        # round_robin skips it
        cluster.set_policy("round_robin")
        await wait_until(lambda: cluster.view().ready_connections == 3, 5, "round_robin's three READY pods")
        await fire(app, pilot, 9)
        await ask_by_keyboard(pilot, "pod-dies")
        answer = last_answer(app)
        assert "round_robin skips it: its subchannel is not READY." in answer, answer
        assert f"3 READY connections, one per pod it resolved (skipping #{pinned})" in answer, answer
        assert (sorted(spread(app).split("/"))) == ["0", "3", "3", "3"]


async def test_slow_pod_answer_names_its_share_and_p99() -> None:
    app = ChatHarness(replace(CONFIG, service_time=0.002))
    async with app.run_test(size=(120, 36)) as pilot:
        await app.cluster.apply(configuration(5))
        await app.cluster.wait_ready()
        await fire(app, pilot, 40)
        pod2 = app.cluster.view().pods[1]
        await ask_by_keyboard(pilot, "slow-pod")
        answer = last_answer(app)
        share = f"{pod2.calls_since_switch / 40:.0%}"
        assert f"Right now pod #2 is 10× slower: least_request gave it {share} of the calls ({spread(app)})" in answer
        assert re.search(r"pod #2 answers p99 [\d.]+ ms against [\d.]+ ms at worst elsewhere", answer), answer


async def test_max_connection_age_answer_counts_goaways() -> None:
    app = ChatHarness(replace(CONFIG, configuration_age=0.3))
    async with app.run_test(size=(120, 36)) as pilot:
        cluster = app.cluster
        await cluster.apply(configuration(3))
        await wait_until(lambda: cluster.view().goaways >= 1, 5, "a GOAWAY")
        await cluster.wait_ready()
        app.feed()
        goaways = cluster.view().goaways
        await ask_by_keyboard(pilot, "max-connection-age")
        answer = last_answer(app)
        assert f"It is on: 0.3 s, and the pods have sent {goaways} GOAWAY" in answer, answer


async def test_asking_before_the_first_view_says_so_and_the_log_keeps_a_bounded_history() -> None:
    app = ChatHarness()
    async with app.run_test(size=(120, 36)) as pilot:
        chat = panel(app)
        chat._view = None  # as before the screen's first sample
        assert await chat.ask(QUESTIONS[0]) is None
        assert log(app) == [f"You: {QUESTIONS[0].text}", f"Staff engineer: {NOT_STARTED}"]
        app.feed()
        for _ in range(KEEP_MESSAGES // 2 + 5):
            await chat.ask(QUESTIONS[0])
        await pilot.pause()
        messages = chat.messages
        assert len(messages) == KEEP_MESSAGES, len(messages)
        assert messages[0].speaker == "You" and messages[-1].speaker == "Staff engineer"
        assert NOT_STARTED not in [m.text for m in messages]  # the oldest went first
