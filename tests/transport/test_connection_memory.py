"""What an idle connection costs the server, and that connections sharing one receive buffer keep their bytes apart.

The memory test opens real connections from another process (so that only the server's side is in
this process's tracemalloc) and measures what 200 more idle connections add. Each finished its
HTTP/2 handshake as a gRPC client does (preface, SETTINGS, a connection WINDOW_UPDATE, the ACK of the
server's SETTINGS) and then a PING, whose ACK proves the server has processed all of it.
"""

from __future__ import annotations

import asyncio
import gc
import random
import sys
import tracemalloc
from collections.abc import AsyncIterator

from app.greeter.service import Greeter
from tests.helpers import wait_until
from transport import Channel, Server, ServicerContext, stream_stream, unary_unary

#: Idle connections measured, after a few opened first so that one-time costs are not counted.
CONNECTIONS = 200
WARM_CONNECTIONS = 10
#: Bytes per idle connection at most (tracemalloc). Measured: ≈ 13.4 KB (Python 3.11, h2 4.4.1);
#: ≈ 88.9 KB before the receive buffer was shared per event loop and h2's settings deques replaced.
MAX_BYTES_PER_IDLE_CONNECTION = 16 * 1024

IDLE_CLIENTS = r"""
import socket, sys
import h2.config, h2.connection, h2.events

port, n = int(sys.argv[1]), int(sys.argv[2])
held = []
for _ in range(n):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.increment_flow_control_window(1 << 20)
    sock.sendall(conn.data_to_send())
    pinged = False
    while True:
        data = sock.recv(65536)
        if not data:
            sys.exit("the server closed a connection")
        events = conn.receive_data(data)
        if not pinged and any(isinstance(e, h2.events.RemoteSettingsChanged) for e in events):
            conn.ping(b"memory!!")
            pinged = True
        sock.sendall(conn.data_to_send())
        if any(isinstance(e, h2.events.PingAckReceived) for e in events):
            break
    held.append(sock)
print("OPEN", flush=True)
sys.stdin.read()
"""


class IdleClients:
    """A process holding ``n`` idle HTTP/2 connections to ``port`` until :meth:`close`."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def open(cls, port: int, n: int) -> IdleClients:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            IDLE_CLIENTS,
            str(port),
            str(n),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        clients = cls(proc)
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
        except BaseException:
            await clients.close()
            raise
        if line != b"OPEN\n":
            await clients.close()
            raise AssertionError(f"the idle clients did not connect: {line!r}")
        return clients

    async def close(self) -> None:
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def test_an_idle_connection_costs_the_server_at_most_16_kib() -> None:
    server = Server()
    server.add_service(Greeter())
    await server.start("127.0.0.1", 0)
    opened: list[IdleClients] = []
    tracemalloc.start()
    try:
        opened.append(await IdleClients.open(server.port, WARM_CONNECTIONS))
        await wait_until(lambda: server.stats.connections_open == WARM_CONNECTIONS, what="the warm-up connections")
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        opened.append(await IdleClients.open(server.port, CONNECTIONS))
        await wait_until(lambda: server.stats.connections_open == WARM_CONNECTIONS + CONNECTIONS, what="connections")
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
        for clients in opened:
            await clients.close()
        await server.stop(grace=1)
    per_connection = (after - before) / CONNECTIONS
    assert per_connection <= MAX_BYTES_PER_IDLE_CONNECTION, f"{per_connection:,.0f} bytes per idle connection"


ECHO = "/test.Memory/Echo"
CHAT = "/test.Memory/Chat"
#: Message sizes from one byte to several reads' worth (the receive buffer takes 64 KiB per read).
SIZES = (1, 100, 16_383, 65_536, 65_537, 300_001)
CHANNELS = 24


async def echo(request: bytes, context: ServicerContext) -> bytes:
    return request


async def chat(requests: AsyncIterator[bytes], context: ServicerContext) -> AsyncIterator[bytes]:
    async for request in requests:
        yield request


def payload(rng: random.Random, size: int) -> bytes:
    return rng.randbytes(size)


async def test_many_connections_on_one_loop_each_get_exactly_their_own_bytes() -> None:
    """24 channels (48 sockets, every one on this loop, all reading into its one buffer) at once, each
    with unary calls and a bidi stream of messages from 1 byte to 300 KB, every one of them distinct:
    each reply is byte-for-byte its own request, on every connection."""
    server = Server()
    server.add_method(ECHO, unary_unary(echo))
    server.add_method(CHAT, stream_stream(chat))
    await server.start("127.0.0.1", 0)
    channels = [Channel.dial(str(server.address), "pick_first") for _ in range(CHANNELS)]
    checked = 0

    async def unary(channel: Channel, rng: random.Random) -> None:
        nonlocal checked
        requests = [payload(rng, size) for size in SIZES]
        replies = await asyncio.gather(*(channel.unary_unary(ECHO)(r, timeout=30) for r in requests))
        for request, reply in zip(requests, replies, strict=True):
            assert reply == request, f"a reply of {len(reply)} bytes is not its {len(request)}-byte request"
            checked += 1

    async def bidi(channel: Channel, rng: random.Random) -> None:
        nonlocal checked
        call = channel.stream_stream(CHAT)(timeout=30)
        for size in (*SIZES, *reversed(SIZES)):
            request = payload(rng, size)
            await call.write(request)
            reply = await call.read()
            assert reply == request, f"a streamed reply of {len(reply)} bytes is not its {len(request)}-byte message"
            checked += 1
        await call.done_writing()

    try:
        rngs = [random.Random(i) for i in range(CHANNELS)]
        await asyncio.gather(
            *(unary(c, rng) for c, rng in zip(channels, rngs, strict=True)),
            *(bidi(c, rng) for c, rng in zip(channels, rngs, strict=True)),
        )
    finally:
        for channel in channels:
            await channel.close(grace=0)
        await server.stop(grace=1)
    assert checked == CHANNELS * 3 * len(SIZES)
    assert server.stats.connections_total == CHANNELS, "a connection was lost and opened again"
    assert server.stats.status_counts() == {"OK": CHANNELS * (len(SIZES) + 1)}
