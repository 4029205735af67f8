"""The Greeter's client stub: the generated one, plus the call the app fires."""

from __future__ import annotations

from typing import Any

from app.greeter import helloworld_rpcviz
from app.greeter.helloworld_pb2 import HelloRequest
from transport import UnaryResult
from transport.server import SERVER_NAME_KEY


class GreeterStub(helloworld_rpcviz.GreeterStub):
    """The generated stub (``self.SayHello``) with ``say_hello(name)``, which answers with its call."""

    async def say_hello(self, name: str, **kwargs: Any) -> UnaryResult:
        """greet(name): the call the scene fires, with where it landed."""
        return await self.SayHello.with_call(HelloRequest(name=name), **kwargs)


def server_name(result: UnaryResult) -> str | None:
    """The name of the server that answered, from its response metadata."""
    value = result.metadata_value(SERVER_NAME_KEY)
    return value if isinstance(value, str) else None
