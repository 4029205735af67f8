"""A request is routed by its headers once per connection (by the header memo's record of them), and the route
still follows the server's method table and its generic handlers as they change."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.helpers import FAST
from transport import Channel, RpcError, Server, StatusCode
from transport.server.handlers import unary_unary

PATH = "/test.Routing/Echo"


def answering(word: bytes) -> Any:
    async def answer(request: bytes, context: object) -> bytes:
        return word

    return unary_unary(answer)


@contextlib.asynccontextmanager
async def serving(server: Server) -> AsyncIterator[Channel]:
    """``server`` started on 127.0.0.1 and a channel to it; both stopped afterwards."""
    address = await server.start("127.0.0.1", 0)
    channel = Channel.dial(f"ipv4:{address}", "pick_first", options=FAST)
    try:
        yield channel
    finally:
        await channel.close(grace=0)
        await server.stop(grace=0)


async def _calls(channel: Channel, n: int) -> list[bytes]:
    echo = channel.unary_unary(PATH)
    return [await echo(b"x") for _ in range(n)]


async def test_a_replaced_method_answers_from_the_next_call_on() -> None:
    server = Server()
    server.add_method(PATH, answering(b"first"))
    async with serving(server) as channel:
        assert await _calls(channel, 5) == [b"first"] * 5  # the same headers: routed from memory after the first
        conn = next(iter(server._connections))
        assert conn._routes, "the repeated headers were not routed from memory"
        server.add_method(PATH, answering(b"second"))
        assert await _calls(channel, 3) == [b"second"] * 3


async def test_a_generic_handler_is_asked_on_every_call() -> None:
    """A generic handler may answer a path differently each time (a proxy's backends change): not remembered."""
    asked: list[str] = []

    def lookup(path: str) -> Any:
        asked.append(path)
        return answering(str(len(asked)).encode())

    server = Server()
    server.add_generic_handler(lookup)
    async with serving(server) as channel:
        assert await _calls(channel, 4) == [b"1", b"2", b"3", b"4"]
        assert asked == [PATH] * 4


async def test_a_method_removed_from_the_table_is_not_found_any_more() -> None:
    server = Server()
    server.add_method(PATH, answering(b"here"))
    async with serving(server) as channel:
        assert await _calls(channel, 3) == [b"here"] * 3
        del server.methods[PATH]
        echo = channel.unary_unary(PATH)
        with pytest.raises(RpcError) as failed:
            await echo(b"x")
        assert failed.value.code is StatusCode.UNIMPLEMENTED
