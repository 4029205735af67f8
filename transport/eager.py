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
        blocked_on = _unmark(coro.send(None))
    except StopIteration:
        return None
    return asyncio.get_running_loop().create_task(_carry_on(coro, blocked_on))


def _unmark(blocked_on: Any) -> Any:
    """Clear the "being awaited" mark of a future a coroutine yielded, as a Task does at once.

    Left set, the next coroutine to await the same future fails with
    "await wasn't used with future" (asyncio's C future checks the mark).
    """
    if blocked_on is not None:
        blocked_on._asyncio_future_blocking = False
    return blocked_on


async def _carry_on(coro: Coroutine[Any, Any, None], blocked_on: Any) -> None:
    """Drive a started coroutine: wait for what it yielded, resume it, repeat."""
    while True:
        try:
            if blocked_on is None:  # a bare yield (asyncio.sleep(0))
                await asyncio.sleep(0)
            else:
                await blocked_on
        except BaseException as exc:  # noqa: BLE001 - delivered into the coroutine, as a Task would
            try:
                blocked_on = _unmark(coro.throw(exc))
            except StopIteration:
                return
            continue
        try:
            blocked_on = _unmark(coro.send(None))
        except StopIteration:
            return
