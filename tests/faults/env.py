"""What every fault test's environment shares: servers and raw clients it cleans up, and what went
wrong unseen (the loop's exception handler, ERROR log records)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from tests.faults.rawclient import RawH2Client
from tests.helpers import FAST, greet
from transport import Channel, Server


class FaultEnv:
    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog
        self.servers: list[Server] = []
        self.clients: list[RawH2Client] = []
        self.loop_errors: list[dict[str, Any]] = []
        loop = asyncio.get_running_loop()
        self._old_handler = loop.get_exception_handler()
        loop.set_exception_handler(lambda _loop, ctx: self.loop_errors.append(ctx))

    def unseen_errors(self) -> list[str]:
        errors = [f"loop exception handler: {ctx.get('message')} {ctx.get('exception')!r}" for ctx in self.loop_errors]
        errors += [
            f"log {r.name} {r.levelname}: {r.getMessage()}" for r in self.caplog.records if r.levelno >= logging.ERROR
        ]
        return errors

    async def assert_serves(self, server: Server) -> None:
        """A normal SayHello on a fresh connection succeeds, and nothing blew up unseen."""
        async with Channel(f"ipv4:{server.address}", options=FAST) as channel:
            result = await asyncio.wait_for(greet(channel, "Ada", timeout=2.0), 3)
        assert result.response.message == "Hello, Ada!"
        assert self.unseen_errors() == []

    async def close(self) -> None:
        for client in self.clients:
            client.abort()
        for server in self.servers:
            await server.stop(grace=0.5)
        asyncio.get_running_loop().set_exception_handler(self._old_handler)
