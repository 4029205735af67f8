"""Large frames: we advertise SETTINGS_MAX_FRAME_SIZE of 1 MiB, read a large DATA frame straight into a
buffer of its own (a spare one when nothing refers to it any more), and hand its payload on as a view;
messages come out whole and exact, however the socket splits the bytes and whatever else shares the
connection."""

from __future__ import annotations

import asyncio
import random
import weakref
from collections.abc import AsyncIterator

import pytest

from transport import Channel, ConnectivityState, Server, ServicerContext, stream_stream, unary_unary
from transport.http2 import DEFAULT_MAX_FRAME_SIZE, H2Protocol, frame_buffer
from transport.http2.frame_buffer import SPARE_FRAMES, BoundedFrameBuffer, LargeFrame, large_frame

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
    """A 4 MiB echo: of the 8 MiB received (both sides), only each large frame's first reads (a quarter of
    it, which says how large it is) are copied into a frame buffer; the rest is read into the frame's
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


def test_a_spare_frame_is_reused_only_once_nothing_refers_to_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A frame's payload goes on as views of its buffer: while any view (or anything) refers to it, a
    buffer of the same size is a new one; once nothing does, the spare comes back. A size no free spare has
    is a new buffer in place of a free spare; the spares stay at most ``SPARE_FRAMES``, whatever comes."""
    monkeypatch.setattr(frame_buffer, "_spare", [])
    first = large_frame(100_009)
    view = memoryview(first)[9:]  # as a payload goes on
    was_first = weakref.ref(first)
    del first
    second = large_frame(100_009)
    assert second is not was_first()  # a view of the first is alive: never handed out again
    view.release()
    assert large_frame(100_009) is was_first()  # nothing refers to it now: it comes back
    assert large_frame(100_009) is was_first()  # (and again: the caller let go of it)
    other = large_frame(100_010)  # no free spare of that size: a new buffer, in the first one's place
    assert was_first() is None and other in frame_buffer._spare
    sizes = [300_000 + i for i in range(3 * SPARE_FRAMES)]
    kept = [large_frame(n) for n in sizes]  # all alive at once: no spare is free, none more is kept
    assert [len(f) for f in kept] == sizes
    assert len(frame_buffer._spare) == SPARE_FRAMES
    assert second in frame_buffer._spare and other in frame_buffer._spare  # (alive: never replaced)


async def test_large_messages_reuse_spare_frames_and_arrive_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forty 1 MiB echoes, four at a time, then large and small messages and a bidi stream of large ones
    together: large frames are read into spare buffers (frame sizes follow the windows, so not every one
    finds a spare of its size), and every message comes back exact (a spare handed out while a view of it
    was alive would show here as a corrupted echo)."""
    made = 0

    class Counted(LargeFrame):
        def __init__(self, size: int) -> None:
            nonlocal made
            made += 1
            super().__init__(size)

    monkeypatch.setattr(frame_buffer, "LargeFrame", Counted)
    monkeypatch.setattr(frame_buffer, "_spare", [])
    asked = 0
    real = frame_buffer.large_frame

    def counting(size: int) -> LargeFrame:
        nonlocal asked
        asked += 1
        return real(size)

    monkeypatch.setattr(frame_buffer, "large_frame", counting)
    server, channel = await _serve()
    rng = random.Random(9)
    bodies = [rng.randbytes(MIB + rng.randrange(0, 1000)) for _ in range(40)]
    try:
        echo = channel.unary_unary(ECHO)
        limit = asyncio.Semaphore(4)

        async def one(body: bytes) -> bytes:
            async with limit:
                return await echo(body, timeout=30)  # type: ignore[no-any-return]

        async with asyncio.timeout(60):
            answers = await asyncio.gather(*(one(b) for b in bodies))
        echoes_asked, echoes_made = asked, made
        await _mixed_traffic(channel, 10)  # (other sizes, and messages held across frames)
    finally:
        await channel.close(grace=0)
        await server.stop(grace=0)
    assert answers == bodies
    assert echoes_asked >= 80, echoes_asked  # each 1 MiB message is at least one large frame each way
    assert echoes_made < echoes_asked * 0.9, f"{echoes_made} new frame buffers for {echoes_asked} large frames"
