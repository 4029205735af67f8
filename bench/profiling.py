"""cProfile over the measured window only, for :mod:`bench.breakdown` (start-up and warm-up left out).

With ``RPCVIZ_BENCH_PROFILE=FILE`` in its environment, a bench client profiles its measured window
(:func:`window`) and signals the server it measures (``--server-pid``) to do the same: SIGUSR1 starts
the server's profile and SIGUSR2 stops it and writes the file (:func:`install_server_hooks`).
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import os
import signal
from collections.abc import Iterator

ENV = "RPCVIZ_BENCH_PROFILE"


@contextlib.contextmanager
def window(server_pid: int | None) -> Iterator[None]:
    """Profile this block (and have the server profile it) when :data:`ENV` is set; else nothing."""
    out = os.environ.get(ENV)
    if not out:
        yield
        return
    profile = cProfile.Profile()
    if server_pid:
        os.kill(server_pid, signal.SIGUSR1)
    profile.enable()
    try:
        yield
    finally:
        profile.disable()
        if server_pid:
            os.kill(server_pid, signal.SIGUSR2)
        profile.dump_stats(out)


def install_server_hooks(loop: asyncio.AbstractEventLoop) -> None:
    """When :data:`ENV` is set: SIGUSR1 starts profiling this server, SIGUSR2 stops and writes ``$ENV.server``."""
    out = os.environ.get(ENV)
    if not out:
        return
    profile = cProfile.Profile()

    def stop() -> None:
        profile.disable()
        profile.dump_stats(out + ".server")

    loop.add_signal_handler(signal.SIGUSR1, profile.enable)
    loop.add_signal_handler(signal.SIGUSR2, stop)
