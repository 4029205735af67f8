"""The L4 proxy's drain on stop and how it passes resets on (issue 10, point 3).

Real sockets on 127.0.0.1: raw TCP peers for the byte-level behaviour, and a
real Greeter server with a real Channel for "no answered call is lost".
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections import Counter

import pytest

from app.greeter.service import SAY_HELLO
from tests.helpers import FAST, greet, start_greeters, wait_until
from tests.proxy.test_l4_proxy import close_writer, connect, echo, tcp_server
from transport import Channel, RpcError
from transport.proxy import L4Proxy


def reset(writer: asyncio.StreamWriter) -> None:
    """Close ``writer``'s socket abortively: the kernel sends RST, not FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def read_to_end(reader: asyncio.StreamReader) -> bytes | ConnectionResetError:
    """Everything up to EOF, or the reset that ended the stream instead."""
    try:
        return await asyncio.wait_for(reader.read(), 5)
    except ConnectionResetError as exc:
        return exc


# -- resets are passed on as resets; clean ends stay clean ------------------------------


@pytest.mark.asyncio
async def test_backend_reset_reaches_the_client_as_a_reset() -> None:
    """A backend that writes, then resets: the client reads the bytes, then ECONNRESET, not a clean EOF."""
    reset_now = asyncio.Event()

    async def write_then_reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"partial")
        await writer.drain()
        await reset_now.wait()
        reset(writer)

    async with tcp_server(write_then_reset) as backend, L4Proxy([backend]) as proxy:
        reader, writer = await connect(proxy.address)
        assert await asyncio.wait_for(reader.readexactly(7), 3) == b"partial"
        reset_now.set()
        end = await read_to_end(reader)
        assert isinstance(end, ConnectionResetError), f"the client saw a clean EOF ({end!r}) after the backend reset"
        await wait_until(lambda: proxy.connections == [], what="pair closed")
        await close_writer(writer)


@pytest.mark.asyncio
async def test_client_reset_reaches_the_backend_as_a_reset() -> None:
    """A client that resets: the backend's read ends in ECONNRESET, not in EOF."""
    got_hello = asyncio.Event()
    backend_end: asyncio.Future[bytes | ConnectionResetError] = asyncio.get_running_loop().create_future()

    async def read_hello_then_rest(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(5)
        got_hello.set()
        backend_end.set_result(await read_to_end(reader))

    async with tcp_server(read_hello_then_rest) as backend, L4Proxy([backend]) as proxy:
        _, writer = await connect(proxy.address)
        writer.write(b"hello")
        await asyncio.wait_for(got_hello.wait(), 3)
        reset(writer)
        end = await asyncio.wait_for(backend_end, 5)
        assert isinstance(end, ConnectionResetError), f"the backend saw a clean EOF ({end!r}) after the client reset"
        await wait_until(lambda: proxy.connections == [], what="pair closed")


@pytest.mark.asyncio
async def test_backend_clean_close_stays_a_clean_close() -> None:
    """A backend that writes and closes normally: the client gets every byte, then a plain EOF."""

    async def write_and_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"complete")
        await writer.drain()

    async with tcp_server(write_and_close) as backend, L4Proxy([backend]) as proxy:
        reader, writer = await connect(proxy.address)
        assert await read_to_end(reader) == b"complete"
        await close_writer(writer)  # the client's half ends too: the pair is done
        await wait_until(lambda: proxy.connections == [], what="pair closed")


# -- stop(grace): stop accepting, keep relaying, reset what is left at the end ---------------


@pytest.mark.asyncio
async def test_stop_with_grace_relays_open_pairs_and_resets_the_rest_at_the_end() -> None:
    """During the grace: no new connection, open pairs still relay and may end cleanly; at its end the
    pair still open is reset and stop() returns (about the grace, bounded)."""
    grace = 1.0
    async with tcp_server(echo) as backend:
        proxy = L4Proxy([backend])
        addr = await proxy.start()
        reader_a, writer_a = await connect(addr)
        reader_b, writer_b = await connect(addr)
        for reader, writer in ((reader_a, writer_a), (reader_b, writer_b)):
            writer.write(b"ping")
            assert await asyncio.wait_for(reader.readexactly(4), 3) == b"ping"

        started = time.monotonic()
        stopping = asyncio.create_task(proxy.stop(grace=grace))
        await asyncio.sleep(0)  # one loop turn: stop() has closed the listener
        with pytest.raises(OSError):
            await asyncio.wait_for(asyncio.open_connection(addr.host, addr.port), 3)

        writer_a.write(b"during the drain")
        assert await asyncio.wait_for(reader_a.readexactly(16), 3) == b"during the drain"
        writer_a.write_eof()  # A ends by itself: echo closes after EOF
        assert await read_to_end(reader_a) == b""
        await wait_until(lambda: len(proxy.connections) == 1, what="pair A closed")
        assert not stopping.done(), "stop() returned while pair B was still open inside the grace"

        writer_b.write(b"still")
        assert await asyncio.wait_for(reader_b.readexactly(5), 3) == b"still"
        await asyncio.wait_for(stopping, grace + 5)
        elapsed = time.monotonic() - started
        assert grace * 0.9 <= elapsed <= grace + 3, f"stop(grace={grace}) took {elapsed:.2f}s"
        end = await read_to_end(reader_b)
        assert isinstance(end, ConnectionResetError), f"pair B cut at the grace's end looked clean: {end!r}"
        assert proxy.connections == []
        assert proxy.backends[0].connections_open == 0
        await close_writer(writer_a)
        await close_writer(writer_b)


@pytest.mark.asyncio
async def test_stop_returns_as_soon_as_the_last_pair_ends() -> None:
    """stop(grace=30) with one open pair keeps relaying it and returns once the client ends it, not after 30 s."""
    async with tcp_server(echo) as backend:
        proxy = L4Proxy([backend])
        addr = await proxy.start()
        reader, writer = await connect(addr)
        writer.write(b"x")
        assert await asyncio.wait_for(reader.readexactly(1), 3) == b"x"
        stopping = asyncio.create_task(proxy.stop(grace=30))
        await asyncio.sleep(0)
        writer.write(b"y")
        assert await asyncio.wait_for(reader.readexactly(1), 3) == b"y"
        assert not stopping.done()
        writer.write_eof()
        assert await read_to_end(reader) == b""
        done, _ = await asyncio.wait({stopping}, timeout=5)
        assert stopping in done, "stop() still draining 5 s after its last pair ended (grace 30 s)"
        await close_writer(writer)


@pytest.mark.asyncio
async def test_stop_rejects_a_negative_grace_and_keeps_serving() -> None:
    async with tcp_server(echo) as backend, L4Proxy([backend]) as proxy:
        for bad in (-1.0, float("nan"), float("inf")):
            with pytest.raises(ValueError, match="grace"):
                await proxy.stop(grace=bad)
        reader, writer = await connect(proxy.address)
        writer.write(b"ok")
        assert await asyncio.wait_for(reader.readexactly(2), 3) == b"ok"
        await close_writer(writer)


# -- gRPC through the proxy: no answered call lost on a graceful stop -------------------------


@pytest.mark.asyncio
async def test_graceful_stop_under_load_loses_no_answered_call() -> None:
    """32 concurrent callers through the proxy; stop(grace) while they run; the channel's existing
    connection keeps working; the client stops and closes inside the grace: 0 failed calls, every OK the
    server counted is an OK at the client, and stop() returns once the pair ended, well before the grace."""
    concurrency = 32
    max_calls = 20_000
    [server] = await start_greeters(1)
    proxy = L4Proxy([server.address])
    await proxy.start()
    channel = Channel(str(proxy.address), options=FAST)
    ok = 0
    failures: list[str] = []
    fired = 0
    stop_traffic = asyncio.Event()

    async def caller() -> None:
        nonlocal ok, fired
        while not stop_traffic.is_set() and fired < max_calls:
            fired += 1
            try:
                await greet(channel, timeout=10)
            except RpcError as exc:
                failures.append(exc.code.name)
            else:
                ok += 1

    stopping: asyncio.Task[None] | None = None
    callers = [asyncio.create_task(caller()) for _ in range(concurrency)]
    try:
        await wait_until(lambda: ok >= 300, timeout=20, what="300 calls through the proxy")
        stopping = asyncio.create_task(proxy.stop(grace=30))
        at_stop = ok + len(failures)
        await wait_until(lambda: ok + len(failures) >= at_stop + 2000, timeout=20, what="2000 more calls ended")
        stop_traffic.set()
        await asyncio.gather(*callers)
        await channel.close(grace=5)
        done, _ = await asyncio.wait({stopping}, timeout=10)
        assert stopping in done, "proxy.stop(grace=30) still draining 10 s after the client closed"
        server_ok = server.stats.method_ok(SAY_HELLO)
        assert not failures, (
            f"{len(failures)} of {ok + len(failures)} calls failed {dict(Counter(failures))}; "
            f"the server answered {server_ok} OK, the client got {ok}"
        )
        assert ok == server_ok, f"server answered {server_ok} calls OK, client saw {ok}"
        assert ok >= at_stop + 2000, "the open connection stopped carrying calls after stop() began"
    finally:
        stop_traffic.set()
        await asyncio.gather(*callers, return_exceptions=True)
        await channel.close(grace=0)
        if stopping is not None and not stopping.done():
            stopping.cancel()
        await proxy.stop()
        await server.stop(grace=0.5)
