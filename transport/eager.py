"""Run a coroutine eagerly: up to its first real suspension, in the caller's turn.

Python 3.12's ``eager_task_factory`` does this for every task; on 3.11 this is
the same idea for one coroutine. A handler that finishes without waiting
(a plain unary response) then costs no Task and no extra event-loop turn; one
that does wait continues in a Task, exactly where it stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


def start_eagerly(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
    """Run ``coro`` now; None if it finished, else the Task that carries on with it."""
    try:
        blocked_on = coro.send(None)
    except StopIteration:
        return None
    return asyncio.get_running_loop().create_task(_carry_on(coro, blocked_on))


async def _carry_on(coro: Coroutine[Any, Any, None], blocked_on: Any) -> None:
    """Drive a started coroutine: wait for what it yielded, resume it, repeat."""
    while True:
        try:
            if blocked_on is None:  # a bare yield (asyncio.sleep(0))
                await asyncio.sleep(0)
            else:
                # The coroutine marked the future as awaited when it yielded it; a
                # Task clears that mark before waiting, and so must we.
                blocked_on._asyncio_future_blocking = False
                await blocked_on
        except BaseException as exc:  # noqa: BLE001 - delivered into the coroutine, as a Task would
            try:
                blocked_on = coro.throw(exc)
            except StopIteration:
                return
            continue
        try:
            blocked_on = coro.send(None)
        except StopIteration:
            return
