"""Plays the replay's steps against the live cluster: drive, wait for the event, narrate.

One step plays at a time. Moving on (or back) stops waiting at once, but a drive that
has begun runs to its end before the next one starts, so the cluster is never left
half-switched. A step that does not reach its condition within ``timeout`` says so
instead of narrating what did not happen.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from app.cluster import ClusterView
from app.replay.steps import STEPS, Mark, Stage, Step

#: How long a step waits for its event before it says it is still waiting.
TIMEOUT = 45.0
POLL = 0.05


@dataclass(frozen=True, slots=True)
class Narration:
    """What the narration bar shows."""

    number: int
    steps: int
    title: str
    text: str
    #: "driving" (the cluster is switching), "waiting" (for the event), "reached", "stuck".
    phase: str
    #: The scene's term the step defines, once reached.
    term: str | None = None


class Player:
    def __init__(
        self,
        stage: Stage,
        steps: tuple[Step, ...] = STEPS,
        on_change: Callable[[], None] = lambda: None,
        timeout: float = TIMEOUT,
    ) -> None:
        self.stage = stage
        self.steps = steps
        self.on_change = on_change
        self.timeout = timeout
        #: The step playing (0-based), or None when the replay is not running.
        self.index: int | None = None
        self.phase = "driving"
        self._mark = Mark()
        #: Why the step's drive failed, if it did.
        self._error: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._drive: asyncio.Task[None] | None = None

    @property
    def playing(self) -> bool:
        return self.index is not None

    def start(self) -> None:
        self.go(0)

    def forward(self) -> None:
        """The next step (after the last, the replay ends)."""
        if self.index is None:
            self.go(0)
        elif self.index + 1 < len(self.steps):
            self.go(self.index + 1)
        else:
            self.leave()

    def back(self) -> None:
        """The step before (the first plays again from its start)."""
        if self.index is not None:
            self.go(max(0, self.index - 1))

    def go(self, index: int) -> None:
        if not 0 <= index < len(self.steps):
            raise ValueError(f"there is no step {index + 1}: the replay has {len(self.steps)}")
        self._cancel()
        self.index = index
        self.phase = "driving"
        self._task = asyncio.get_running_loop().create_task(self._play(self.steps[index]))
        self.on_change()

    def leave(self) -> None:
        """Stop the replay; the cluster stays as the last step left it."""
        self._cancel()
        self.index = None
        self.on_change()

    async def wait_reached(self, timeout: float | None = None) -> None:
        """Wait until the step playing has reached its event (or is stuck); for tests and scripts."""
        async with asyncio.timeout(timeout):
            while self.index is not None and self.phase not in ("reached", "stuck"):
                await asyncio.sleep(POLL)

    async def close(self) -> None:
        self._cancel()
        if self._drive is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._drive

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _play(self, step: Step) -> None:
        previous = self._drive
        if previous is not None and not previous.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(previous)  # a switch in progress finishes first
        cluster = self.stage.cluster
        before = cluster.view()
        self._drive = asyncio.get_running_loop().create_task(step.drive(self.stage))
        try:
            await asyncio.shield(self._drive)
        except (ValueError, RuntimeError, TimeoutError) as exc:  # the cluster refused: say so
            self._error = str(exc) or type(exc).__name__
            self.phase = "stuck"
            self.on_change()
            return
        self._error = None
        self._mark = Mark.of(cluster.view(), before)
        self.phase = "waiting"
        self.on_change()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while not step.reached(cluster.view(), self._mark):
            if loop.time() > deadline:
                self.phase = "stuck"
                self.on_change()
                return
            await asyncio.sleep(POLL)
        self.phase = "reached"
        self.on_change()

    def narration(self, view: ClusterView) -> Narration | None:
        """The bar's text for ``view`` (None when the replay is not running)."""
        if self.index is None:
            return None
        step = self.steps[self.index]
        number, steps = self.index + 1, len(self.steps)
        if self.phase == "reached":
            return Narration(number, steps, step.title, step.narrate(view, self._mark), "reached", step.term)
        if self.phase == "stuck" and self._error is not None:
            text = f"This step could not set the cluster up: {self._error}. space goes on, ← tries again."
            return Narration(number, steps, step.title, text, "stuck")
        if self.phase == "stuck":
            text = (
                f"Still waiting after {self.timeout:g} s — {step.watch} The cluster did not get there; space goes on."
            )
            return Narration(number, steps, step.title, text, "stuck")
        return Narration(number, steps, step.title, step.watch or "…", self.phase)
