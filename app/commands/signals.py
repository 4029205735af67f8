"""Wait for SIGINT/SIGTERM so servers can stop gracefully."""

from __future__ import annotations

import asyncio
import signal


def shutdown_signal() -> asyncio.Future[signal.Signals]:
    """The first SIGINT/SIGTERM from now on, as a future, with the handlers installed before this
    returns: a server that prints "listening" after calling it loses no signal sent right after the
    line. The handlers are removed when the future is done (or cancelled)."""
    loop = asyncio.get_running_loop()
    received: asyncio.Future[signal.Signals] = loop.create_future()

    def on_signal(sig: signal.Signals) -> None:
        if not received.done():
            received.set_result(sig)

    def remove(_: asyncio.Future[signal.Signals]) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    received.add_done_callback(remove)
    return received
