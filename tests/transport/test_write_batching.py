"""The client writes the calls started in one loop turn together, and a lone call at once."""

from __future__ import annotations

import asyncio

from tests.helpers import greet, start_greeters
from transport import Channel, ConnectivityState
from transport.client.connection import ClientConnection


def _count_writes(conn: ClientConnection) -> list[int]:
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
