"""Tests for the embedded L4 (TCP) load-balancing proxy."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import random
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from tests.helpers import wait_until
from transport.address import Address
from transport.proxy import BackendStats, ConnectionInfo, L4Proxy

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

MiB = 1024 * 1024


# -- helpers -------------------------------------------------------------------------


@asynccontextmanager
async def tcp_server(handler: Handler) -> AsyncIterator[Address]:
    """A backend on an ephemeral loopback port; yields its address."""
    tasks: set[asyncio.Task[None]] = set()

    async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(wrapped, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield Address("127.0.0.1", port)
    finally:
        server.close()
        for t in list(tasks):
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echo everything back; close after EOF."""
    while data := await reader.read(256 * 1024):
        writer.write(data)
        await writer.drain()


def index_replier(index: int) -> Handler:
    """A backend that greets each connection with its own index, then waits for EOF."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(bytes([index]))
        await writer.drain()
        await reader.read()

    return handler


@asynccontextmanager
async def index_backends(n: int) -> AsyncIterator[list[Address]]:
    """``n`` backends, backend ``i`` replying with byte ``i``."""
    addrs: list[Address] = []
    managers = [tcp_server(index_replier(i)) for i in range(n)]
    try:
        for m in managers:
            addrs.append(await m.__aenter__())
        yield addrs
    finally:
        for m in reversed(managers[: len(addrs)]):
            await m.__aexit__(None, None, None)


def dead_address() -> Address:
    """A loopback port that was bound and then closed: connecting is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return Address("127.0.0.1", port)


async def connect(addr: Address) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection(addr.host, addr.port), 3)


async def which_backend(proxy: L4Proxy) -> tuple[int, asyncio.StreamWriter]:
    """Open a connection through ``proxy``; return the greeting index and the writer."""
    reader, writer = await connect(proxy.address)
    data = await asyncio.wait_for(reader.readexactly(1), 3)
    return data[0], writer


async def close_writer(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), 3)
    except ConnectionError:
        pass


# -- tests ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_10mib_echo_is_byte_exact_both_ways() -> None:
    rng = random.Random(1234)
    payload = rng.randbytes(10 * MiB)
    async with tcp_server(echo) as backend, L4Proxy([backend]) as proxy:
        reader, writer = await connect(proxy.address)

        async def send() -> None:
            pos = 0
            while pos < len(payload):
                size = rng.randint(1, 200_000)
                writer.write(payload[pos : pos + size])
                pos += size
                await writer.drain()
            writer.write_eof()

        async def receive() -> bytes:
            chunks = []
            while data := await reader.read(1 << 20):
                chunks.append(data)
            return b"".join(chunks)

        _, echoed = await asyncio.wait_for(asyncio.gather(send(), receive()), 10)
        assert len(echoed) == len(payload)
        assert echoed == payload
        stats = proxy.backends[0]
        await wait_until(lambda: stats.connections_open == 0, what="pair closed")
        assert stats.bytes_up == 10 * MiB
        assert stats.bytes_down == 10 * MiB
        assert stats.connections_total == 1
        await close_writer(writer)


@pytest.mark.asyncio
async def test_round_robin_spreads_connections() -> None:
    async with index_backends(4) as addrs, L4Proxy(addrs) as proxy:
        seen: list[int] = []
        writers = []
        for _ in range(8):
            idx, w = await which_backend(proxy)
            seen.append(idx)
            writers.append(w)
        assert seen == [0, 1, 2, 3, 0, 1, 2, 3]
        assert [b.connections_total for b in proxy.backends] == [2, 2, 2, 2]
        assert [b.connections_open for b in proxy.backends] == [2, 2, 2, 2]
        assert [b.address for b in proxy.backends] == addrs
        conns = proxy.connections
        assert sorted(c.backend_index for c in conns) == [0, 0, 1, 1, 2, 2, 3, 3]
        assert all(c.backend == addrs[c.backend_index] for c in conns)
        assert all(c.client.host == "127.0.0.1" and c.client.port > 0 for c in conns)
        for w in writers:
            await close_writer(w)
        await wait_until(
            lambda: all(b.connections_open == 0 for b in proxy.backends),
            what="all pairs closed",
        )
        assert proxy.connections == []
        assert [b.connections_total for b in proxy.backends] == [2, 2, 2, 2]


@pytest.mark.asyncio
async def test_random_strategy_is_reproducible_with_seed() -> None:
    async def sequence(addrs: list[Address], seed: int) -> list[int]:
        async with L4Proxy(addrs, strategy="random", seed=seed) as proxy:
            out = []
            for _ in range(20):
                idx, w = await which_backend(proxy)
                out.append(idx)
                await close_writer(w)
            return out

    async with index_backends(4) as addrs:
        first = await sequence(addrs, 7)
        second = await sequence(addrs, 7)
    assert first == second
    assert len(set(first)) > 1  # actually random, not stuck on one backend


@pytest.mark.asyncio
async def test_dead_backend_is_skipped() -> None:
    dead = dead_address()
    async with tcp_server(index_replier(1)) as alive, L4Proxy([dead, alive]) as proxy:
        idx, w = await which_backend(proxy)  # round robin starts at the dead one
        assert idx == 1
        assert proxy.backends[0].connect_failures == 1
        assert proxy.backends[0].connections_total == 0
        assert proxy.backends[1].connections_total == 1
        assert proxy.backends[1].connect_failures == 0
        await close_writer(w)


@pytest.mark.asyncio
async def test_all_backends_dead_closes_client_promptly() -> None:
    async with L4Proxy([dead_address(), dead_address()]) as proxy:
        reader, writer = await connect(proxy.address)
        writer.write(b"hello")
        try:
            data = await asyncio.wait_for(reader.read(), 3)
        except ConnectionResetError:
            data = b""
        assert data == b""
        assert [b.connect_failures for b in proxy.backends] == [1, 1]
        assert proxy.connections == []
        await close_writer(writer)


@pytest.mark.asyncio
async def test_half_close_is_passed_on() -> None:
    backend_saw_eof = asyncio.Event()

    async def reply_after_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read()  # everything up to EOF
        backend_saw_eof.set()
        writer.write(b"got %d:" % len(data) + data[::-1])
        await writer.drain()

    request = random.Random(5).randbytes(300_000)
    async with tcp_server(reply_after_eof) as backend, L4Proxy([backend]) as proxy:
        reader, writer = await connect(proxy.address)
        writer.write(request)
        writer.write_eof()
        reply = await asyncio.wait_for(reader.read(), 3)
        assert backend_saw_eof.is_set()
        assert reply == b"got 300000:" + request[::-1]
        assert reader.at_eof()
        await close_writer(writer)
        await wait_until(lambda: proxy.connections == [], what="pair closed")


@pytest.mark.asyncio
async def test_memory_stays_bounded_behind_slow_reader() -> None:
    total = 64 * MiB
    block = 1 * MiB
    high_water = 64 * 1024
    state: dict[str, object] = {}
    sent_digest = hashlib.sha256()
    backend_done = asyncio.Event()

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state["writer"] = writer
        rng = random.Random(99)
        for _ in range(total // block):
            chunk = rng.randbytes(block)
            sent_digest.update(chunk)
            writer.write(chunk)
            await writer.drain()
        writer.write_eof()
        backend_done.set()
        await reader.read()

    def backend_blocked() -> bool:
        w = state.get("writer")
        # drain() blocks once the backend's own buffer passes its high-water mark (64 KiB).
        return isinstance(w, asyncio.StreamWriter) and w.transport.get_write_buffer_size() > 64 * 1024

    async with (
        tcp_server(flood) as backend,
        L4Proxy([backend], high_water=high_water) as proxy,
    ):
        reader, writer = await connect(proxy.address)  # the client does not read yet
        bound = 2 * high_water + 256 * 1024  # high water + one max-size read + slack
        stats = proxy.backends[0]
        peak = 0
        last = (-1, time.monotonic())

        def stalled() -> bool:
            """Backend blocked in drain() and no byte relayed for 100 ms: kernel buffers full."""
            nonlocal peak, last
            peak = max(peak, proxy.buffered_bytes())
            now = time.monotonic()
            if stats.bytes_down != last[0]:
                last = (stats.bytes_down, now)
                return False
            return backend_blocked() and now - last[1] > 0.1

        await wait_until(stalled, timeout=10, what="relay stalled by backpressure")
        relayed = stats.bytes_down
        assert relayed < total // 2, "proxy kept reading although the client does not"
        assert peak <= bound, f"proxy buffered {peak} bytes, bound {bound}"
        assert proxy.buffered_bytes() > 0
        assert not backend_done.is_set()

        got = hashlib.sha256()
        n = 0

        async def drain_all() -> None:
            nonlocal n
            while data := await reader.read(1 << 20):
                got.update(data)
                n += len(data)

        await asyncio.wait_for(drain_all(), 20)
        assert n == total
        assert got.digest() == sent_digest.digest()
        assert stats.bytes_down == total
        await close_writer(writer)


@pytest.mark.asyncio
async def test_stop_closes_pairs_and_listener_and_is_idempotent() -> None:
    events: list[tuple[str, int]] = []
    async with tcp_server(echo) as backend:
        proxy = L4Proxy([backend])
        proxy.add_listener(lambda event, info: events.append((event, info.backend_index)))
        addr = await proxy.start()
        reader, writer = await connect(addr)
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), 3) == b"ping"
        assert len(proxy.connections) == 1
        assert events == [("open", 0)]

        await proxy.stop()
        try:
            data = await asyncio.wait_for(reader.read(), 3)
        except ConnectionResetError:
            data = b""
        assert data == b""
        assert proxy.connections == []
        assert proxy.backends[0].connections_open == 0
        assert events == [("open", 0), ("close", 0)]
        with pytest.raises(OSError):
            await asyncio.wait_for(asyncio.open_connection(addr.host, addr.port), 3)
        await proxy.stop()  # idempotent
        await close_writer(writer)


@pytest.mark.asyncio
async def test_failing_listener_does_not_break_relaying() -> None:
    infos: list[ConnectionInfo] = []

    def bad(event: str, info: ConnectionInfo) -> None:
        raise RuntimeError("listener bug")

    async with tcp_server(echo) as backend, L4Proxy([backend]) as proxy:
        proxy.add_listener(bad)
        proxy.add_listener(lambda event, info: infos.append(info))
        reader, writer = await connect(proxy.address)
        writer.write(b"abc")
        assert await asyncio.wait_for(reader.readexactly(3), 3) == b"abc"
        await close_writer(writer)
        await wait_until(lambda: len(infos) == 2, what="open and close events")
        assert infos[0] is infos[1]
        assert infos[1].bytes_up == 3 and infos[1].bytes_down == 3
        assert infos[1].closed_at is not None


@pytest.mark.asyncio
async def test_set_backends_affects_new_connections_only() -> None:
    async with index_backends(3) as addrs, L4Proxy(addrs[:1]) as proxy:
        idx, w0 = await which_backend(proxy)
        assert idx == 0
        first_stats = proxy.backends[0]
        proxy.set_backends(addrs[1:] + addrs[:1])
        assert [b.address for b in proxy.backends] == addrs[1:] + addrs[:1]
        assert proxy.backends[2] is first_stats  # counters survive for kept addresses
        assert len(proxy.connections) == 1
        seen = set()
        writers = [w0]
        for _ in range(3):
            idx, w = await which_backend(proxy)
            seen.add(idx)
            writers.append(w)
        assert seen == {0, 1, 2}
        for w in writers:
            await close_writer(w)
        await wait_until(lambda: proxy.connections == [], what="pairs closed")


@pytest.mark.asyncio
async def test_bad_input() -> None:
    with pytest.raises(ValueError, match="at least one backend"):
        L4Proxy([])
    with pytest.raises(ValueError, match="strategy"):
        L4Proxy([Address("127.0.0.1", 1)], strategy="least_conn")
    proxy = L4Proxy([Address("127.0.0.1", 1)])
    with pytest.raises(RuntimeError):
        _ = proxy.address
    with pytest.raises(ValueError):
        proxy.set_backends([])
    assert isinstance(proxy.backends[0], BackendStats)

    async with L4Proxy([Address("127.0.0.1", 1)]) as occupant:
        clash = L4Proxy([Address("127.0.0.1", 1)], port=occupant.address.port)
        with pytest.raises(OSError) as info:
            await clash.start()
        assert info.value.errno == errno.EADDRINUSE
        await clash.stop()  # stop on a never-started proxy is harmless
