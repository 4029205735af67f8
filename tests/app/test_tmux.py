"""The replay as a person runs it: `rpcviz --replay` in a real terminal (tmux, 120×36), then space.

tmux gives the app a real pty; the test reads the screen with capture-pane. Skipped where tmux
is not installed (.ci/run installs it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Terminal:
    def __init__(self, socket: str) -> None:
        self.socket = socket

    def tmux(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-L", self.socket, *args], check=False, capture_output=True, text=True, timeout=10
        )

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "app").stdout

    def wait_for(self, *texts: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if all(text in screen for text in texts):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"after {timeout}s the terminal does not show {texts!r}:\n{screen}")
            time.sleep(0.2)

    def alive(self) -> bool:
        return self.tmux("has-session", "-t", "app").returncode == 0


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    term = Terminal(f"rpcviz-test-{os.getpid()}")
    env = {**os.environ, "TERM": "xterm-256color", "PYTHONPATH": str(ROOT)}
    command = f"{sys.executable} -m app --replay"
    subprocess.run(
        [
            "tmux",
            "-L",
            term.socket,
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "app",
            "-x",
            "120",
            "-y",
            "36",
            command,
        ],
        check=True,
        cwd=ROOT,
        env=env,
        timeout=10,
    )
    try:
        yield term
    finally:
        term.tmux("kill-server")


def test_replay_in_tmux_reaches_connection_pinning_on_pod_3(terminal: Terminal) -> None:
    terminal.wait_for("step 1 of", "Previously")
    for step in (2, 3, 4, 5):
        terminal.tmux("send-keys", "-t", "app", "Space")
        terminal.wait_for(f"step {step} of")
    screen = terminal.wait_for("CONNECTION PINNING", "pod #3 served", "PINNED")
    assert "pods #1, #2 and #4" in screen
    assert "conn 1" in screen and "pod #3" in screen
    terminal.tmux("send-keys", "-t", "app", "q")
    deadline = time.monotonic() + 10
    while terminal.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not terminal.alive(), "q did not end the app within 10 s"
