"""The minimal STREAM_STREAM server path (transport/server/streaming.py), driven by grpcio."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from tests.helpers import wait_until
from transport import Server, ServerOptions, StatusCode
from transport.server import ServerCall, stream_stream

ECHO = "/test.Echo/Chat"


class Echo:
    """Answers each request with ``b"re:" + request``; ``b"stop"`` ends the call from the server."""

    def __init__(self) -> None:
        self.running = 0
        self.ended = 0

    async def chat(self, requests: AsyncIterator[bytes], context: ServerCall) -> AsyncIterator[bytes]:
        self.running += 1
        try:
            async for request in requests:
                if request == b"stop":
                    return
                if request == b"fail":
                    context.abort(StatusCode.FAILED_PRECONDITION, "asked to fail")
                yield b"re:" + request
            yield b"bye"
        finally:
            self.running -= 1
            self.ended += 1


@pytest.fixture
async def echo() -> AsyncIterator[tuple[Server, Echo]]:
    service = Echo()
    server = Server(options=ServerOptions(max_receive_message_length=1024))
    server.add_method(ECHO, stream_stream(service.chat))
    await server.start()
    yield server, service
    await server.stop(grace=1)


def _chat(channel: grpc.aio.Channel) -> Any:
    return channel.stream_stream(ECHO)(timeout=10)


async def test_ping_pong_then_client_half_close(echo: tuple[Server, Echo]) -> None:
    server, _ = echo
    async with grpc.aio.insecure_channel(str(server.address)) as channel:
        call = _chat(channel)
        for word in (b"a", b"b", b"c"):
            await call.write(word)
            # Answered before the client half-closes: the handler runs from the headers on.
            assert await call.read() == b"re:" + word
        await call.done_writing()
        assert await call.read() == b"bye"
        assert await call.read() is grpc.aio.EOF
        assert await call.code() == grpc.StatusCode.OK
    assert server.stats.method_ok(ECHO) == 1


async def test_requests_sent_at_once_are_all_answered(echo: tuple[Server, Echo]) -> None:
    server, _ = echo
    async with grpc.aio.insecure_channel(str(server.address)) as channel:
        replies = [r async for r in channel.stream_stream(ECHO)(iter([b"1", b"2", b"3"]), timeout=10)]
    assert replies == [b"re:1", b"re:2", b"re:3", b"bye"]


async def test_server_ends_the_call_first(echo: tuple[Server, Echo]) -> None:
    server, service = echo
    async with grpc.aio.insecure_channel(str(server.address)) as channel:
        call = _chat(channel)
        await call.write(b"stop")
        assert await call.read() is grpc.aio.EOF
        assert await call.code() == grpc.StatusCode.OK
        failing = _chat(channel)
        await failing.write(b"fail")
        assert await failing.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert await failing.details() == "asked to fail"
    assert service.ended == 2


async def test_call_ended_from_outside_stops_the_waiting_handler(echo: tuple[Server, Echo]) -> None:
    """An oversized request message fails the call at the connection while the handler waits
    for the next request: the handler is cancelled, not left waiting forever."""
    server, service = echo
    async with grpc.aio.insecure_channel(str(server.address)) as channel:
        call = _chat(channel)
        await call.write(b"x")
        assert await call.read() == b"re:x"
        await call.write(b"y" * 2048)  # over max_receive_message_length=1024
        assert await call.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    await wait_until(lambda: service.running == 0, what="the handler to end")
    assert service.ended == 1
    assert server.stats.calls_in_flight == 0


async def test_client_cancel_ends_the_handler(echo: tuple[Server, Echo]) -> None:
    server, service = echo
    async with grpc.aio.insecure_channel(str(server.address)) as channel:
        call = _chat(channel)
        await call.write(b"x")
        assert await call.read() == b"re:x"
        call.cancel()
        await wait_until(lambda: service.ended == 1, what="the handler to end")
    await wait_until(lambda: server.stats.calls_in_flight == 0, what="the call to be counted")
    assert server.stats.calls_by_status[StatusCode.CANCELLED] == 1


async def test_stop_waits_for_an_open_stream_then_cancels_it(echo: tuple[Server, Echo]) -> None:
    server, service = echo
    async with grpc.aio.insecure_channel(str(server.address)) as channel:
        call = _chat(channel)
        await call.write(b"x")
        assert await call.read() == b"re:x"
        await asyncio.wait_for(server.stop(grace=0.2), 5)
        assert service.running == 0
        assert await call.code() == grpc.StatusCode.UNAVAILABLE
