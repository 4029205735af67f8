"""``rpcviz serve`` as a separate process, for tests where real concurrency between peers matters.

On one event loop a client and a server take turns, so races that need both
running at once (a request in flight while the server closes) do not happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_ADDRESS = re.compile(rb"on (127\.0\.0\.1:\d+)")
_SERVED = re.compile(r"stopped after (\d+) calls")


class ServeProcess:
    """One ``python -m app serve`` process; always stop it with :meth:`terminate` or :meth:`kill`."""

    def __init__(self, proc: asyncio.subprocess.Process, address: str) -> None:
        self.proc = proc
        self.address = address

    @property
    def port(self) -> int:
        return int(self.address.rpartition(":")[2])

    @classmethod
    async def start(
        cls, name: str, port: int = 0, *extra: str, timeout: float = 15.0, fd_limit: int | None = None
    ) -> ServeProcess:
        """Start it; ``fd_limit`` caps its open files (RLIMIT_NOFILE), as a container's ulimit would."""
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "app",
            "serve",
            "--port",
            str(port),
            "--name",
            name,
            *extra,
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=(lambda: _limit_files(fd_limit)) if fd_limit is not None else None,
        )
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), timeout)
        except TimeoutError:
            await _stop(proc)
            raise
        match = _ADDRESS.search(line)
        if match is None:
            await _stop(proc)
            _, err = await proc.communicate()
            raise AssertionError(f"rpcviz serve did not start: {line!r} {err.decode()[-500:]}")
        return cls(proc, match.group(1).decode())

    async def terminate(self, timeout: float = 20.0) -> str:
        """SIGTERM (a graceful stop), wait for the exit; the rest of stdout."""
        return (await self.terminate_with_stderr(timeout))[0]

    async def terminate_with_stderr(self, timeout: float = 20.0) -> tuple[str, str]:
        """SIGTERM, wait for the exit; the rest of stdout and all of stderr."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(self.proc.communicate(), timeout)
        return out.decode(), err.decode()

    async def kill(self) -> None:
        await _stop(self.proc)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    await proc.wait()


def _limit_files(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


def calls_served(stop_output: str) -> int:
    """The call count ``rpcviz serve`` prints when it stops."""
    match = _SERVED.search(stop_output)
    assert match, stop_output
    return int(match.group(1))
