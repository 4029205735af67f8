"""Load checks: one server under h2load and under many in-process clients, and the proxy
under the same load. Bounded in count and time; 127.0.0.1 only. The figures that matter
are counted by the server itself (grpc-status, not just HTTP 200)."""

from __future__ import annotations

import asyncio
import gc
import re
import shutil
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.greeter.helloworld_pb2 import HelloRequest
from tests.helpers import FAST, greet, start_greeters, wait_until
from transport import Channel, Server, StatusCode
from transport.proxy import L4Proxy
from transport.wire import encode_message

H2LOAD_CALLS = 20_000
CLIENT_CALLS = 10_000
CHANNELS = 8
PER_CHANNEL = 16  # 8 x 16 = 128 concurrent streams
#: What may stay allocated after the load, beyond the starting level (caches, interned strings).
MEMORY_SLACK = 2 * 1024 * 1024


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    [server] = await start_greeters(1)
    yield server
    await server.stop(grace=1)


def traced_now() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


async def drive(target: str, calls: int) -> dict[str, int]:
    """``calls`` greets over CHANNELS channels, PER_CHANNEL in flight on each; outcome counts."""
    outcomes: dict[str, int] = {}
    remaining = calls

    async def worker(channel: Channel) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            try:
                await greet(channel, timeout=30)
            except Exception as exc:  # noqa: BLE001 - every outcome is counted, none is lost
                key = type(exc).__name__ + ":" + str(getattr(exc, "code", ""))
                outcomes[key] = outcomes.get(key, 0) + 1
            else:
                outcomes["OK"] = outcomes.get("OK", 0) + 1

    channels = [Channel.dial(target, "pick_first", options=FAST) for _ in range(CHANNELS)]
    try:
        async with asyncio.timeout(120):
            await asyncio.gather(*(worker(ch) for ch in channels for _ in range(PER_CHANNEL)))
    finally:
        for channel in channels:
            await channel.close(grace=1)
    return outcomes


@pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load (Debian nghttp2-client) is not installed")
async def test_h2load_against_one_server(server: Server, tmp_path: Path) -> None:
    body = tmp_path / "hello.bin"
    body.write_bytes(encode_message(HelloRequest(name="Ada").SerializeToString()))
    proc = await asyncio.create_subprocess_exec(
        "h2load",
        f"http://{server.address}/helloworld.Greeter/SayHello",
        "-n", str(H2LOAD_CALLS), "-c", "4", "-m", "32",  # 128 concurrent streams
        "-d", str(body),
        "-H", "content-type: application/grpc",
        "-H", "te: trailers",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        async with asyncio.timeout(120):
            out, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
    text = out.decode()
    assert proc.returncode == 0, text
    done = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed", text)
    assert done is not None, text
    assert done.groups() == (str(H2LOAD_CALLS),) * 4 + ("0",), text
    # h2load only sees HTTP 200; the server's own counter holds the grpc-status.
    assert server.stats.calls_by_status[StatusCode.OK] == H2LOAD_CALLS
    assert server.stats.status_counts() == {"OK": H2LOAD_CALLS}
    assert server.stats.calls_in_flight == 0


async def test_many_in_process_clients_and_memory_returns(server: Server) -> None:
    tracemalloc.start()
    try:
        await drive(str(server.address), 500)  # warm caches up before the baseline
        baseline = traced_now()
        outcomes = await drive(str(server.address), CLIENT_CALLS)
        assert outcomes == {"OK": CLIENT_CALLS}
        assert server.stats.method_ok("/helloworld.Greeter/SayHello") == CLIENT_CALLS + 500
        assert server.stats.calls_in_flight == 0
        await wait_until(lambda: server.stats.connections_open == 0, 5, "connections to close")
        assert traced_now() - baseline < MEMORY_SLACK
    finally:
        tracemalloc.stop()


async def test_proxy_under_load_relays_every_call_and_stays_bounded(server: Server) -> None:
    proxy = L4Proxy([server.address])
    await proxy.start()
    try:
        tracemalloc.start()
        await drive(str(proxy.address), 500)
        baseline = traced_now()
        outcomes = await drive(str(proxy.address), CLIENT_CALLS)
        assert outcomes == {"OK": CLIENT_CALLS}
        backend = proxy.backends[0]
        assert backend.connections_total == 2 * CHANNELS
        assert backend.bytes_up > CLIENT_CALLS * 20 and backend.bytes_down > CLIENT_CALLS * 20
        assert proxy.buffered_bytes() == 0
        await wait_until(lambda: not proxy.connections and server.stats.connections_open == 0, 5, "pairs to close")
        assert traced_now() - baseline < MEMORY_SLACK
    finally:
        tracemalloc.stop()
        await proxy.stop()
