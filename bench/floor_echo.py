"""The floor's processes: the bytes of one warm SayHello call, and an asyncio echo of them.

``python -m bench.floor_echo capture`` runs our real server and client (``bench.servers.start_ours``,
``bench.clients.connect_ours``) over a real socket in this process, warms the connection up (HPACK
indexed, as every later call), then records what each side's ``transport.write`` is given for one call,
and prints them as hex JSON: the client's request (HEADERS + DATA) and the server's response (HEADERS +
DATA + trailers).

``python -m bench.floor_echo server`` captures them likewise, then serves the response bytes: for each
request that ends in what it reads it writes the response once; it prints ``READY <port>`` and then the
captured bytes as one JSON line. ``python -m bench.floor_echo client --port P --request HEX
--concurrency C [--concurrency C2 ...]`` keeps C requests in flight, one future per call, and prints
``{"rows": [...]}``: a row per concurrency as ``bench.clients`` prints it (one process for all of them). Both parse only what a minimal real protocol must to know where a call ends: the
9-byte HTTP/2 frame headers (length, type, END_STREAM), reading into one preallocated buffer like ours.
No HTTP/2 state, no HPACK, no protobuf: what any framework moving these bytes with asyncio spends at least.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import time
from collections import deque
from typing import Any

from bench.clients import summary
from bench.procs import proc_cpu_seconds

#: The read buffer of each echo connection (as ``transport.http2.protocol.READ_BUFFER_SIZE``).
BUFFER_SIZE = 64 * 1024
FRAME_HEADER = 9
END_STREAM = 0x1
#: DATA and HEADERS: the frame types whose END_STREAM flag ends a call's half.
DATA, HEADERS = 0x0, 0x1
#: Warm-up calls before the one recorded.
CAPTURE_WARMUP = 20


class FrameCounter:
    """Counts the stream ends in a byte stream of HTTP/2 frames, read into one preallocated buffer.

    A frame cut by a read is kept (moved to the buffer's start) until the rest arrives.
    """

    def __init__(self) -> None:
        self.buffer = bytearray(BUFFER_SIZE)
        self.view = memoryview(self.buffer)
        self.held = 0

    def get_buffer(self) -> memoryview:
        return self.view[self.held :]

    def feed(self, nbytes: int) -> int:
        """``nbytes`` more were read into :meth:`get_buffer`: how many streams ended in the frames now complete."""
        buf = self.buffer
        end = self.held + nbytes
        offset = ended = 0
        while end - offset >= FRAME_HEADER:
            after = offset + FRAME_HEADER + ((buf[offset] << 16) | (buf[offset + 1] << 8) | buf[offset + 2])
            if after > end:
                if after - offset > BUFFER_SIZE:
                    raise ValueError(f"a {after - offset}-byte frame does not fit the {BUFFER_SIZE}-byte buffer")
                break
            if buf[offset + 4] & END_STREAM and buf[offset + 3] in (DATA, HEADERS):
                ended += 1
            offset = after
        if offset < end:
            buf[: end - offset] = buf[offset:end]
        self.held = end - offset
        return ended


def _nodelay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class EchoServer(asyncio.BufferedProtocol):
    """Answers every request that ends with the response bytes, all of a read's answers in one write."""

    def __init__(self, response: bytes) -> None:
        self.response = response
        self.frames = FrameCounter()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        _nodelay(transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.frames.get_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        ended = self.frames.feed(nbytes)
        if ended and self.transport is not None:
            self.transport.write(self.response if ended == 1 else self.response * ended)


class EchoClient(asyncio.BufferedProtocol):
    """Sends requests; each response that ends resolves the oldest call's future (answers come in order)."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.frames = FrameCounter()
        self.pending: deque[asyncio.Future[None]] = deque()
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.lost: asyncio.Future[None] = self.loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        _nodelay(transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.frames.get_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        pending = self.pending
        for _ in range(self.frames.feed(nbytes)):
            pending.popleft().set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        for future in self.pending:
            if not future.done():
                future.set_exception(ConnectionError("the echo server closed the connection"))
        if not self.lost.done():
            self.lost.set_result(None)

    async def call(self) -> None:
        """One call: write the request, await its response."""
        future = self.loop.create_future()
        self.pending.append(future)
        assert self.transport is not None
        self.transport.write(self.request)
        await future


async def closed_loop(
    client: EchoClient, concurrency: int, calls: int, duration: float, latencies: list[int] | None
) -> int:
    """Keep ``concurrency`` calls in flight until ``calls`` started or ``duration`` passed (as ``bench.clients``)."""
    deadline = time.perf_counter() + duration
    started = done = 0
    clock = time.perf_counter_ns

    async def worker() -> None:
        nonlocal started, done
        while started < calls and time.perf_counter() < deadline:
            started += 1
            t0 = clock()
            await client.call()
            t1 = clock()
            if latencies is not None:
                latencies.append(t1 - t0)
            done += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done


async def run_client(
    port: int, request: bytes, concurrency: int, calls: int, duration: float, warmup: int, server_pid: int | None
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(lambda: EchoClient(request), "127.0.0.1", port)
    try:
        await asyncio.wait_for(closed_loop(client, concurrency, warmup, max(1.0, duration), None), 60)
        latencies: list[int] = []
        server_cpu0 = proc_cpu_seconds(server_pid) if server_pid else None
        cpu0, wall0 = time.process_time(), time.perf_counter()
        ok = await asyncio.wait_for(closed_loop(client, concurrency, calls, duration, latencies), duration + 60)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        server_cpu1 = proc_cpu_seconds(server_pid) if server_pid else None
    finally:
        if client.transport is not None:
            client.transport.close()
    server_cpu = None if server_cpu0 is None or server_cpu1 is None else server_cpu1 - server_cpu0
    return summary("floor", concurrency, latencies, ok, 0, wall, cpu, server_cpu)


async def serve() -> None:
    """Capture the bytes, then echo them until SIGTERM."""
    wire = await capture()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: EchoServer(bytes.fromhex(wire["response"])), "127.0.0.1", 0)
    done = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
    print(json.dumps(wire), flush=True)
    try:
        await done.wait()
    finally:
        server.close()


async def capture(warmup: int = CAPTURE_WARMUP, attempts: int = 5) -> dict[str, str]:
    """The bytes each side of our real client and server writes for one warm unary SayHello call."""
    from asyncio import selector_events

    from app.greeter.helloworld_pb2 import HelloRequest
    from bench.clients import connect_ours
    from bench.servers import start_ours

    transport_class: Any = selector_events._SelectorSocketTransport  # type: ignore[attr-defined]
    port, stop = await start_ours()
    call, close = await connect_ours(port)
    request = HelloRequest(name="world")
    original = transport_class.write
    writes: list[tuple[bool, bytes]] = []

    def recording_write(self: Any, data: Any) -> None:
        writes.append((bool(getattr(self.get_protocol(), "client_side", False)), bytes(data)))
        original(self, data)

    try:
        for _ in range(warmup):
            await call(request)
        for _ in range(attempts):
            writes.clear()
            transport_class.write = recording_write
            try:
                await call(request)
                await asyncio.sleep(0.02)  # anything either side writes after the call (none expected)
            finally:
                transport_class.write = original
            sides = [client_side for client_side, _ in writes]
            if sides == [True, False]:  # one request write, one response write: a plain warm call
                return {"request": writes[0][1].hex(), "response": writes[1][1].hex()}
    finally:
        await close()
        await stop()
    raise RuntimeError(f"no clean warm call in {attempts} tries; the last wrote {[(s, len(d)) for s, d in writes]}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("role", choices=("capture", "server", "client"))
    parser.add_argument("--request", help="hex: what the client sends per call (client)")
    parser.add_argument("--port", type=int)
    parser.add_argument("--concurrency", type=int, action="append", help="calls in flight (repeat: one row each)")
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--server-pid", type=int)
    args = parser.parse_args(argv)
    if args.role == "capture":
        print(json.dumps(asyncio.run(capture())), flush=True)
    elif args.role == "server":
        asyncio.run(serve())
    else:
        if not args.request or args.port is None:
            parser.error("client needs --port and --request")
        request = bytes.fromhex(args.request)
        rows = [
            asyncio.run(
                run_client(args.port, request, concurrency, args.calls, args.duration, args.warmup, args.server_pid)
            )
            for concurrency in args.concurrency or [1]
        ]
        print(json.dumps({"rows": rows}), flush=True)


if __name__ == "__main__":
    main()
