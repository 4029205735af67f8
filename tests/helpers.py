"""Shared test helpers: real servers on 127.0.0.1, fast backoff, bounded waits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from app.greeter.helloworld_pb2 import HelloReply, HelloRequest
from app.greeter.service import SAY_HELLO, Greeter
from transport import BackoffConfig, Channel, ChannelOptions, Server, UnaryResult

#: A unary gRPC request's HTTP/2 headers, for tests that drive h2 connections in memory.
REQUEST_HEADERS = [
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":path", b"/helloworld.Greeter/SayHello"),
    (b":authority", b"127.0.0.1:50051"),
    (b"te", b"trailers"),
    (b"content-type", b"application/grpc"),
]

#: Backoff small enough that reconnect tests take milliseconds.
FAST_BACKOFF = BackoffConfig(base_delay=0.05, multiplier=1.6, jitter=0.2, max_delay=0.5, min_connect_timeout=1.0)
FAST = ChannelOptions(backoff=FAST_BACKOFF, seed=7)


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    """Poll ``condition`` every few ms until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.005)


async def start_greeters(n: int) -> list[Server]:
    servers = []
    for i in range(n):
        server = Server(name=f"pod-{i + 1}")
        server.add_service(Greeter())
        await server.start("127.0.0.1", 0)
        servers.append(server)
    return servers


def ipv4_target(servers: list[Server]) -> str:
    return "ipv4:" + ",".join(str(s.address) for s in servers)


async def greet(channel: Channel, name: str = "Ada", **kwargs: Any) -> UnaryResult:
    say_hello = channel.unary_unary(
        SAY_HELLO, request_serializer=HelloRequest.SerializeToString, response_deserializer=HelloReply.FromString
    )
    return await say_hello.with_call(HelloRequest(name=name), **kwargs)


def served_by(result: UnaryResult) -> str:
    value = result.metadata_value("rpcviz-server")
    assert isinstance(value, str)
    return value
