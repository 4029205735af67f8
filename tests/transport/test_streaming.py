"""All four call types on one stream API, end to end on 127.0.0.1: our Channel against our Server.

Each cardinality gets messages, metadata, status, deadlines and cancellation;
flow control is checked with a reader that does not read (the stream must hold
no more than its window); a generic handler forwards any method as raw bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.helpers import FAST, wait_until
from transport import (
    EOF,
    Channel,
    ChannelOptions,
    RpcError,
    Server,
    ServerOptions,
    ServicerContext,
    StatusCode,
    stream_stream,
    stream_unary,
    unary_stream,
    unary_unary,
)
from transport.client.interceptors import CallDetails, Invoker
from transport.server import MethodHandler

COUNT = "/test.S/Count"  # unary_stream: b"n" -> n messages b"0".."n-1"
SUM = "/test.S/Sum"  # stream_unary: the sum of the requests' lengths
ECHO = "/test.S/Echo"  # stream_stream: each request back, upper-cased
SLOW_STREAM = "/test.S/SlowStream"
FAIL_AFTER = "/test.S/FailAfter"  # unary_stream: 3 messages, then NOT_FOUND
FLOOD = "/test.S/Flood"  # unary_stream: as many 16 KiB messages as it may
HOARD = "/test.S/Hoard"  # stream_unary: waits, reading nothing, until released
MiB = 1024 * 1024


class Probe:
    def __init__(self) -> None:
        self.cancelled = asyncio.Event()
        self.metadata: list[Any] = []
        self.flood_sent = 0
        self.release = asyncio.Event()


def service(probe: Probe) -> dict[str, MethodHandler]:
    async def count(request: bytes, context: ServicerContext) -> AsyncIterator[bytes]:
        probe.metadata.append(tuple(context.invocation_metadata()))
        await context.send_initial_metadata([("stream-key", "sv")])
        context.set_trailing_metadata([("done-key", "dv")])
        for i in range(int(request)):
            yield str(i).encode()

    async def total(requests: AsyncIterator[bytes], context: ServicerContext) -> bytes:
        probe.metadata.append(tuple(context.invocation_metadata()))
        n = 0
        async for request in requests:
            n += len(request)
        return str(n).encode()

    async def echo(requests: AsyncIterator[bytes], context: ServicerContext) -> AsyncIterator[bytes]:
        probe.metadata.append(tuple(context.invocation_metadata()))
        async for request in requests:
            yield request.upper()

    async def slow(request: bytes, context: ServicerContext) -> AsyncIterator[bytes]:
        yield b"first"
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            probe.cancelled.set()
            raise
        yield b"late"

    async def fail_after(request: bytes, context: ServicerContext) -> AsyncIterator[bytes]:
        for i in range(3):
            yield b"%d" % i
        context.abort(StatusCode.NOT_FOUND, "no more ✗", (("why-bin", b"\x00\x01"),))

    async def flood(request: bytes, context: ServicerContext) -> None:
        chunk = b"f" * (16 * 1024)
        for _ in range(640):  # 10 MiB
            await context.write(chunk)
            probe.flood_sent += 1

    async def hoard(requests: AsyncIterator[bytes], context: ServicerContext) -> bytes:
        await probe.release.wait()
        n = 0
        async for request in requests:
            n += len(request)
        return str(n).encode()

    return {
        COUNT: unary_stream(count),
        SUM: stream_unary(total),
        ECHO: stream_stream(echo),
        SLOW_STREAM: unary_stream(slow),
        FAIL_AFTER: unary_stream(fail_after),
        FLOOD: unary_stream(flood),
        HOARD: stream_unary(hoard),
    }


@pytest.fixture
async def env() -> AsyncIterator[tuple[Server, Probe, Channel]]:
    probe = Probe()
    server = Server(name="streams")
    server.add_service(service(probe))
    await server.start()
    channel = Channel(str(server.address), options=FAST)
    yield server, probe, channel
    await channel.close(grace=0)
    await server.stop(grace=0.5)


async def test_server_streaming_messages_metadata_and_status(env: tuple[Server, Probe, Channel]) -> None:
    _, _, channel = env
    call = channel.unary_stream(COUNT)(b"100", timeout=5, metadata=(("x-who", "ada"),))
    assert ("stream-key", "sv") in await call.initial_metadata()
    got = [message async for message in call]
    assert got == [str(i).encode() for i in range(100)]
    assert await call.code() is StatusCode.OK
    assert ("done-key", "dv") in await call.trailing_metadata()
    assert await call.details() == ""


async def test_server_streaming_read_until_eof(env: tuple[Server, Probe, Channel]) -> None:
    _, _, channel = env
    call = channel.unary_stream(COUNT)(b"3", timeout=5)
    assert [await call.read() for _ in range(4)] == [b"0", b"1", b"2", EOF]


async def test_client_streaming_with_write_and_with_iterators(env: tuple[Server, Probe, Channel]) -> None:
    _, _, channel = env
    total = channel.stream_unary(SUM)
    call = total(timeout=5)
    for chunk in (b"ab", b"cde", b""):
        await call.write(chunk)
    await call.done_writing()
    assert await call == b"5"

    assert await total(iter([b"x" * 10, b"y" * 20]), timeout=5) == b"30"

    async def requests() -> AsyncIterator[bytes]:
        for _ in range(50):
            yield b"z" * 100

    assert await total(requests(), timeout=5) == b"5000"
    assert await total(iter([]), timeout=5) == b"0"


async def test_bidi_ping_pong(env: tuple[Server, Probe, Channel]) -> None:
    """Each write is answered before the next: the handler reads and writes in any order."""
    _, _, channel = env
    call = channel.stream_stream(ECHO)(timeout=5)
    for word in (b"ping", b"pong", b"again"):
        await call.write(word)
        assert await call.read() == word.upper()
    await call.done_writing()
    assert await call.read() is EOF
    assert await call.code() is StatusCode.OK


async def test_bidi_with_a_request_iterator(env: tuple[Server, Probe, Channel]) -> None:
    _, _, channel = env
    call = channel.stream_stream(ECHO)(iter([b"a", b"b", b"c"]), timeout=5)
    assert [m async for m in call] == [b"A", b"B", b"C"]


async def test_error_after_messages_reaches_the_reader_with_its_details(env: tuple[Server, Probe, Channel]) -> None:
    _, _, channel = env
    call = channel.unary_stream(FAIL_AFTER)(b"", timeout=5)
    got = []
    with pytest.raises(RpcError) as info:
        async for message in call:
            got.append(message)
    assert got == [b"0", b"1", b"2"]
    assert (info.value.code, info.value.details) == (StatusCode.NOT_FOUND, "no more ✗")
    assert ("why-bin", b"\x00\x01") in info.value.trailing_metadata
    assert await call.code() is StatusCode.NOT_FOUND


@pytest.mark.parametrize("kind", ["unary_stream", "stream_unary", "stream_stream"])
async def test_deadline_ends_every_cardinality(env: tuple[Server, Probe, Channel], kind: str) -> None:
    server, probe, channel = env
    with pytest.raises(RpcError) as info:
        if kind == "unary_stream":
            async for _ in channel.unary_stream(SLOW_STREAM)(b"", timeout=0.3):
                pass
        elif kind == "stream_unary":
            call = channel.stream_unary(HOARD)(timeout=0.3)
            await call.write(b"x")
            await call
        else:
            call = channel.stream_stream(ECHO)(timeout=0.3)
            await call.write(b"x")
            assert await call.read() == b"X"
            await call.read()  # the client never ends its requests: the deadline ends the call
    assert info.value.code is StatusCode.DEADLINE_EXCEEDED
    await wait_until(lambda: server.stats.calls_in_flight == 0, 3, "the server to end the call")
    if kind == "unary_stream":
        await asyncio.wait_for(probe.cancelled.wait(), 3)  # the handler saw the cancellation


async def test_cancel_mid_stream_cancels_the_handler(env: tuple[Server, Probe, Channel]) -> None:
    server, probe, channel = env
    call = channel.unary_stream(SLOW_STREAM)(b"", timeout=10)
    assert await call.read() == b"first"
    assert call.cancel()
    assert call.cancelled()
    assert await call.code() is StatusCode.CANCELLED
    await asyncio.wait_for(probe.cancelled.wait(), 3)
    await wait_until(lambda: server.stats.calls_in_flight == 0, 3, "the server to end the call")
    assert channel.stats.calls_in_flight == 0


async def test_a_client_that_does_not_read_holds_at_most_its_window(env: tuple[Server, Probe, Channel]) -> None:
    """10 MiB offered in 16 KiB messages to a reader that waits: the server is held back by flow control
    (the client acknowledges only what it takes), then everything arrives once the reader reads."""
    server, probe, _ = env
    window = 256 * 1024
    async with Channel(str(server.address), options=ChannelOptions(window_size=window)) as channel:
        call = channel.unary_stream(FLOOD)(b"", timeout=20)
        assert await call.read() == b"f" * 16 * 1024
        await asyncio.sleep(0.3)  # give the server every chance to overrun the window
        held = probe.flood_sent * 16 * 1024
        assert held <= window + 3 * 16 * 1024, f"the server sent {held} bytes to a reader holding a {window} window"
        rest = [m async for m in call]
        assert len(rest) == 639


async def test_a_handler_that_does_not_read_holds_at_most_its_window() -> None:
    """The same on the server: a client writing to a handler that reads nothing blocks after the window."""
    probe = Probe()
    server = Server(name="hoard", options=ServerOptions(window_size=128 * 1024))
    server.add_service(service(probe))
    await server.start()
    try:
        async with Channel(str(server.address), options=FAST) as channel:
            call = channel.stream_unary(HOARD)(timeout=20)
            written = 0

            async def writer() -> None:
                nonlocal written
                for _ in range(100):  # 1.6 MiB
                    await call.write(b"w" * 16 * 1024)
                    written += 16 * 1024
                await call.done_writing()

            task = asyncio.ensure_future(writer())
            await asyncio.sleep(0.3)
            assert written <= 128 * 1024 + 2 * 16 * 1024, f"{written} bytes written to a handler that reads nothing"
            probe.release.set()
            await asyncio.wait_for(task, 10)
            assert await call == str(100 * 16 * 1024).encode()
    finally:
        await server.stop(grace=0.5)


async def test_generic_handler_forwards_any_method_as_raw_bytes() -> None:
    seen: list[str] = []

    def lookup(path: str) -> MethodHandler | None:
        if not path.startswith("/any."):
            return None

        async def echo(requests: AsyncIterator[bytes], context: ServicerContext) -> AsyncIterator[bytes]:
            seen.append(path)
            async for request in requests:
                yield request

        return stream_stream(echo)

    server = Server(name="generic")
    server.add_generic_handler(lookup)
    await server.start()
    try:
        async with Channel(str(server.address), options=FAST) as channel:
            call = channel.stream_stream("/any.Thing/Whatever")(iter([b"\x00\x01", b"raw"]), timeout=5)
            assert [m async for m in call] == [b"\x00\x01", b"raw"]
            with pytest.raises(RpcError) as info:
                await channel.unary_unary("/other.S/M")(b"", timeout=5)
            assert info.value.code is StatusCode.UNIMPLEMENTED
        assert seen == ["/any.Thing/Whatever"]
    finally:
        await server.stop(grace=0.5)


async def test_interceptors_wrap_every_cardinality(env: tuple[Server, Probe, Channel]) -> None:
    server, probe, _ = env
    ended: list[tuple[str, StatusCode]] = []

    async def tag(details: CallDetails, call: Any, invoke: Invoker) -> None:
        details.metadata = (*details.metadata, ("x-tag", "t"))
        call.add_done_callback(lambda c: ended.append((details.method, c._error.code if c._error else StatusCode.OK)))
        await invoke(details)

    async with Channel(str(server.address), options=FAST, interceptors=[tag]) as channel:
        assert [m async for m in channel.unary_stream(COUNT)(b"2", timeout=5)] == [b"0", b"1"]
        assert await channel.stream_unary(SUM)(iter([b"abc"]), timeout=5) == b"3"
        assert [m async for m in channel.stream_stream(ECHO)(iter([b"q"]), timeout=5)] == [b"Q"]
        with pytest.raises(RpcError):
            async for _ in channel.unary_stream(FAIL_AFTER)(b"", timeout=5):
                pass
    assert all(("x-tag", "t") in md for md in probe.metadata)
    assert ended == [
        (COUNT, StatusCode.OK),
        (SUM, StatusCode.OK),
        (ECHO, StatusCode.OK),
        (FAIL_AFTER, StatusCode.NOT_FOUND),
    ]


async def test_every_call_ends_exactly_once_in_the_channel_counters(env: tuple[Server, Probe, Channel]) -> None:
    _, _, channel = env
    await channel.unary_stream(COUNT)(b"1", timeout=5).read()  # read one, then drop it
    async for _ in channel.unary_stream(COUNT)(b"2", timeout=5):
        pass
    with pytest.raises(RpcError):
        await channel.unary_unary("/test.S/Missing")(b"", timeout=5)
    call = channel.unary_stream(SLOW_STREAM)(b"", timeout=10)
    await call.read()
    call.cancel()
    stats = channel.stats
    await wait_until(lambda: stats.calls_in_flight <= 1, 3, "calls to end")
    assert stats.calls_started == stats.calls_succeeded + stats.calls_failed + stats.calls_in_flight
    assert stats.status_counts().get("UNIMPLEMENTED") == 1
    assert stats.status_counts().get("CANCELLED") == 1


async def test_unary_call_object_gives_metadata_before_and_after(env: tuple[Server, Probe, Channel]) -> None:
    """grpc.aio's shape for unary calls: await the call, and ask it for metadata and status."""

    async def meta(request: bytes, context: ServicerContext) -> bytes:
        await context.send_initial_metadata([("k", "v")])
        context.set_trailing_metadata([("t", "w")])
        return request * 2

    server = Server(name="u")
    server.add_method("/test.U/Meta", unary_unary(meta))
    await server.start()
    try:
        async with Channel(str(server.address), options=FAST) as channel:
            call = channel.unary_unary("/test.U/Meta")(b"ab", timeout=5)
            assert ("k", "v") in await call.initial_metadata()
            assert await call == b"abab"
            assert await call == b"abab"  # awaiting again gives the same answer
            assert ("t", "w") in await call.trailing_metadata()
            assert (await call.code(), await call.details()) == (StatusCode.OK, "")
    finally:
        await server.stop(grace=0.5)


async def test_a_call_answered_before_it_finished_sending_frees_its_stream() -> None:
    """A server that answers a client-streaming call early and does not reset it: the call ends OK and the
    client resets its half-open stream (NO_ERROR), so it does not count against the stream limit forever."""
    from tests.transport.test_goaway import start_raw
    from transport.wire import encode_message

    def answer_early(conn: Any, stream_id: int) -> None:
        conn.send_headers(stream_id, [(":status", "200"), ("content-type", "application/grpc")])
        conn.send_data(stream_id, encode_message(b"early"))
        conn.send_headers(stream_id, [("grpc-status", "0")], end_stream=True)

    raw, _ = await start_raw(answer_early)
    port = raw.sockets[0].getsockname()[1]
    try:
        async with Channel(f"127.0.0.1:{port}", options=FAST) as channel:
            call = channel.stream_unary("/test.S/Early")(timeout=5)
            await call.write(b"x")
            assert await call == b"early"
            conn = channel.subchannels[0].connection
            assert conn is not None
            await wait_until(lambda: conn.h2.open_outbound_streams == 0, 2, "the half-open stream to be freed")
    finally:
        raw.close()


async def test_a_refused_streaming_call_is_retried_and_read_even_past_the_window() -> None:
    """REFUSED_STREAM on the first pick: the call is retried transparently on the other backend, and its
    streamed responses (10 MiB, far past a 256 KiB window) are read as they come, not awaited whole."""
    from h2.errors import ErrorCodes

    from tests.transport.test_goaway import start_raw

    def refuse(conn: Any, stream_id: int) -> None:
        conn.reset_stream(stream_id, ErrorCodes.REFUSED_STREAM)

    raw, refused = await start_raw(refuse)
    probe = Probe()
    server = Server(name="streams")
    server.add_service(service(probe))
    await server.start()
    raw_port = raw.sockets[0].getsockname()[1]
    options = ChannelOptions(backoff=FAST.backoff, seed=7, window_size=256 * 1024)
    try:
        async with Channel(f"ipv4:127.0.0.1:{raw_port},{server.address}", "round_robin", options=options) as channel:
            await wait_until(lambda: sum(sc.state.name == "READY" for sc in channel.subchannels) == 2, 5, "both READY")
            for _ in range(2):  # one of the two lands on the refusing backend first
                got = [m async for m in channel.unary_stream(FLOOD)(b"", timeout=20)]
                assert len(got) == 640
        assert refused, "no call met the refusing backend"
        assert channel.stats.failures() == {}
    finally:
        raw.close()
        await server.stop(grace=0.5)
