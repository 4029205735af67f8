"""``start_eagerly`` runs a coroutine in the caller's turn, then as a Task's own body, with a Task's semantics."""

from __future__ import annotations

import asyncio

import pytest

from transport.eager import start_eagerly


async def test_a_coroutine_that_never_waits_finishes_without_a_task() -> None:
    done: list[str] = []

    async def quick() -> None:
        done.append("ran")

    assert start_eagerly(quick()) is None
    assert done == ["ran"]


async def test_it_carries_on_in_a_task_through_every_later_wait_in_order() -> None:
    loop = asyncio.get_running_loop()
    first, later = loop.create_future(), [loop.create_future() for _ in range(50)]
    seen: list[object] = []

    async def handler() -> None:
        seen.append(await first)
        await asyncio.sleep(0)  # a bare yield in between
        for future in later:
            seen.append(await future)

    task = start_eagerly(handler())
    assert task is not None and seen == []
    first.set_result("first")
    for i, future in enumerate(later):
        await asyncio.sleep(0)
        future.set_result(i)
    await asyncio.wait_for(task, 5)
    assert seen == ["first", *range(50)]


async def test_the_first_wait_failing_is_raised_inside_the_coroutine() -> None:
    loop = asyncio.get_running_loop()
    failing, after = loop.create_future(), loop.create_future()
    caught: list[str] = []

    async def handler() -> None:
        try:
            await failing
        except ValueError as exc:
            caught.append(str(exc))
        caught.append(await after)

    task = start_eagerly(handler())
    assert task is not None
    failing.set_exception(ValueError("bad"))
    await asyncio.sleep(0)
    after.set_result("then this")
    await asyncio.wait_for(task, 5)
    assert caught == ["bad", "then this"]


@pytest.mark.parametrize("waits_before_cancel", [0, 3])
async def test_cancelling_the_task_cancels_the_coroutine_where_it_waits(waits_before_cancel: int) -> None:
    loop = asyncio.get_running_loop()
    futures = [loop.create_future() for _ in range(waits_before_cancel + 2)]
    cleaned: list[bool] = []

    async def handler() -> None:
        try:
            for future in futures:
                await future
        finally:
            cleaned.append(True)

    task = start_eagerly(handler())
    assert task is not None
    for future in futures[:waits_before_cancel]:
        future.set_result(None)
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == [True]  # at once, not when the coroutine is collected
    if waits_before_cancel:
        assert futures[waits_before_cancel].cancelled()  # (cancelled before its first step: closed instead)
