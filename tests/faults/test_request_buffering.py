"""A method that takes one request message refuses a second one at once instead of buffering the stream."""

from __future__ import annotations

import asyncio

from app.greeter.helloworld_pb2 import HelloRequest
from app.greeter.service import Greeter
from tests.faults.rawclient import RawH2Client, grpc_message, request_headers
from tests.helpers import FAST, greet
from transport import Channel, Server, StatusCode


async def test_a_second_request_message_on_a_unary_call_is_internal_at_once() -> None:
    """20,000 x 1 KB messages on one never-ended SayHello stream: INTERNAL after the second, nothing buffered."""
    server = Server(name="one")
    server.add_service(Greeter())
    await server.start()
    client = await RawH2Client.connect(server.port)
    try:
        client.send_headers(1, request_headers(b"/helloworld.Greeter/SayHello"))
        message = grpc_message(HelloRequest(name="x" * 1000).SerializeToString())
        for start in range(0, 20_000, 16):  # 16 messages per DATA frame, under the 16 KiB frame limit
            client.send_data(1, message * 16)
            await client.drain()
            if any(getattr(f, "stream_id", 0) == 1 for f in client.received):
                break
            await client.read_idle(0.001)
        result = await client.stream_result(1, timeout=5)
        assert result.grpc_status == StatusCode.INTERNAL, result
        assert "more than one" in result.grpc_message
        assert server.stats.calls_in_flight == 0
        # The connection itself is fine: the next call on it is answered.
        client.send_request(3, b"/helloworld.Greeter/SayHello", HelloRequest(name="Ada").SerializeToString())
        assert (await client.stream_result(3, timeout=5)).grpc_status == StatusCode.OK
    finally:
        client.abort()
        await server.stop(grace=0.5)


async def test_a_unary_call_with_one_message_split_over_many_frames_still_works() -> None:
    """The check counts messages, not frames: one 3 MiB request over many DATA frames is answered."""
    server = Server(name="one")
    server.add_service(Greeter())
    await server.start()
    try:
        async with Channel.dial(str(server.address), options=FAST) as channel:
            result = await asyncio.wait_for(greet(channel, "y" * (3 * 1024 * 1024), timeout=10), 15)
        assert result.response.message.startswith("Hello, yyy")
    finally:
        await server.stop(grace=0.5)
