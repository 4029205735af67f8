"""Client-side balancing, reconnection, counters and server lifecycle against real servers."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.greeter.helloworld_pb2 import HelloRequest
from app.greeter.service import SAY_HELLO, Greeter
from tests.helpers import FAST, FAST_BACKOFF, greet, ipv4_target, served_by, wait_until
from transport import (
    Channel,
    ConnectivityState,
    RpcError,
    Server,
    ServerOptions,
    ServicerContext,
    StatusCode,
    Subchannel,
    unary_unary,
)
from transport.client import CallDetails, Invoker
from transport.client.call import Call
from transport.metadata import metadata_value

READY = ConnectivityState.READY
GATE = "/test.T/Gate"
META = "/test.T/Meta"
ABORT = "/test.T/Abort"
WORK = "/test.T/Work"


async def all_ready(channel: Channel, n: int) -> None:
    await wait_until(
        lambda: len(channel.subchannels) == n and all(sc.state is READY for sc in channel.subchannels),
        what=f"{n} READY subchannels",
    )


def subchannel_for(channel: Channel, server: Server) -> Subchannel:
    (sc,) = [sc for sc in channel.subchannels if sc.address.port == server.port]
    return sc


async def fire(channel: Channel, n: int) -> Counter[str]:
    results = await asyncio.gather(*(greet(channel, timeout=5) for _ in range(n)))
    return Counter(served_by(r) for r in results)


# --- a test server with controllable handlers -----------------------------------------


class Probe:
    """A server whose Gate handler blocks until ``release`` is set."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = 0
        self.cancelled = 0
        self.metadata: list[tuple[tuple[str, Any], ...]] = []
        self.active = 0
        self.max_active = 0

    def handlers(self) -> dict[str, Any]:
        async def gate(request: bytes, context: ServicerContext) -> bytes:
            self.started += 1
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
            return b"released"

        async def meta(request: bytes, context: ServicerContext) -> bytes:
            self.metadata.append(tuple(context.invocation_metadata()))
            return b"ok"

        async def abort(request: bytes, context: ServicerContext) -> bytes:
            context.abort(StatusCode.NOT_FOUND, "no such thing")

        async def work(request: bytes, context: ServicerContext) -> bytes:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            try:
                await asyncio.sleep(0.02)  # service time, not a wait for an event
            finally:
                self.active -= 1
            return request

        return {GATE: unary_unary(gate), META: unary_unary(meta), ABORT: unary_unary(abort), WORK: unary_unary(work)}


async def probe_server(options: ServerOptions | None = None) -> tuple[Server, Probe]:
    probe = Probe()
    server = Server(name="probe", options=options)
    server.add_service(probe.handlers())
    await server.start("127.0.0.1", 0)
    return server, probe


@pytest.fixture
async def probe() -> AsyncIterator[tuple[Server, Probe]]:
    server, p = await probe_server()
    yield server, p
    p.release.set()
    await server.stop(grace=0.5)


@pytest.fixture
async def narrow() -> AsyncIterator[tuple[Server, Probe]]:
    """A probe server allowing one concurrent stream per connection."""
    server, p = await probe_server(ServerOptions(max_concurrent_streams=1))
    yield server, p
    p.release.set()
    await server.stop(grace=0.5)


# --- round_robin and pick_first --------------------------------------------------------


async def test_round_robin_spreads_evenly(greeters: list[Server]) -> None:
    """100 calls over 4 READY pods: exactly 25 each."""
    async with Channel(ipv4_target(greeters), "round_robin", options=FAST) as channel:
        await all_ready(channel, 4)
        assert await fire(channel, 100) == {f"pod-{i}": 25 for i in range(1, 5)}
        assert sorted(sc.stats.calls_succeeded for sc in channel.subchannels) == [25, 25, 25, 25]


async def test_pick_first_pins_everything(greeters: list[Server]) -> None:
    """pick_first sends all 100 calls to one pod (the first address)."""
    async with Channel(ipv4_target(greeters), "pick_first", options=FAST) as channel:
        counts = await fire(channel, 100)
    assert counts == {"pod-1": 100}


async def test_round_robin_skips_dead_server(greeters: list[Server]) -> None:
    """A killed pod leaves READY, shows TRANSIENT_FAILURE, gets no calls; all calls still succeed."""
    async with Channel(ipv4_target(greeters), "round_robin", options=FAST) as channel:
        await all_ready(channel, 4)
        dead = greeters[1]
        sc = subchannel_for(channel, dead)
        dead.kill()
        await wait_until(lambda: sc.state is not READY, what="dead subchannel leaves READY")
        counts = await fire(channel, 99)
        assert counts == {"pod-1": 33, "pod-3": 33, "pod-4": 33}
        await wait_until(lambda: sc.state is ConnectivityState.TRANSIENT_FAILURE, what="TRANSIENT_FAILURE")
        assert sc.last_error and str(dead.address) in sc.last_error
        assert channel.state is READY


async def test_pick_first_fails_over(greeters: list[Server]) -> None:
    """Killing the pod holding pick_first's connection moves every call to another pod."""
    async with Channel(ipv4_target(greeters), "pick_first", options=FAST) as channel:
        assert await fire(channel, 10) == {"pod-1": 10}
        greeters[0].kill()
        sc = subchannel_for(channel, greeters[0])
        await wait_until(lambda: sc.state is not READY, what="pod-1 subchannel leaves READY")
        counts = await fire(channel, 20)
    assert len(counts) == 1 and "pod-1" not in counts and sum(counts.values()) == 20


async def test_round_robin_rejoin(greeters: list[Server]) -> None:
    """A pod restarted on the same port becomes READY again and gets its share."""
    async with Channel(ipv4_target(greeters), "round_robin", options=FAST) as channel:
        await all_ready(channel, 4)
        old = greeters[1]
        port = old.port
        sc = subchannel_for(channel, old)
        await old.stop(grace=0.5)
        await wait_until(lambda: sc.state is ConnectivityState.TRANSIENT_FAILURE, what="TRANSIENT_FAILURE")
        reborn = Server(name="pod-2b")
        reborn.add_service(Greeter())
        await reborn.start("127.0.0.1", port)
        try:
            await wait_until(lambda: sc.state is READY, what="rejoined subchannel READY")
            assert channel.subchannels.count(sc) == 1 and len(channel.subchannels) == 4
            counts = await fire(channel, 100)
            assert counts == {"pod-1": 25, "pod-2b": 25, "pod-3": 25, "pod-4": 25}
        finally:
            await reborn.stop(grace=0.5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_backoff_spacing_grows() -> None:
    """With nothing listening, successive attempts are spaced by base×1.6^k (±20 %), capped."""
    loop = asyncio.get_running_loop()
    events: list[tuple[float, ConnectivityState]] = []
    channel = Channel(f"ipv4:127.0.0.1:{_free_port()}", "round_robin", options=FAST)

    def on_event(ch: Channel, kind: str, data: Any) -> None:
        if kind == "subchannel_state":
            events.append((loop.time(), data[2]))

    channel.add_listener(on_event)
    try:
        attempts = 7
        await wait_until(
            lambda: sum(1 for _, s in events if s is ConnectivityState.CONNECTING) >= attempts,
            timeout=5,
            what=f"{attempts} connection attempts",
        )
    finally:
        await channel.close()
    # gap k: from entering TRANSIENT_FAILURE after attempt k to the next CONNECTING
    gaps: list[float] = []
    tf_at: float | None = None
    for t, state in events:
        if state is ConnectivityState.TRANSIENT_FAILURE:
            tf_at = t
        elif state is ConnectivityState.CONNECTING and tf_at is not None:
            gaps.append(t - tf_at)
            tf_at = None
    assert len(gaps) >= attempts - 1
    b = FAST_BACKOFF
    for k, gap in enumerate(gaps[: attempts - 1]):
        expected = min(b.base_delay * b.multiplier**k, b.max_delay)
        assert expected * (1 - b.jitter) - 0.003 <= gap <= expected * (1 + b.jitter) + 0.1, (k, gap, gaps)
    # growth: late gaps are clearly longer than the first
    assert gaps[4] > gaps[0] * 2


async def test_backoff_next_attempt_at_exposed() -> None:
    """A subchannel in TRANSIENT_FAILURE reports when it will try again and why it failed."""
    async with Channel(f"127.0.0.1:{_free_port()}", "pick_first", options=FAST) as channel:
        await wait_until(lambda: bool(channel.subchannels), what="subchannel")
        sc = channel.subchannels[0]
        await wait_until(lambda: sc.state is ConnectivityState.TRANSIENT_FAILURE, what="TRANSIENT_FAILURE")
        assert sc.next_attempt_at is not None and sc.last_error
        with pytest.raises(RpcError) as info:
            await greet(channel, timeout=2)
        assert info.value.code is StatusCode.UNAVAILABLE


# --- counters, interceptors, cancellation ---------------------------------------------


async def test_channel_counters_reconcile(greeters: list[Server]) -> None:
    """started == succeeded + failed, by status, and per-subchannel successes sum to the channel's."""
    async with Channel(ipv4_target(greeters), "round_robin", options=FAST) as channel:
        await all_ready(channel, 4)
        await fire(channel, 20)
        for _ in range(3):
            with pytest.raises(RpcError):
                await channel.unary_unary("/helloworld.Greeter/Nope").with_call(b"", timeout=5)
        s = channel.stats
        assert s.calls_started == 23 == s.calls_succeeded + s.calls_failed
        assert (s.calls_succeeded, s.calls_failed, s.calls_in_flight) == (20, 3, 0)
        assert s.status_counts() == {"OK": 20, "UNIMPLEMENTED": 3}
        assert s.failures() == {"UNIMPLEMENTED": 3}
        assert sum(sc.stats.calls_succeeded for sc in channel.subchannels) == 20
        assert sum(sc.stats.calls_failed for sc in channel.subchannels) == 3
        assert sum(sc.stats.calls_started for sc in channel.subchannels) == 23
        assert sum(g.stats.calls_served for g in greeters) == 23


async def test_subchannel_successes_match_channel_when_response_unparsable(greeters: list[Server]) -> None:
    """A response the client cannot parse is a failed call everywhere, not a success on the subchannel."""

    def bad_deserializer(data: bytes) -> Any:
        raise ValueError("cannot parse")

    async with Channel(str(greeters[0].address), options=FAST) as channel:
        await greet(channel, timeout=5)
        with pytest.raises(RpcError) as info:
            await channel.unary_unary(
                SAY_HELLO, request_serializer=HelloRequest.SerializeToString, response_deserializer=bad_deserializer
            ).with_call(HelloRequest(name="x"), timeout=5)
        assert info.value.code is StatusCode.INTERNAL
        s = channel.stats
        assert (s.calls_succeeded, s.calls_failed) == (1, 1)
        assert sum(sc.stats.calls_succeeded for sc in channel.subchannels) == s.calls_succeeded
        assert sum(sc.stats.calls_failed for sc in channel.subchannels) == s.calls_failed


async def test_interceptors_run_in_order_and_add_metadata(probe: tuple[Server, Probe]) -> None:
    """The first interceptor is outermost; metadata they add reaches the server."""
    server, p = probe
    log: list[str] = []

    def make(name: str) -> Any:
        async def interceptor(details: CallDetails, call: Call, invoke: Invoker) -> None:
            log.append(f"{name}>")
            details.metadata = (*details.metadata, (f"x-{name}", name))
            call.add_done_callback(lambda c: log.append(f"{name} saw {c.done()}"))
            await invoke(details)
            log.append(f"<{name}")

        return interceptor

    async with Channel(str(server.address), options=FAST, interceptors=[make("a"), make("b")]) as channel:
        await channel.unary_unary(META).with_call(b"", metadata=(("x-call", "c"),), timeout=5)
        call = channel.unary_unary(META)(b"", timeout=5)
        await call
        assert await call.code() is StatusCode.OK
    assert log == ["a>", "b>", "<b", "<a", "a saw True", "b saw True"] * 2
    first, second = p.metadata
    assert metadata_value(first, "x-call") == "c"
    assert [k for k, _ in first if k.startswith("x-")] == ["x-call", "x-a", "x-b"]
    assert [k for k, _ in second if k.startswith("x-")] == ["x-a", "x-b"]


async def test_cancelled_call_counts_cancelled_and_cancels_handler(probe: tuple[Server, Probe]) -> None:
    """task.cancel() ends the call as CANCELLED in the channel stats; the server handler is cancelled."""
    server, p = probe
    async with Channel(str(server.address), options=FAST) as channel:
        task = asyncio.create_task(channel.unary_unary(GATE).with_call(b"", timeout=10))
        await wait_until(lambda: p.started == 1, what="handler started")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert channel.stats.status_counts() == {"CANCELLED": 1}
        assert channel.stats.calls_in_flight == 0
        await wait_until(lambda: p.cancelled == 1, timeout=2, what="handler cancelled")
        await wait_until(lambda: server.stats.calls_in_flight == 0, what="server call ended")
        assert server.stats.status_counts() == {"CANCELLED": 1}


# --- server lifecycle and counters ----------------------------------------------------


async def test_graceful_stop_finishes_in_flight_and_refuses_new(probe: tuple[Server, Probe]) -> None:
    """During stop(), running calls complete OK while new connections are refused."""
    server, p = probe
    address = server.address
    async with Channel(str(address), options=FAST) as channel:
        calls = [asyncio.create_task(channel.unary_unary(GATE).with_call(b"", timeout=10)) for _ in range(3)]
        await wait_until(lambda: p.started == 3, what="3 handlers running")
        stopping = asyncio.create_task(server.stop(grace=5))
        await wait_until(lambda: not server.serving, what="server stops listening")
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(address.host, address.port)
        async with Channel(str(address), options=FAST) as late:
            with pytest.raises(RpcError) as info:
                await greet(late, timeout=2)
            assert info.value.code is StatusCode.UNAVAILABLE
        assert not stopping.done()
        p.release.set()
        results = await asyncio.gather(*calls)
        assert [r.response for r in results] == [b"released"] * 3
        await asyncio.wait_for(stopping, 5)
    assert server.stats.connections_open == 0
    assert server.stats.status_counts() == {"OK": 3}


async def test_server_counters(probe: tuple[Server, Probe]) -> None:
    """connections_open, calls_in_flight, calls_served and status_counts() match the traffic."""
    server, p = probe
    async with Channel(str(server.address), options=FAST) as channel:
        for _ in range(5):
            await channel.unary_unary(META).with_call(b"", timeout=5)
        with pytest.raises(RpcError):
            await channel.unary_unary("/test.T/Missing").with_call(b"", timeout=5)
        with pytest.raises(RpcError):
            await channel.unary_unary(ABORT).with_call(b"", timeout=5)
        gated = [asyncio.create_task(channel.unary_unary(GATE).with_call(b"", timeout=10)) for _ in range(2)]
        await wait_until(lambda: p.started == 2, what="2 gated calls running")
        assert server.stats.connections_open == 1
        assert server.stats.calls_in_flight == 2
        assert server.stats.calls_served == 7
        p.release.set()
        await asyncio.gather(*gated)
        assert server.stats.calls_in_flight == 0
        assert server.stats.calls_served == 9
        assert server.stats.status_counts() == {"OK": 7, "UNIMPLEMENTED": 1, "NOT_FOUND": 1}
    await wait_until(lambda: server.stats.connections_open == 0, what="connection closed")
    assert server.stats.connections_total == 1


# --- MAX_CONCURRENT_STREAMS -------------------------------------------------------------


async def test_max_concurrent_streams_client_waits_for_slots() -> None:
    """With max_concurrent_streams=2, 10 concurrent calls all succeed, never more than 2 at once."""
    server, p = await probe_server(ServerOptions(max_concurrent_streams=2))
    try:
        async with Channel(str(server.address), options=FAST) as channel:
            results = await asyncio.gather(
                *(channel.unary_unary(WORK).with_call(b"%d" % i, timeout=5) for i in range(10))
            )
        assert [r.response for r in results] == [b"%d" % i for i in range(10)]
        assert p.max_active == 2
        assert server.stats.status_counts() == {"OK": 10}
    finally:
        await server.stop(grace=0.5)


async def test_cancelled_call_frees_its_stream_slot(narrow: tuple[Server, Probe]) -> None:
    """After cancelling the only in-flight call on a 1-stream connection, the next call gets the slot."""
    server, p = narrow
    async with Channel(str(server.address), options=FAST) as channel:
        task = asyncio.create_task(channel.unary_unary(GATE).with_call(b"", timeout=10))
        await wait_until(lambda: p.started == 1, what="slot taken")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        result = await asyncio.wait_for(channel.unary_unary(META).with_call(b"", timeout=2), 2)
        assert result.response == b"ok"


async def test_deadline_applies_while_waiting_for_stream_slot(narrow: tuple[Server, Probe]) -> None:
    """A call queued behind a full connection still fails at its deadline, not when the slot frees."""
    server, p = narrow
    async with Channel(str(server.address), options=FAST) as channel:
        holder = asyncio.create_task(channel.unary_unary(GATE).with_call(b"", timeout=10))
        await wait_until(lambda: p.started == 1, what="slot taken")
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            with pytest.raises(RpcError) as info:
                await asyncio.wait_for(channel.unary_unary(META).with_call(b"", timeout=0.2), 2)
            assert info.value.code is StatusCode.DEADLINE_EXCEEDED
            assert loop.time() - start < 1.0
            assert not holder.done()
        finally:
            p.release.set()
            await holder


async def test_cancelled_slot_waiter_does_not_swallow_wakeup(narrow: tuple[Server, Probe]) -> None:
    """Cancelling one call queued for a stream slot must not leave the next queued call stuck."""
    server, p = narrow
    async with Channel(str(server.address), options=FAST) as channel:
        holder = asyncio.create_task(channel.unary_unary(GATE).with_call(b"", timeout=10))
        await wait_until(lambda: p.started == 1, what="slot taken")
        b = asyncio.create_task(channel.unary_unary(META).with_call(b"", timeout=10))
        c = asyncio.create_task(channel.unary_unary(META).with_call(b"", timeout=10))
        sc = channel.subchannels[0]
        await wait_until(lambda: sc.stats.calls_in_flight == 3, what="two calls queued for a slot")
        b.cancel()
        with pytest.raises(asyncio.CancelledError):
            await b
        p.release.set()
        await holder
        result = await asyncio.wait_for(c, 2)
        assert result.response == b"ok"


async def test_queued_call_fails_when_connection_dies(narrow: tuple[Server, Probe]) -> None:
    """A call waiting for a stream slot ends (UNAVAILABLE) when the connection dies, instead of hanging."""
    server, p = narrow
    async with Channel(str(server.address), options=FAST) as channel:
        holder = asyncio.create_task(channel.unary_unary(GATE).with_call(b"", timeout=10))
        await wait_until(lambda: p.started == 1, what="slot taken")
        queued = asyncio.create_task(channel.unary_unary(META).with_call(b"", timeout=10))
        sc = channel.subchannels[0]
        await wait_until(lambda: sc.stats.calls_in_flight == 2, what="one call queued for a slot")
        server.kill()
        with pytest.raises(RpcError) as held:
            await asyncio.wait_for(holder, 2)
        assert held.value.code is StatusCode.UNAVAILABLE
        with pytest.raises(RpcError) as info:
            await asyncio.wait_for(queued, 2)
        assert info.value.code is StatusCode.UNAVAILABLE


async def test_round_robin_failure_is_sticky_until_a_backend_is_ready() -> None:
    """All backends down: the channel stays TRANSIENT_FAILURE through every retry, calls fail fast; a
    backend coming up makes it READY again."""
    ports = [_free_port(), _free_port()]
    states: list[ConnectivityState] = []
    channel = Channel("ipv4:" + ",".join(f"127.0.0.1:{p}" for p in ports), "round_robin", options=FAST)
    channel.add_listener(lambda ch, kind, data: states.append(data) if kind == "state" else None)
    server = None
    try:
        await channel.wait_for_state(ConnectivityState.TRANSIENT_FAILURE, timeout=5)
        failed_at = len(states)
        retries_before = sum(sc.stats.connect_failures for sc in channel.subchannels)
        await wait_until(
            lambda: sum(sc.stats.connect_failures for sc in channel.subchannels) >= retries_before + 4,
            what="several reconnect attempts",
        )
        assert set(states[failed_at:]) <= {ConnectivityState.TRANSIENT_FAILURE}, states[failed_at:]
        with pytest.raises(RpcError) as info:
            await asyncio.wait_for(greet(channel), 1.0)
        assert info.value.code is StatusCode.UNAVAILABLE

        server = Server(name="pod-late")
        server.add_service(Greeter())
        await server.start("127.0.0.1", ports[1])
        await channel.wait_for_state(ConnectivityState.READY, timeout=5)
        assert served_by(await greet(channel)) == "pod-late"
    finally:
        await channel.close(grace=0)
        if server is not None:
            await server.stop(grace=0.5)
