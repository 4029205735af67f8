"""What many senders queue in one loop turn goes out together; a lone call is written at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from tests.helpers import greet, start_greeters
from transport import Channel, ConnectivityState, Server, ServicerContext, unary_stream
from transport.http2 import H2Protocol

COUNT = "/test.S/Count"  # unary_stream: b"n" -> n messages b"0".."n-1"


def _count_writes(conn: H2Protocol) -> list[int]:
    """Wrap ``conn``'s transport.write; returns the list of written sizes (it grows as writes happen)."""
    assert conn.transport is not None
    transport = conn.transport
    sizes: list[int] = []
    write = transport.write

    def counted(data: bytes | bytearray | memoryview) -> None:
        sizes.append(len(data))
        write(data)

    transport.write = counted  # type: ignore[method-assign]
    return sizes


async def test_calls_started_together_go_out_in_one_write() -> None:
    (server,) = await start_greeters(1)
    channel = Channel.dial(str(server.address), "pick_first")
    try:
        await channel.wait_for_state(ConnectivityState.READY, timeout=5)
        await greet(channel)  # warm: the HPACK table holds the headers
        conn = channel.subchannels[0].connection
        assert conn is not None
        writes = _count_writes(conn)

        results = await asyncio.wait_for(asyncio.gather(*(greet(channel, f"user{i}") for i in range(32))), 10)
        assert [r.response.message for r in results] == [f"Hello, user{i}!" for i in range(32)]
        # 32 requests, started in one loop turn: one send() for the lot, not one each (it was 32).
        assert len(writes) <= 2, f"32 calls took {len(writes)} writes: {writes}"

        writes.clear()
        result = await asyncio.wait_for(greet(channel, "Ada"), 5)
        assert result.response.message == "Hello, Ada!"
        assert len(writes) == 1  # a lone call is written at once, in its own turn
    finally:
        await channel.close(grace=0)
        await server.stop(grace=0)


async def test_a_handler_streaming_messages_writes_them_together() -> None:
    """100 messages yielded without a pause go out in a few writes, not one each (it was 101)."""

    async def count(request: bytes, context: ServicerContext) -> AsyncIterator[bytes]:
        await asyncio.sleep(0)  # as a handler that awaits something first: it streams outside the read
        for i in range(int(request)):
            yield str(i).encode()

    server = Server()
    server.add_generic_handler(lambda path: unary_stream(count) if path == COUNT else None)
    address = await server.start("127.0.0.1", 0)
    channel = Channel.dial(str(address), "pick_first")
    try:
        await channel.wait_for_state(ConnectivityState.READY, timeout=5)
        count_call = channel.unary_stream(COUNT)
        assert [m async for m in count_call(b"2")] == [b"0", b"1"]  # warm
        (conn,) = server._connections
        writes = _count_writes(conn)
        received = [m async for m in count_call(b"100")]
        assert received == [str(i).encode() for i in range(100)]
        assert len(writes) <= 4, f"100 messages took {len(writes)} writes: {writes}"
    finally:
        await channel.close(grace=0)
        await server.stop(grace=0)


async def test_a_flush_with_nothing_queued_does_not_hold_back_the_next_write() -> None:
    """A reader giving back window (nothing to send yet) must not make the turn's first real write wait."""
    (server,) = await start_greeters(1)
    channel = Channel.dial(str(server.address), "pick_first")
    try:
        await channel.wait_for_state(ConnectivityState.READY, timeout=5)
        conn = channel.subchannels[0].connection
        assert conn is not None
        await asyncio.sleep(0.05)  # past the turn of the handshake's writes
        writes = _count_writes(conn)
        conn.schedule_flush()  # nothing queued: nothing written
        assert writes == []
        conn.h2.ping(b"12345678")
        conn.schedule_flush()
        assert len(writes) == 1, "the PING waited for the end of the loop turn"
    finally:
        await channel.close(grace=0)
        await server.stop(grace=0)
