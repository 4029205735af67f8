"""Run a coroutine eagerly: up to its first real suspension, in the caller's turn.

Python 3.12's ``eager_task_factory`` does this for every task; on 3.11 this is
the same idea for one coroutine. A handler that finishes without waiting
(a plain unary response) then costs no Task and no extra event-loop turn; one
that does wait continues in a Task, exactly where it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Coroutine, Generator
from typing import Any


def start_eagerly(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
    """Run ``coro`` now; None if it finished, else the Task that carries on with it."""
    try:
        blocked_on = _unmark(coro.send(None))
    except StopIteration:
        return None
    task = asyncio.get_running_loop().create_task(_carry_on(coro, blocked_on))
    task.add_done_callback(functools.partial(_close, coro))
    return task


def _close(coro: Coroutine[Any, Any, None], task: asyncio.Task[None]) -> None:
    """The Task ended: make sure ``coro`` did too. A Task cancelled before its first step never ran
    :func:`_carry_on`, so the coroutine still waits where it stopped: close it there (its ``finally``
    blocks run now, not whenever it is collected). Closing a finished coroutine does nothing."""
    with contextlib.suppress(RuntimeError):  # it awaited inside its finally: nothing more to do
        coro.close()


def _unmark(blocked_on: Any) -> Any:
    """Clear the "being awaited" mark of a future a coroutine yielded, as a Task does at once.

    Left set, the next coroutine to await the same future fails with
    "await wasn't used with future" (asyncio's C future checks the mark).
    """
    if blocked_on is not None:
        blocked_on._asyncio_future_blocking = False
    return blocked_on


async def _carry_on(coro: Coroutine[Any, Any, None], blocked_on: Any) -> None:
    """Carry on with a started coroutine: wait for what it yielded, then let it run as this Task's own body.

    Once the wait is over the coroutine is resumed by ``await`` (:class:`_Resumed`): from then on the Task
    drives it directly, each later suspension costing no more than in a Task of its own (a streaming
    handler suspends once per message). A wait that raises is delivered into the coroutine, as a Task would.
    """
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
        await _Resumed(coro)
        return


class _Resumed:
    """Awaiting it resumes a suspended coroutine where it stopped and runs it to its end.

    ``await`` delegates to the coroutine (``yield from``): its first step resumes it (the future it
    was waiting for is done by now), and every later future it yields goes straight to the Task.
    """

    __slots__ = ("_coro",)

    def __init__(self, coro: Coroutine[Any, Any, None]) -> None:
        self._coro = coro

    def __await__(self) -> Generator[Any, None, None]:
        return self._coro.__await__()
