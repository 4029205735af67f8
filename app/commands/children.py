"""Child processes that one command owns: each in its own process group, stopped for sure.

A child gets a session (and process group) of its own, so a Ctrl-C in the terminal reaches only
its owner, which then stops the children in order; on Linux it also gets SIGTERM if its owner dies
without stopping it (``PR_SET_PDEATHSIG``), so even a SIGKILL of the owner leaves no pod behind.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import app
from app.commands.errors import CliError

#: prctl(2) option: the signal a process gets when its parent (the thread that forked it) dies.
_PR_SET_PDEATHSIG = 1


def _death_signal() -> Callable[[], None] | None:
    """A preexec_fn asking the kernel to SIGTERM the child when we die; None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child only calls it
    except (OSError, AttributeError):
        return None

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

    return preexec


def python_argv(*args: str) -> list[str]:
    """``python -m app ARGS`` with this interpreter."""
    return [sys.executable, "-m", "app", *args]


def _env() -> dict[str, str]:
    """Our environment, with this checkout of ``app`` first on the path: children run our code."""
    root = str(Path(app.__file__).resolve().parents[1])
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))


class Child:
    """One child process: its stdout lines (queued, or forwarded once :meth:`forward` is called)
    and the tail of its stderr, for the one-line error when it dies."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process) -> None:
        self.name = name
        self.proc = proc
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._forward = False
        self._stderr: collections.deque[str] = collections.deque(maxlen=20)
        self._readers = [asyncio.ensure_future(self._read_stdout()), asyncio.ensure_future(self._read_stderr())]

    @classmethod
    async def start(cls, name: str, argv: Sequence[str]) -> Child:
        """Start ``argv``; CliError (one line) if it cannot be run at all."""
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=_env(),
                start_new_session=True,
                preexec_fn=_death_signal(),
            )
        except OSError as exc:
            raise CliError(f"cannot start {name} ({argv[0]}): {exc.strerror or exc}") from None
        return cls(name, proc)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def forwarding(self) -> bool:
        return self._forward

    @property
    def running(self) -> bool:
        return self.proc.returncode is None

    async def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            text = line.decode(errors="replace").rstrip("\n")
            if self._forward:
                print(text, flush=True)
            else:
                self._lines.put_nowait(text)
        self._lines.put_nowait(None)

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self._stderr.append(line.decode(errors="replace").rstrip())

    async def read_line(self) -> str | None:
        """The next stdout line; None once stdout is closed (the child exited)."""
        return await self._lines.get()

    def forward(self) -> None:
        """From now on print its stdout lines as they come (queued ones first)."""
        while not self._lines.empty():
            line = self._lines.get_nowait()
            if line is not None:
                print(line, flush=True)
        self._forward = True

    async def last_error(self, first_with: str | None = None) -> str:
        """Once it exited, its one-line error: the first stderr line containing ``first_with``
        (nginx repeats a failed bind, then says "still could not bind()"), else the last one;
        without stderr, how it ended."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self._readers), 2.0)
        lines = [line for line in self._stderr if line]
        if first_with is not None:
            lines = [line for line in lines if first_with in line][:1] or lines
        if lines:
            return lines[-1]
        code = self.proc.returncode
        if code is None:
            return "still running"
        return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"

    async def stop(self, sig: signal.Signals, timeout: float, urgent: asyncio.Event | None = None) -> int:
        """Send ``sig`` and wait up to ``timeout`` s (less if ``urgent`` is set meanwhile) for the
        exit; then SIGKILL its whole process group. Returns its exit status."""
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)
            waits: set[asyncio.Future[object]] = {asyncio.ensure_future(self.proc.wait())}
            if urgent is not None:
                waits.add(asyncio.ensure_future(urgent.wait()))
            _, pending = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
        if self.running:
            self.kill_group()
        code = await self.proc.wait()
        # its own children (nginx's workers) if it left any: the group id stays ours while they live
        self.kill_group()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self._readers), 2.0)
        return code

    def kill_group(self) -> None:
        """SIGKILL every process in its process group (its own: ``start_new_session``)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)


class Children:
    """The children a command started, spawned so that a cancelled start still leaves a child to stop."""

    def __init__(self) -> None:
        self._spawns: list[asyncio.Future[Child]] = []

    async def spawn(self, name: str, argv: Sequence[str]) -> Child:
        spawn = asyncio.ensure_future(Child.start(name, argv))
        self._spawns.append(spawn)
        return await asyncio.shield(spawn)  # cancelling the caller does not lose the process

    async def started(self) -> list[Child]:
        """Every child whose process was created (a failed spawn, e.g. no such binary, is none)."""
        children = []
        for spawn in self._spawns:
            with contextlib.suppress(Exception):
                children.append(await spawn)
        return children
