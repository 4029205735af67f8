"""Server-side connection management (gRFC A9): MAX_CONNECTION_IDLE, MAX_CONNECTION_AGE and its grace.

Each is checked on the wire (what a raw HTTP/2 client receives: GOAWAY 2^31-1
with the debug data, a PING, the final GOAWAY, then the server's EOF) and
through our Channel (steady traffic keeps succeeding while connections are
aged out and replaced).
"""

from __future__ import annotations

import asyncio

from hyperframe.frame import GoAwayFrame, PingFrame

from app.cluster.load import LoadModel
from app.greeter.service import Greeter
from tests.faults.rawclient import RawH2Client
from tests.helpers import FAST, greet, wait_until
from transport import Channel, RpcError, Server, ServerOptions, StatusCode


async def start(options: ServerOptions, work: LoadModel | None = None) -> Server:
    server = Server(name="a9", options=options)
    server.add_service(Greeter(work=work.work) if work else Greeter())
    await server.start()
    return server


async def test_idle_connection_is_sent_away_gracefully_with_max_idle() -> None:
    """An idle connection gets GOAWAY(2^31-1, "max_idle") + PING; once the PING is answered, the final
    GOAWAY; then the server half-closes (EOF) without resetting."""
    server = await start(ServerOptions(max_connection_idle=0.3))
    client = await RawH2Client.connect(server.port)
    try:
        loop = asyncio.get_running_loop()
        began = loop.time()
        frames = []
        while not client.goaways():
            frame = await client.read_frame(timeout=2)
            assert frame is not None
            frames.append(frame)
        first = client.goaways()[0]
        assert (first.last_stream_id, first.error_code, first.additional_data) == (2**31 - 1, 0, b"max_idle")
        assert 0.27 <= loop.time() - began <= 1.5
        ping = await client.read_frame(timeout=2)
        assert isinstance(ping, PingFrame) and "ACK" not in ping.flags
        client.send(PingFrame(0, opaque_data=ping.opaque_data, flags=["ACK"]).serialize())
        rest = await client.read_until_closed(timeout=3)
        finals = [f for f in rest if isinstance(f, GoAwayFrame)]
        assert [(f.last_stream_id, f.additional_data) for f in finals] == [(0, b"max_idle")]
        assert server.stats.connections_idled == 1
    finally:
        client.abort()
        await server.stop(grace=0.5)


async def test_a_connection_with_a_call_running_is_not_idle() -> None:
    """The idle clock counts from when the last call ended: a 0.6 s call on a 0.2 s idle limit finishes."""
    server = await start(ServerOptions(max_connection_idle=0.2), LoadModel(service_time=0.6, workers=1))
    channel = Channel.dial(str(server.address), options=FAST)
    try:
        result = await greet(channel, timeout=5)
        assert result.response.message == "Hello, Ada!"
        assert server.stats.connections_idled == 0
        await wait_until(lambda: server.stats.connections_idled == 1, 3, "the connection to be idled after the call")
    finally:
        await channel.close(grace=0)
        await server.stop(grace=0.5)


async def test_steady_traffic_survives_max_connection_age() -> None:
    """Connections aged out every ~0.2 s under 16 callers for 2 s: every call succeeds, on several connections."""
    server = await start(ServerOptions(max_connection_age=0.2, max_connection_age_grace=5))
    channel = Channel.dial(str(server.address), options=FAST)
    outcomes: dict[str, int] = {}
    try:
        loop = asyncio.get_running_loop()
        end = loop.time() + 2.0

        async def caller() -> None:
            while loop.time() < end:
                try:
                    await greet(channel, timeout=5)
                    code = "OK"
                except RpcError as exc:
                    code = exc.code.name
                outcomes[code] = outcomes.get(code, 0) + 1

        await asyncio.gather(*(caller() for _ in range(16)))
        assert set(outcomes) == {"OK"}, outcomes
        assert outcomes["OK"] > 100
        assert server.stats.connections_aged >= 4
        assert server.stats.connections_total >= 5
    finally:
        await channel.close(grace=0)
        await server.stop(grace=0.5)


async def test_age_grace_ends_a_call_that_outlives_it() -> None:
    """MAX_CONNECTION_AGE 0.2 s with a 0.3 s grace: a 5 s call is ended (UNAVAILABLE) at about 0.5 s."""
    server = await start(
        ServerOptions(max_connection_age=0.2, max_connection_age_grace=0.3), LoadModel(service_time=5, workers=1)
    )
    channel = Channel.dial(str(server.address), options=FAST)
    try:
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            await greet(channel, timeout=10)
        except RpcError as exc:
            assert exc.code is StatusCode.UNAVAILABLE
        else:
            raise AssertionError("the call outlived the connection's age grace")
        assert loop.time() - began < 2.0
    finally:
        await channel.close(grace=0)
        await server.stop(grace=0.5)


async def test_age_jitter_is_within_ten_percent_and_differs_per_connection() -> None:
    """Each connection's age is MAX_CONNECTION_AGE ±10 %, drawn per connection."""
    server = await start(ServerOptions(max_connection_age=100.0))
    clients = [await RawH2Client.connect(server.port) for _ in range(8)]
    try:
        await wait_until(lambda: server.stats.connections_open == 8, 3, "8 connections")
        ages = [age for age in server.connection_ages() if age is not None]
        assert len(ages) == 8
        assert all(90.0 <= a <= 110.0 for a in ages)
        assert len(set(ages)) == 8
    finally:
        for c in clients:
            c.abort()
        await server.stop(grace=0.5)
