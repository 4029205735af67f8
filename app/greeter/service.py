"""The Greeter service: ``helloworld.Greeter/SayHello``, served by every pod."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from app.greeter.helloworld_pb2 import HelloReply, HelloRequest
from app.greeter.helloworld_rpcviz import GREETER_SAY_HELLO, GreeterServicer
from transport.server import ServicerContext

SAY_HELLO = GREETER_SAY_HELLO


class Greeter(GreeterServicer):
    """Answers ``Hello, <name>!``. ``work`` (optional) runs before answering,
    which is where a pod's load model spends its service time."""

    def __init__(self, work: Callable[[], Awaitable[None]] | None = None) -> None:
        self._work = work

    async def SayHello(self, request: HelloRequest, context: ServicerContext) -> HelloReply:
        if self._work is not None:
            await self._work()
        return HelloReply(message=f"Hello, {request.name}!")
