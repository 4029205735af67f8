"""The Greeter service: ``helloworld.Greeter/SayHello``, served by every pod."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from app.greeter.helloworld_pb2 import HelloReply, HelloRequest
from transport.server import MethodHandler, ServerCall, unary_unary

SAY_HELLO = "/helloworld.Greeter/SayHello"


class Greeter:
    """Answers ``Hello, <name>!``. ``work`` (optional) runs before answering,
    which is where a pod's load model spends its service time."""

    def __init__(self, work: Callable[[], Awaitable[None]] | None = None) -> None:
        self._work = work

    async def say_hello(self, request: HelloRequest, context: ServerCall) -> HelloReply:
        if self._work is not None:
            await self._work()
        return HelloReply(message=f"Hello, {request.name}!")

    def method_handlers(self) -> Mapping[str, MethodHandler]:
        return {
            SAY_HELLO: unary_unary(
                self.say_hello,
                HelloRequest.FromString,
                HelloReply.SerializeToString,
            )
        }
