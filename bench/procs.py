"""Subprocess plumbing: core pinning, a child's CPU time, spawning and always killing."""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: Cores: servers (and the proxy) on one, clients on the other.
SERVER_CORE = 0
CLIENT_CORE = 1


def taskset_prefix(core: int) -> list[str]:
    """``taskset -c core`` when taskset exists and the machine has that core, else nothing."""
    if shutil.which("taskset") is None or (os.cpu_count() or 1) <= core:
        return []
    return ["taskset", "-c", str(core)]


def pinning_available() -> bool:
    return bool(taskset_prefix(CLIENT_CORE))


def python_module(module: str, args: Sequence[str], core: int | None) -> list[str]:
    """The argv running ``python -m module args`` pinned to ``core`` when possible."""
    prefix = taskset_prefix(core) if core is not None else []
    return [*prefix, sys.executable, "-m", module, *args]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of process ``pid`` (all its threads) from /proc, or None without /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state): utime is field 14, stime field 15.
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


class Child:
    """A long-running child (a server or the proxy) that prints ``READY <port> [<port> ...]`` once
    listening; ``port`` is the first, ``ports`` all of them."""

    def __init__(self, module: str, args: Sequence[str], core: int | None, ready_timeout: float = 20.0) -> None:
        self.argv = python_module(module, args, core)
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), cwd=ROOT, text=True
        )
        self.port = self._wait_ready(ready_timeout)

    @property
    def pid(self) -> int:
        """taskset execs the command, so this is the Python process itself."""
        return self.proc.pid

    def _wait_ready(self, timeout: float) -> int:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            line = self.proc.stdout.readline()
            if not line:  # exited
                break
            if line.startswith("READY "):
                self.ports = [int(word) for word in line.split()[1:]]
                return self.ports[0]
        self.stop()
        err = self.proc.stderr.read() if self.proc.stderr else ""
        raise RuntimeError(f"{' '.join(self.argv)} did not become ready: {err[-2000:]}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s; never leaves the child behind."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@contextlib.contextmanager
def child(module: str, args: Sequence[str], core: int | None) -> Iterator[Child]:
    """Run a :class:`Child` for the block; kill it in a finally."""
    c = Child(module, args, core)
    try:
        yield c
    finally:
        c.stop()


def run_json(module: str, args: Sequence[str], core: int | None, timeout: float) -> dict[str, Any]:
    """Run ``python -m module args`` to completion and parse the JSON on its last stdout line."""
    argv = python_module(module, args, core)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:  # subprocess.run kills the child
        raise RuntimeError(f"{' '.join(argv)} timed out after {timeout} s") from exc
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result
