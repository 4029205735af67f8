"""Once a streaming call's stream is open, its reads and writes take it at once (no wait on the opening)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from transport import Channel, ConnectivityState, Server, ServicerContext, stream_stream

ECHO = "/test.S/Echo"


async def test_writes_after_the_first_do_not_wait_for_the_opening_again(monkeypatch: pytest.MonkeyPatch) -> None:
    async def echo(requests: AsyncIterator[bytes], context: ServicerContext) -> AsyncIterator[bytes]:
        async for request in requests:
            yield request

    server = Server()
    server.add_generic_handler(lambda path: stream_stream(echo) if path == ECHO else None)
    address = await server.start("127.0.0.1", 0)
    channel = Channel.dial(str(address), "pick_first")
    try:
        await channel.wait_for_state(ConnectivityState.READY, timeout=5)
        call = channel.stream_stream(ECHO)()
        await call.write(b"first")  # opens the stream
        assert await call.read() == b"first"
        waits = 0
        real_wait = asyncio.wait

        async def counting_wait(*args: Any, **kwargs: Any) -> Any:
            nonlocal waits
            waits += 1
            return await real_wait(*args, **kwargs)

        monkeypatch.setattr(asyncio, "wait", counting_wait)
        for i in range(20):
            await call.write(str(i).encode())
            assert await call.read() == str(i).encode()
        await call.done_writing()
        # Each write waited on the (long finished) opening before: 21 waits for 20 round trips.
        assert waits == 0, f"{waits} waits on the opening for 20 round trips"
    finally:
        await channel.close(grace=0)
        await server.stop(grace=0)
