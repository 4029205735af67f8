"""A client stub for the Greeter, as grpcio-tools would generate it."""

from __future__ import annotations

from typing import Any

from app.greeter.helloworld_pb2 import HelloReply, HelloRequest
from app.greeter.service import SAY_HELLO
from transport import Channel, UnaryResult
from transport.server import SERVER_NAME_KEY


class GreeterStub:
    def __init__(self, channel: Channel) -> None:
        self.SayHello = channel.unary_unary(SAY_HELLO, HelloRequest.SerializeToString, HelloReply.FromString)

    async def say_hello(self, name: str, **kwargs: Any) -> UnaryResult:
        """greet(name): the call the scene fires, with where it landed."""
        return await self.SayHello.with_call(HelloRequest(name=name), **kwargs)


def server_name(result: UnaryResult) -> str | None:
    """The name of the server that answered, from its response metadata."""
    value = result.metadata_value(SERVER_NAME_KEY)
    return value if isinstance(value, str) else None
