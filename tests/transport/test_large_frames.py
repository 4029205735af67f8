"""Large frames: we advertise SETTINGS_MAX_FRAME_SIZE of 256 KiB, read a large DATA frame straight into a
buffer of its own, and hand its payload on as a view; messages come out whole and exact, however the
socket splits the bytes and whatever else shares the connection."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest

from transport import Channel, ConnectivityState, Server, ServicerContext, stream_stream, unary_unary
from transport.http2 import DEFAULT_MAX_FRAME_SIZE, H2Protocol
from transport.http2.frame_buffer import BoundedFrameBuffer, LargeFrame

ECHO = "/test.Big/Echo"
CHAT = "/test.Big/Chat"
MIB = 1024 * 1024


async def _echo(request: bytes, context: ServicerContext) -> bytes:
    return request


async def _chat(requests: AsyncIterator[bytes], context: ServicerContext) -> AsyncIterator[bytes]:
    async for request in requests:
        yield request[::-1]


async def _serve() -> tuple[Server, Channel]:
    server = Server()
    server.add_generic_handler(
        lambda path: unary_unary(_echo) if path == ECHO else stream_stream(_chat) if path == CHAT else None
    )
    address = await server.start("127.0.0.1", 0)
    channel = Channel.dial(str(address), "pick_first")
    await channel.wait_for_state(ConnectivityState.READY, timeout=5)
    return server, channel


async def _mixed_traffic(channel: Channel, seed: int) -> None:
    """Large and small echoes and a bidi stream of 300 KiB messages, all at once on one connection."""
    rng = random.Random(seed)
    echo = channel.unary_unary(ECHO)
    bodies = [rng.randbytes(n) for n in (3 * MIB, MIB + 7, 300_000, DEFAULT_MAX_FRAME_SIZE - 5, 1)]
    bodies += [rng.randbytes(rng.randrange(0, 200)) for _ in range(40)]

    async def one(body: bytes) -> None:
        assert await echo(body, timeout=30) == body

    async def chat() -> None:
        call = channel.stream_stream(CHAT)()
        for i in range(12):
            message = rng.randbytes(300_000 + i)
            await call.write(message)
            assert await call.read() == message[::-1]
        await call.done_writing()

    async with asyncio.timeout(60):
        await asyncio.gather(*(one(b) for b in bodies), chat())


async def test_large_and_small_messages_share_a_connection_and_arrive_exact() -> None:
    server, channel = await _serve()
    try:
        await _mixed_traffic(channel, 1)
    finally:
        await channel.close(grace=0)
        await server.stop(grace=0)


@pytest.mark.parametrize("seed", [2, 3])
async def test_any_read_boundaries(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every read capped at a random size (1 byte to 100 KiB), as a slow or busy socket would split them."""
    rng = random.Random(seed)
    real = H2Protocol.get_buffer

    def capped(self: H2Protocol, sizehint: int) -> memoryview:
        return real(self, sizehint)[: rng.choice((1, 9, 10, 4096, 65_536, 100_000, rng.randrange(1, 70_000)))]

    monkeypatch.setattr(H2Protocol, "get_buffer", capped)
    server, channel = await _serve()
    try:
        await _mixed_traffic(channel, seed)
    finally:
        await channel.close(grace=0)
        await server.stop(grace=0)


async def test_a_large_frame_is_read_into_its_own_buffer_not_copied_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 4 MiB echo: of the 8 MiB received (both sides), only each large frame's first read (64 KiB of its
    256 KiB, which says how large it is) is copied into a frame buffer; the rest is read into the frame's
    own buffer, adopted whole (before: every byte was copied in, read by read, as the buffer regrew)."""
    copied = adopted = 0
    real = BoundedFrameBuffer.add_data

    def counting(self: BoundedFrameBuffer, data: bytes) -> None:
        nonlocal copied, adopted
        if type(data) is LargeFrame:
            adopted += len(data)
        else:
            copied += len(data)
        real(self, data)

    monkeypatch.setattr(BoundedFrameBuffer, "add_data", counting)
    server, channel = await _serve()
    try:
        body = random.Random(4).randbytes(4 * MIB)
        assert await channel.unary_unary(ECHO)(body, timeout=30) == body
    finally:
        await channel.close(grace=0)
        await server.stop(grace=0)
    assert adopted >= 2 * 4 * MIB, (adopted, copied)
    assert copied <= 2 * 4 * MIB * 0.3, f"{copied:,} bytes copied into frame buffers for 8 MiB received"
