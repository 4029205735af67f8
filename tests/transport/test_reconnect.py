"""Reconnection and re-resolution pacing (issue 10 #11, #12): no policy reconnects in a tight loop,
pick_first goes IDLE after losing its connection (gRFC A62), deferred re-resolution."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import pytest

from app.greeter.helloworld_pb2 import HelloReply, HelloRequest
from app.greeter.service import Greeter
from tests.helpers import FAST, FAST_BACKOFF, greet, ipv4_target, served_by, start_greeters, wait_until
from transport import BackoffConfig, Channel, ChannelOptions, ConnectivityState, Server
from transport.address import Address
from transport.client.resolver import Resolver, register_scheme

IDLE = ConnectivityState.IDLE
READY = ConnectivityState.READY
DEFAULT = ChannelOptions(backoff=BackoffConfig(), seed=7)

#: How long an idle channel watches a hostile server, and the most connections it may open meanwhile.
WATCH_SECONDS = 3.0
MAX_CONNECTIONS = 3


class GoawayServer(asyncio.Protocol):
    """Completes the HTTP/2 handshake, then sends GOAWAY at once: when the client acknowledges the
    server's SETTINGS (``together=False``: the client is READY by then), or in the same write as
    the SETTINGS (``together=True``: the client sees both in one read)."""

    def __init__(self, accepted: list[int], together: bool) -> None:
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        self.accepted = accepted
        self.together = together
        self.transport: asyncio.Transport | None = None
        self.sent_goaway = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.accepted[0] += 1
        self.h2.initiate_connection()
        if self.together:
            self._goaway()
        transport.write(self.h2.data_to_send())

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            events = []
        if not self.sent_goaway and any(isinstance(e, h2.events.SettingsAcknowledged) for e in events):
            self._goaway()
        if self.transport is not None:
            self.transport.write(self.h2.data_to_send())

    def _goaway(self) -> None:
        self.sent_goaway = True
        self.h2.close_connection(last_stream_id=0)


async def start_goaway_server(together: bool) -> tuple[asyncio.Server, list[int]]:
    accepted = [0]
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: GoawayServer(accepted, together), "127.0.0.1", 0)
    return server, accepted


async def test_idle_channel_does_not_storm_a_server_that_sends_goaway_after_the_handshake() -> None:
    """An idle Channel (no calls) against a server that GOAWAYs every connection right after the
    handshake: at most 3 connections in 3 s, for pick_first and round_robin, with the test's fast
    backoff and with gRPC's default one (before the fix: ~475 and ~486)."""
    cases = [
        (policy, backoff, together)
        for policy in ("pick_first", "round_robin")
        for backoff in ("FAST", "default")
        for together in (False, True)
    ]
    servers: list[asyncio.Server] = []
    channels: list[Channel] = []
    counts: dict[str, list[int]] = {}
    try:
        for policy, backoff, together in cases:
            server, accepted = await start_goaway_server(together)
            servers.append(server)
            port = server.sockets[0].getsockname()[1]
            options = FAST if backoff == "FAST" else DEFAULT
            channels.append(Channel(f"127.0.0.1:{port}", policy, options=options))
            mode = "with SETTINGS" if together else "after the SETTINGS ACK"
            counts[f"{policy}/{backoff}/GOAWAY {mode}"] = accepted
        await wait_until(lambda: all(n[0] >= 1 for n in counts.values()), what="every channel's first connection")
        await asyncio.sleep(WATCH_SECONDS)  # the observation window: the figure is what happens in it
        figures = {case: n[0] for case, n in counts.items()}
        assert all(n <= MAX_CONNECTIONS for n in figures.values()), (
            f"connections in {WATCH_SECONDS:g} s (at most {MAX_CONNECTIONS}): {figures}"
        )
    finally:
        for channel in channels:
            await channel.close(grace=0)
        for server in servers:
            server.close()


async def test_calls_against_a_goaway_server_reconnect_at_the_backoff_pace() -> None:
    """Calls keep asking for a connection, and each one the server turns away after the
    handshake: attempts follow the backoff (FAST: about 9 in 2 s), never a tight loop (~330)."""
    servers: list[asyncio.Server] = []
    channels: list[Channel] = []
    counts: dict[str, list[int]] = {}
    try:
        for policy in ("pick_first", "round_robin"):
            server, accepted = await start_goaway_server(together=False)
            servers.append(server)
            channel = Channel(f"127.0.0.1:{server.sockets[0].getsockname()[1]}", policy, options=FAST)
            channels.append(channel)
            counts[policy] = accepted
        loop = asyncio.get_running_loop()
        end = loop.time() + 2.0
        outcomes: list[str] = []

        async def caller(channel: Channel) -> None:
            while loop.time() < end:
                try:
                    await greet(channel, timeout=0.2)
                    outcomes.append("OK")
                except Exception as exc:  # noqa: BLE001 - every call must end with a status
                    outcomes.append(type(exc).__name__)

        await asyncio.gather(*(caller(ch) for ch in channels for _ in range(4)))
        figures = {policy: n[0] for policy, n in counts.items()}
        assert all(n <= 15 for n in figures.values()), f"connections in 2 s with calls (at most 15): {figures}"
        assert "OK" not in outcomes and set(outcomes) == {"RpcError"}, set(outcomes)
        assert all(ch.stats.calls_started == ch.stats.calls_failed for ch in channels)
    finally:
        for channel in channels:
            await channel.close(grace=0)
        for server in servers:
            server.close()


# --- pick_first goes IDLE after a GOAWAY from a healthy server (gRFC A62) ---------------


@pytest.fixture
async def idling_grpcio() -> AsyncIterator[str]:
    """A stock grpcio Greeter that sends GOAWAY to connections idle for 300 ms, and keeps serving."""

    async def say_hello(request: HelloRequest, context: grpc.aio.ServicerContext) -> HelloReply:
        return HelloReply(message=f"Hi {request.name} from grpcio")

    server = grpc.aio.server(options=[("grpc.max_connection_idle_ms", 300)])
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "helloworld.Greeter",
                {
                    "SayHello": grpc.unary_unary_rpc_method_handler(
                        say_hello,
                        request_deserializer=HelloRequest.FromString,
                        response_serializer=HelloReply.SerializeToString,
                    )
                },
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(0)


async def test_pick_first_goes_idle_after_goaway_and_the_next_call_reconnects(idling_grpcio: str) -> None:
    """GOAWAY on an idle connection: pick_first goes IDLE and stays there (no reconnection by
    itself); the next call starts the connection, waits for it and succeeds."""
    async with Channel(idling_grpcio, "pick_first", options=FAST) as channel:
        first = await greet(channel, timeout=5)
        assert first.response.message == "Hi Ada from grpcio"
        (sc,) = channel.subchannels
        await wait_until(lambda: channel.state is IDLE, what="pick_first to go IDLE after the GOAWAY")
        assert sc.state is IDLE and sc.connection is None and sc.stats.connects == 1
        second = await greet(channel, timeout=5)
        assert second.response.message == "Hi Ada from grpcio"
        assert sc.stats.connects == 2
        assert (channel.stats.calls_succeeded, channel.stats.calls_failed) == (2, 0)


async def test_connect_takes_an_idle_pick_first_channel_back_to_ready(idling_grpcio: str) -> None:
    """``Channel.connect()`` reconnects an IDLE pick_first channel without a call."""
    async with Channel(idling_grpcio, "pick_first", options=FAST) as channel:
        await channel.wait_for_state(READY, timeout=5)
        await wait_until(lambda: channel.state is IDLE, what="pick_first to go IDLE after the GOAWAY")
        channel.connect()
        await channel.wait_for_state(READY, timeout=5)
        assert channel.subchannels[0].stats.connects == 2


async def test_round_robin_reconnects_a_restarted_pod_within_the_first_backoff_step() -> None:
    """With gRPC's default backoff (1 s first step): a pod that served calls and restarts on the
    same port is READY again well within 3 s, and no call fails."""
    servers = await start_greeters(2)
    reborn: Server | None = None
    channel = Channel(ipv4_target(servers), "round_robin", options=DEFAULT)
    try:
        await wait_until(lambda: sum(sc.state is READY for sc in channel.subchannels) == 2, what="both READY")
        assert {served_by(await greet(channel, timeout=5)) for _ in range(4)} == {"pod-1", "pod-2"}
        old = servers[1]
        port = old.port
        sc = next(sc for sc in channel.subchannels if sc.address.port == port)
        await old.stop(grace=0.5)
        reborn = Server(name="pod-2b")
        reborn.add_service(Greeter())
        await reborn.start("127.0.0.1", port)
        await wait_until(lambda: sc.state is READY, 3.0, "the restarted pod's subchannel READY")
        assert {served_by(await greet(channel, timeout=5)) for _ in range(4)} == {"pod-1", "pod-2b"}
        assert channel.stats.calls_failed == 0
    finally:
        await channel.close(grace=0)
        for server in [servers[0], reborn]:
            if server is not None:
                await server.stop(grace=0.5)


# --- re-resolution: deferred to the end of the minimum interval, coalesced (#12) ---------


class CountingResolver(Resolver):
    """Answers with the test's addresses and records when it was asked."""

    def __init__(self, target: str, addresses: list[Address]) -> None:
        super().__init__(target, str(addresses[0]))
        self.addresses = addresses
        self.asked: list[float] = []

    async def resolve(self) -> list[Address]:
        self.asked.append(asyncio.get_running_loop().time())
        return list(self.addresses)

    @property
    def can_reresolve(self) -> bool:
        return True


@pytest.fixture
async def counting() -> AsyncIterator[tuple[CountingResolver, Server]]:
    [server] = await start_greeters(1)
    resolver = CountingResolver("counting:test", [server.address])
    register_scheme("counting", lambda target, rest: resolver)
    yield resolver, server
    await server.stop(grace=0.5)


INTERVAL = 0.3


async def test_reresolution_inside_the_interval_is_deferred_to_its_end(
    counting: tuple[CountingResolver, Server],
) -> None:
    """Requests inside the minimum interval are not dropped: one resolution at the interval's
    end, however many requests came; the next request waits a full interval again."""
    resolver, _ = counting
    options = ChannelOptions(backoff=FAST_BACKOFF, min_reresolution_interval=INTERVAL)
    async with Channel("counting:test", options=options) as channel:
        await wait_until(lambda: len(resolver.asked) == 1, what="the first resolution")
        for _ in range(3):
            channel.request_reresolution()
        assert len(resolver.asked) == 1  # inside the interval: not now
        await wait_until(lambda: len(resolver.asked) >= 2, 5, "the deferred re-resolution")
        assert resolver.asked[1] - resolver.asked[0] >= INTERVAL - 0.01, resolver.asked
        channel.request_reresolution()
        await wait_until(lambda: len(resolver.asked) >= 3, 5, "the next deferred re-resolution")
        # The three early requests became one resolution; the later request a second one, a
        # full interval after it.
        assert len(resolver.asked) == 3, resolver.asked
        assert resolver.asked[2] - resolver.asked[1] >= INTERVAL - 0.01, resolver.asked
        assert served_by(await greet(channel, timeout=5)) == "pod-1"


async def test_a_deferred_reresolution_is_cancelled_by_close(counting: tuple[CountingResolver, Server]) -> None:
    resolver, _ = counting
    options = ChannelOptions(backoff=FAST_BACKOFF, min_reresolution_interval=INTERVAL)
    channel = Channel("counting:test", options=options)
    await wait_until(lambda: len(resolver.asked) == 1, what="the first resolution")
    channel.request_reresolution()
    await channel.close(grace=0)
    await asyncio.sleep(2 * INTERVAL)  # past the deferred resolution's time: proving it never ran
    assert len(resolver.asked) == 1, resolver.asked


def test_min_reresolution_interval_is_validated() -> None:
    with pytest.raises(ValueError, match="min_reresolution_interval"):
        ChannelOptions(min_reresolution_interval=-1.0)
