"""Window given back in batches: a reader taking messages one by one hands h2 its acknowledgements a
batch at a time (h2 sends WINDOW_UPDATE only after half the window anyway), and never stalls the peer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from transport import Channel, ChannelOptions, ConnectivityState, Server, ServicerContext, unary_stream
from transport.http2.connection import GrpcH2Connection

COUNT = "/test.S/Count"  # unary_stream: b"n" -> n messages of 1 KiB


@pytest.mark.parametrize("window", [65_535, 1024 * 1024])
async def test_a_long_stream_flows_with_batched_acks(window: int, monkeypatch: pytest.MonkeyPatch) -> None:
    async def count(request: bytes, context: ServicerContext) -> AsyncIterator[bytes]:
        for i in range(int(request)):
            yield i.to_bytes(4, "big") * 256

    server = Server()
    server.add_generic_handler(lambda path: unary_stream(count) if path == COUNT else None)
    address = await server.start("127.0.0.1", 0)
    channel = Channel.dial(str(address), "pick_first", options=ChannelOptions(window_size=window))
    acks = 0
    real = GrpcH2Connection.acknowledge_stream_data

    def counting(self: GrpcH2Connection, stream_id: int, size: int) -> None:
        nonlocal acks
        acks += 1
        real(self, stream_id, size)

    monkeypatch.setattr(GrpcH2Connection, "acknowledge_stream_data", counting)
    try:
        await channel.wait_for_state(ConnectivityState.READY, timeout=5)
        messages = 0
        async with asyncio.timeout(20):  # 2 MiB through a 64 KiB window: a stall would hang here
            async for message in channel.unary_stream(COUNT)(b"2048"):
                assert message == messages.to_bytes(4, "big") * 256
                messages += 1
        assert messages == 2048
        # One acknowledgement per message before (2,048); now one per window/16 of messages taken.
        assert acks <= 2048 * 1029 // (window // 16) + 64, f"{acks} acknowledgements for 2,048 messages"
    finally:
        await channel.close(grace=0)
        await server.stop(grace=0)
