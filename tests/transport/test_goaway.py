"""GOAWAY and resets on the client: unprocessed calls are retried transparently, once;
nothing else is retried."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import h2.config
import h2.connection
import h2.events
import pytest
from h2.errors import ErrorCodes

from tests.helpers import FAST, greet, served_by, start_greeters, wait_until
from transport import Channel, RpcError, Server, StatusCode


class RawServer(asyncio.Protocol):
    """An HTTP/2 server that answers each request with ``on_request(conn, stream_id)``."""

    def __init__(self, on_request: Callable[[h2.connection.H2Connection, int], None], log: list[int]) -> None:
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        self.on_request = on_request
        self.log = log
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.conn.initiate_connection()
        transport.write(self.conn.data_to_send())

    def data_received(self, data: bytes) -> None:
        for event in self.conn.receive_data(data):
            if isinstance(event, h2.events.RequestReceived):
                self.log.append(event.stream_id)
                self.on_request(self.conn, event.stream_id)
        if self.transport is not None:
            self.transport.write(self.conn.data_to_send())


async def start_raw(on_request: Callable[[h2.connection.H2Connection, int], None]) -> tuple[asyncio.Server, list[int]]:
    log: list[int] = []
    server = await asyncio.get_running_loop().create_server(lambda: RawServer(on_request, log), "127.0.0.1", 0)
    return server, log


@pytest.fixture
async def real() -> AsyncIterator[Server]:
    [server] = await start_greeters(1)
    yield server
    await server.stop(grace=0.5)


def goaway_before_processing(conn: h2.connection.H2Connection, stream_id: int) -> None:
    conn.close_connection(error_code=ErrorCodes.NO_ERROR, last_stream_id=0)


def reset_internal(conn: h2.connection.H2Connection, stream_id: int) -> None:
    conn.reset_stream(stream_id, ErrorCodes.INTERNAL_ERROR)


def refuse(conn: h2.connection.H2Connection, stream_id: int) -> None:
    conn.reset_stream(stream_id, ErrorCodes.REFUSED_STREAM)


async def dial_raw_first(raw: asyncio.Server, real: Server) -> Channel:
    raw_port = raw.sockets[0].getsockname()[1]
    channel = Channel.dial(f"ipv4:127.0.0.1:{raw_port},{real.address}", "round_robin", options=FAST)
    await wait_until(lambda: sum(sc.state.name == "READY" for sc in channel.subchannels) == 2, 5, "both READY")
    return channel


@pytest.mark.parametrize("unprocessed", [goaway_before_processing, refuse])
async def test_unprocessed_call_is_retried_on_another_connection(
    real: Server, unprocessed: Callable[[h2.connection.H2Connection, int], None]
) -> None:
    raw, log = await start_raw(unprocessed)
    channel = await dial_raw_first(raw, real)
    try:
        results = [await greet(channel, timeout=5) for _ in range(2)]
        assert all(served_by(r) == "pod-1" for r in results)
        # Each call the raw server turned away was retried once, elsewhere, never back there.
        assert 1 <= len(log) <= 2
        assert channel.stats.calls_started == 2
        assert channel.stats.calls_succeeded == 2
        assert channel.stats.calls_failed == 0
    finally:
        await channel.close(grace=0)
        raw.close()


async def test_a_processed_failure_is_not_retried(real: Server) -> None:
    raw, log = await start_raw(reset_internal)
    channel = await dial_raw_first(raw, real)
    try:
        outcomes = []
        for _ in range(2):
            try:
                outcomes.append(served_by(await greet(channel, timeout=5)))
            except RpcError as exc:
                outcomes.append(exc.code.name)
        assert sorted(outcomes) == ["INTERNAL", "pod-1"]
        assert len(log) == 1
        assert channel.stats.status_counts() == {"OK": 1, "INTERNAL": 1}
    finally:
        await channel.close(grace=0)
        raw.close()


async def test_graceful_server_stop_finishes_in_flight_calls(real: Server) -> None:
    """GOAWAY from a stopping server: streams it already has run to completion."""
    from app.cluster.load import LoadModel
    from app.greeter.service import Greeter

    slow = Server(name="slow")
    slow.add_service(Greeter(work=LoadModel(service_time=0.2, workers=8).work))
    await slow.start()
    channel = Channel.dial(str(slow.address), "pick_first", options=FAST)
    try:
        calls = [asyncio.ensure_future(greet(channel, timeout=5)) for _ in range(5)]
        await wait_until(lambda: slow.stats.calls_in_flight == 5, 5, "calls to reach the server")
        await slow.stop(grace=5)
        results = await asyncio.gather(*calls)
        assert [served_by(r) for r in results] == ["slow"] * 5
        with pytest.raises(RpcError) as info:
            await greet(channel, timeout=1)
        assert info.value.code in (StatusCode.UNAVAILABLE, StatusCode.DEADLINE_EXCEEDED)
    finally:
        await channel.close(grace=0)
