"""A client that sends requests but never reads the answers cannot make the server hold them.

The server stops dispatching requests (and stops reading) while its socket's
write buffer is over the high-water mark, so what it holds is bounded by one
read and one socket buffer, not by what the client asks for. The server is a
real ``rpcviz serve`` process; its resident memory is read from /proc.
"""

from __future__ import annotations

import asyncio
import select
import socket
import time
from pathlib import Path

import hpack
import pytest
from hyperframe.frame import DataFrame, HeadersFrame, SettingsFrame, WindowUpdateFrame

from app.greeter.helloworld_pb2 import HelloRequest
from tests.faults.rawclient import PREFACE, grpc_message, request_headers
from tests.helpers import FAST, greet
from tests.processes import ServeProcess
from transport import Channel

MiB = 1024 * 1024


def rss(pid: int) -> int:
    """Resident set size of ``pid`` in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def hostile_requests(count: int, response_size: int) -> bytes:
    """Preface, windows wide open (so flow control does not hold the server back), then ``count`` greets
    whose answers are about ``response_size`` bytes each."""
    encoder = hpack.Encoder()
    out = bytearray(PREFACE)
    out += SettingsFrame(0, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 2**31 - 1}).serialize()
    out += WindowUpdateFrame(0, window_increment=2**31 - 1 - 65535).serialize()
    body = grpc_message(HelloRequest(name="x" * response_size).SerializeToString())
    headers = request_headers(b"/helloworld.Greeter/SayHello")
    for i in range(count):
        stream_id = 2 * i + 1
        out += HeadersFrame(stream_id, data=encoder.encode(headers), flags=["END_HEADERS"]).serialize()
        for start in range(0, len(body), 16384):
            chunk = body[start : start + 16384]
            last = start + 16384 >= len(body)
            out += DataFrame(stream_id, data=chunk, flags=["END_STREAM"] if last else []).serialize()
    return bytes(out)


def send_without_reading(sock: socket.socket, data: bytes, stall: float = 1.0, limit: float = 20.0) -> int:
    """Write ``data`` until it is all sent or the server stops taking it for ``stall`` seconds; bytes sent."""
    view = memoryview(data)
    sent = 0
    end = time.monotonic() + limit
    while sent < len(view) and time.monotonic() < end:
        _, writable, _ = select.select([], [sock], [], stall)
        if not writable:
            break
        try:
            sent += sock.send(view[sent : sent + 256 * 1024])
        except BlockingIOError:
            continue
    return sent


@pytest.mark.parametrize(("count", "size"), [(3000, 16 * 1024), (300, MiB)], ids=["3000x16KiB", "300x1MiB"])
async def test_never_reading_client_grows_server_memory_by_at_most_16_mib(count: int, size: int) -> None:
    pod = await ServeProcess.start("pod-1")
    sock = socket.socket()
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)  # the client's kernel soaks up little
        sock.connect(("127.0.0.1", pod.port))
        sock.setblocking(False)
        # Warm the server up (imports, first-call allocations) so the baseline is fair.
        async with Channel.dial(pod.address, "pick_first", options=FAST) as channel:
            for _ in range(20):
                await greet(channel, "w" * size, timeout=5)
        before = rss(pod.proc.pid)
        data = hostile_requests(count, size)
        sent = await asyncio.to_thread(send_without_reading, sock, data)
        await asyncio.sleep(0.5)  # let the server do whatever it will with what it read
        grown = rss(pod.proc.pid) - before
        assert grown <= 16 * MiB, f"server RSS grew by {grown / MiB:.1f} MiB for {sent / MiB:.1f} MiB of requests"
        # The server still serves everyone else meanwhile.
        async with Channel.dial(pod.address, "pick_first", options=FAST) as channel:
            await greet(channel, timeout=5)
    finally:
        sock.close()
        await pod.terminate()
        await pod.kill()
