"""Large responses under concurrency: flow control and write backpressure must never kill a connection.

A stock grpcio client making many calls with 1 MiB responses puts several
requests in one read whose responses exceed the flow-control window and the
frame size while the socket's write buffer is above its high-water mark: every
handler then waits on the same connection, and none of that may leak out of
the read path and take the connection down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

import grpc
import pytest

from transport import Server, ServicerContext, unary_unary
from transport.eager import start_eagerly
from transport.http2 import H2Protocol

BIG = "/test.Big/Get"
MiB = 1024 * 1024


async def big(request: bytes, context: ServicerContext) -> bytes:
    return b"x" * MiB


async def test_grpcio_300_calls_of_1mib_at_concurrency_64_all_succeed(caplog: pytest.LogCaptureFixture) -> None:
    """300 calls, 64 at a time, each answered with 1 MiB: 300 OK, no connection error logged."""
    server = Server(name="big")
    server.add_method(BIG, unary_unary(big))
    await server.start("127.0.0.1", 0)
    codes: dict[str, int] = {}
    try:
        async with grpc.aio.insecure_channel(str(server.address)) as channel:
            get = channel.unary_unary(BIG)
            sem = asyncio.Semaphore(64)

            async def one() -> None:
                async with sem:
                    try:
                        reply = await get(b"", timeout=30)
                        code = "OK" if len(reply) == MiB else f"short reply {len(reply)}"
                    except grpc.aio.AioRpcError as exc:
                        code = exc.code().name
                codes[code] = codes.get(code, 0) + 1

            with caplog.at_level(logging.ERROR):
                await asyncio.gather(*(one() for _ in range(300)))
    finally:
        await server.stop(grace=1)
    assert codes == {"OK": 300}
    assert server.stats.status_counts() == {"OK": 300}
    assert server.stats.connections_total == 1, "the connection was lost and re-opened"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []


async def test_two_eager_coroutines_may_wait_on_one_future() -> None:
    """What a Task allows, start_eagerly allows: two coroutines awaiting one pending future."""
    loop = asyncio.get_running_loop()
    shared: asyncio.Future[None] = loop.create_future()
    done: list[int] = []

    async def waiter(n: int) -> None:
        await shared
        done.append(n)

    coros: list[Coroutine[Any, Any, None]] = [waiter(1), waiter(2)]
    tasks = [start_eagerly(c) for c in coros]
    assert all(t is not None for t in tasks)
    shared.set_result(None)
    await asyncio.gather(*(t for t in tasks if t is not None))
    assert sorted(done) == [1, 2]


async def test_a_cancelled_sender_does_not_cancel_the_others_waiting_for_the_socket() -> None:
    """Senders waiting for a paused socket each have their own wait: cancelling one (a deadline,
    a client reset) leaves the others to resume when the socket drains."""
    conn = H2Protocol()
    conn.pause_writing()
    first = asyncio.ensure_future(conn.wait_writable())
    second = asyncio.ensure_future(conn.wait_writable())
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    conn.resume_writing()
    await asyncio.wait_for(second, 1)
    assert first.cancelled()
