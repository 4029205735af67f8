"""The embedded L7 (gRPC) proxy: every call forwarded to a backend of its own, everything else unchanged.

Real servers, real sockets; clients are our Channel and a stock grpcio one.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from hyperframe.frame import Frame

from app.greeter.helloworld_pb2 import HelloReply, HelloRequest
from app.greeter.service import SAY_HELLO
from tests.helpers import FAST, greet, ipv4_target, served_by, wait_until
from transport import Channel, Server
from transport.address import Address
from transport.http2 import GrpcH2Connection
from transport.metadata import Metadata
from transport.proxy import L7CallInfo, L7Proxy
from transport.server import EOF, ServerCall, stream_stream, stream_unary, unary_stream, unary_unary
from transport.status import RpcError, StatusCode

SERVICE = "/rpcviz.test.Proxied"
ECHO = f"{SERVICE}/Echo"
NOT_FOUND = f"{SERVICE}/NotFound"
SLOW = f"{SERVICE}/Slow"
COUNT = f"{SERVICE}/Count"
JOIN = f"{SERVICE}/Join"
PING_PONG = f"{SERVICE}/PingPong"


class Proxied:
    """A backend with one method per behaviour the proxy must pass through; raw bytes, no codec."""

    def __init__(self) -> None:
        self.seen_metadata: list[Metadata] = []
        self.seen_timeouts: list[float | None] = []
        self.slow_started = asyncio.Event()
        self.slow_cancelled = asyncio.Event()
        self.ping_pong_cancelled = asyncio.Event()

    def method_handlers(self) -> dict[str, Any]:
        return {
            ECHO: unary_unary(self.echo),
            NOT_FOUND: unary_unary(self.not_found),
            SLOW: unary_unary(self.slow),
            COUNT: unary_stream(self.count),
            JOIN: stream_unary(self.join),
            PING_PONG: stream_stream(self.ping_pong),
        }

    async def echo(self, request: bytes, context: ServerCall) -> bytes:
        """The request back; the request metadata back as response headers (``echo-`` prefixed), and trailers."""
        metadata = context.invocation_metadata()
        self.seen_metadata.append(metadata)
        await context.send_initial_metadata([(f"echo-{k}", v) for k, v in metadata])
        context.set_trailing_metadata([("x-trailer", "t"), ("x-trailer-bin", b"\x01\x00\x02")])
        return request

    async def not_found(self, request: bytes, context: ServerCall) -> bytes:
        context.abort(
            StatusCode.NOT_FOUND, "no such thing: 'widget 7' (gone)", [("x-why", "deleted"), ("x-id-bin", b"\xff")]
        )

    async def slow(self, request: bytes, context: ServerCall) -> bytes:
        self.seen_timeouts.append(context.time_remaining())
        self.slow_started.set()
        try:
            await asyncio.Event().wait()  # never answers: only a cancellation ends it
        except asyncio.CancelledError:
            self.slow_cancelled.set()
            raise
        return b""

    async def count(self, request: bytes, context: ServerCall) -> AsyncIterator[bytes]:
        for i in range(int(request)):
            yield str(i).encode()

    async def join(self, requests: AsyncIterator[bytes], context: ServerCall) -> bytes:
        return b"+".join([r async for r in requests])

    async def ping_pong(self, requests: AsyncIterator[bytes], context: ServerCall) -> AsyncIterator[bytes]:
        # Response headers before any message: a client may wait for them before it writes.
        await context.send_initial_metadata([("x-ready", "yes")])
        try:
            async for request in requests:
                yield b"pong:" + request
        except asyncio.CancelledError:
            self.ping_pong_cancelled.set()
            raise


@pytest.fixture
async def backend() -> AsyncIterator[tuple[Server, Proxied]]:
    service = Proxied()
    server = Server(name="pod-p")
    server.add_service(service)
    await server.start("127.0.0.1", 0)
    yield server, service
    await server.stop(grace=0.5)


@pytest.fixture
async def proxied(backend: tuple[Server, Proxied]) -> AsyncIterator[tuple[Channel, Proxied, L7Proxy]]:
    """A pick_first client -> L7 proxy -> the Proxied backend."""
    server, service = backend
    async with L7Proxy([server.address], channel_options=FAST) as proxy:
        channel = Channel(f"ipv4:{proxy.address}", "pick_first", options=FAST)
        try:
            yield channel, service, proxy
        finally:
            await channel.close(grace=0)


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the claim -------------------------------------------------------------------------------


async def test_pick_first_through_l7_spreads_400_calls_over_4_pods_on_one_connection(greeters: list[Server]) -> None:
    """The claim: pick_first -> L7 proxy (round_robin per call) -> 4 pods, 400 calls: one client
    connection, each pod 100 ± 1 by its own counters; the proxy's counters and "call" events agree."""
    events: Counter[Address | None] = Counter()

    def on_event(event: str, info: Any) -> None:
        if event == "call":
            assert isinstance(info, L7CallInfo)
            events[info.backend] += 1

    async with L7Proxy(ipv4_target(greeters), channel_options=FAST) as proxy:
        proxy.add_listener(on_event)
        await wait_until(lambda: proxy.ready_backends() == 4, what="the proxy's 4 upstream connections")
        async with Channel(f"ipv4:{proxy.address}", "pick_first", options=FAST) as channel:
            by_pod = Counter([served_by(await greet(channel)) for _ in range(400)])
        assert proxy.server.stats.connections_total == 1, proxy.server.stats
        served = [pod.stats.method_ok(SAY_HELLO) for pod in greeters]
        assert all(99 <= n <= 101 for n in served), f"each pod 100 ± 1, got {served}"
        assert sum(served) == 400
        assert by_pod == {f"pod-{i + 1}": served[i] for i in range(4)}
        stats = {b.address: b for b in proxy.backends}
        assert [stats[pod.address].calls_ok for pod in greeters] == served
        assert all(b.calls_in_flight == 0 for b in stats.values())
        assert {pod.address: n for pod, n in zip(greeters, served, strict=True)} == dict(events)
        # The proxy's own upstream connections: one per pod, whatever the client does.
        assert sorted(sc.address for sc in proxy.channel.subchannels) == sorted(p.address for p in greeters)


async def test_l7_proxy_with_pick_first_upstream_sends_every_call_to_one_pod(greeters: list[Server]) -> None:
    """policy="pick_first" at the proxy: every call to the first backend (the policy is the proxy's)."""
    async with (
        L7Proxy(ipv4_target(greeters), "pick_first", channel_options=FAST) as proxy,
        Channel(f"ipv4:{proxy.address}", "round_robin", options=FAST) as channel,
    ):
        by_pod = Counter([served_by(await greet(channel)) for _ in range(20)])
    assert by_pod == {"pod-1": 20}


# --- what passes through unchanged -------------------------------------------------------------


async def test_metadata_both_ways_and_trailers_pass_through(proxied: tuple[Channel, Proxied, L7Proxy]) -> None:
    """Request metadata (text and -bin) reaches the backend exactly as sent; its response headers and
    trailers reach the client exactly as sent; nothing added on the way."""
    channel, service, _ = proxied
    sent = (("x-user", "ada"), ("x-blob-bin", b"\x00\xff\x10"))
    call = channel.unary_unary(ECHO)(b"payload", metadata=sent, timeout=5)
    assert await call == b"payload"
    assert service.seen_metadata == [sent]
    assert await call.initial_metadata() == (
        ("rpcviz-server", "pod-p"),
        ("echo-x-user", "ada"),
        ("echo-x-blob-bin", b"\x00\xff\x10"),
    )
    assert await call.trailing_metadata() == (("x-trailer", "t"), ("x-trailer-bin", b"\x01\x00\x02"))
    assert call.sent_response_headers()


async def test_a_non_ok_status_passes_through_unchanged(proxied: tuple[Channel, Proxied, L7Proxy]) -> None:
    """The backend's NOT_FOUND, its details (with characters that need percent-encoding) and its
    trailing metadata reach the client as sent, as Trailers-Only just as the backend answered."""
    channel, _, proxy = proxied
    call = channel.unary_unary(NOT_FOUND)(b"", timeout=5)
    with pytest.raises(RpcError) as raised:
        await call
    error = raised.value
    assert error.code is StatusCode.NOT_FOUND
    assert error.details == "no such thing: 'widget 7' (gone)"
    assert error.trailing_metadata == (("rpcviz-server", "pod-p"), ("x-why", "deleted"), ("x-id-bin", b"\xff"))
    assert not call.sent_response_headers()  # Trailers-Only, as the backend sent it
    [stats] = proxy.backends
    assert stats.status_counts() == {"NOT_FOUND": 1}


async def test_an_unknown_method_gets_the_backends_unimplemented(proxied: tuple[Channel, Proxied, L7Proxy]) -> None:
    """The proxy forwards any method; the backend's UNIMPLEMENTED comes back unchanged."""
    channel, _, _ = proxied
    with pytest.raises(RpcError) as raised:
        await channel.unary_unary(f"{SERVICE}/NoSuchMethod")(b"", timeout=5)
    assert raised.value.code is StatusCode.UNIMPLEMENTED
    assert raised.value.details == f"Method not found: {SERVICE}/NoSuchMethod"


# --- deadline and cancellation ------------------------------------------------------------------


async def test_the_deadline_is_forwarded_and_the_backend_call_cancelled(
    proxied: tuple[Channel, Proxied, L7Proxy],
) -> None:
    """A 0.3 s timeout against a backend that never answers: DEADLINE_EXCEEDED at the client, the
    backend saw a deadline of at most 0.3 s, and its handler is cancelled."""
    channel, service, proxy = proxied
    with pytest.raises(RpcError) as raised:
        await channel.unary_unary(SLOW)(b"", timeout=0.3)
    assert raised.value.code is StatusCode.DEADLINE_EXCEEDED
    assert service.slow_started.is_set()
    [remaining] = service.seen_timeouts
    assert remaining is not None and 0 < remaining <= 0.3, remaining
    await wait_until(service.slow_cancelled.is_set, what="the backend handler to be cancelled")
    await wait_until(lambda: proxy.backends[0].calls_in_flight == 0, what="the proxy to count the call done")


async def test_a_client_cancel_mid_stream_cancels_the_upstream_call(
    proxied: tuple[Channel, Proxied, L7Proxy],
) -> None:
    """A bidi call cancelled after one ping-pong: the backend's handler is cancelled too."""
    channel, service, proxy = proxied
    call = channel.stream_stream(PING_PONG)(timeout=10)
    await call.write(b"1")
    assert await call.read() == b"pong:1"
    assert call.cancel()
    await wait_until(service.ping_pong_cancelled.is_set, what="the backend handler to be cancelled")
    await wait_until(lambda: proxy.backends[0].calls_in_flight == 0, what="the proxy to count the call done")
    assert proxy.backends[0].status_counts() == {"CANCELLED": 1}


# --- the other cardinalities --------------------------------------------------------------------


async def test_server_streaming_through_the_proxy(proxied: tuple[Channel, Proxied, L7Proxy]) -> None:
    channel, _, _ = proxied
    call = channel.unary_stream(COUNT)(b"5", timeout=5)
    assert [r async for r in call] == [b"0", b"1", b"2", b"3", b"4"]
    assert await call.code() is StatusCode.OK


async def test_client_streaming_through_the_proxy(proxied: tuple[Channel, Proxied, L7Proxy]) -> None:
    channel, _, _ = proxied
    call = channel.stream_unary(JOIN)(timeout=5)
    for part in (b"a", b"b", b"c"):
        await call.write(part)
    await call.done_writing()
    assert await call == b"a+b+c"


async def test_bidi_ping_pong_through_the_proxy_with_headers_first(proxied: tuple[Channel, Proxied, L7Proxy]) -> None:
    """Response headers the backend sends before any message reach the client before it writes
    (a client may wait for them), then each request gets its answer before the next is sent."""
    channel, _, _ = proxied
    call = channel.stream_stream(PING_PONG)(timeout=5)
    async with asyncio.timeout(5):
        assert await call.initial_metadata() == (("rpcviz-server", "pod-p"), ("x-ready", "yes"))
    for i in range(5):
        await call.write(str(i).encode())
        assert await call.read() == f"pong:{i}".encode()
    await call.done_writing()
    assert await call.read() is EOF
    assert await call.code() is StatusCode.OK


# --- how many writes a call takes -----------------------------------------------------------------


def _frames(data: bytes) -> list[tuple[str, frozenset[str]]]:
    """The frames in one write, as (type, flags)."""
    frames = []
    view = memoryview(data)
    while view:
        frame, length = Frame.parse_frame_header(view[:9])
        frames.append((type(frame).__name__, frozenset(frame.flags)))
        view = view[9 + length :]
    return frames


async def test_a_unary_call_is_forwarded_in_one_write_each_way(
    proxied: tuple[Channel, Proxied, L7Proxy], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Upstream, the request goes as a unary client sends it: one write of HEADERS and a DATA frame
    that ends the stream (not a third, empty DATA frame to end it); downstream, the answer goes as a
    unary server sends it: one write of HEADERS, DATA and the trailers. Four writes in all for the
    call: the client's, the proxy's upstream, the backend's, the proxy's downstream."""
    channel, _, _ = proxied
    assert await channel.unary_unary(ECHO)(b"warm", timeout=5) == b"warm"  # connections up, SETTINGS done
    writes: list[tuple[str, list[tuple[str, frozenset[str]]]]] = []
    data_to_send = GrpcH2Connection.data_to_send

    def recording(self: GrpcH2Connection, amount: int | None = None) -> bytes:
        data = data_to_send(self, amount)
        if data:
            writes.append(("client" if self.config.client_side else "server", _frames(data)))
        return data

    monkeypatch.setattr(GrpcH2Connection, "data_to_send", recording)
    assert await channel.unary_unary(ECHO)(b"payload", timeout=5) == b"payload"
    monkeypatch.undo()
    request = [("HeadersFrame", frozenset({"END_HEADERS"})), ("DataFrame", frozenset({"END_STREAM"}))]
    answer = [
        ("HeadersFrame", frozenset({"END_HEADERS"})),
        ("DataFrame", frozenset()),
        ("HeadersFrame", frozenset({"END_HEADERS", "END_STREAM"})),
    ]
    assert writes == [("client", request), ("client", request), ("server", answer), ("server", answer)]


@pytest.mark.parametrize("size", [40 * 1024, 1024 * 1024 + 1])
async def test_large_unary_messages_both_ways(proxied: tuple[Channel, Proxied, L7Proxy], size: int) -> None:
    """Larger than a frame (40 KiB) and than a stream window (1 MiB + 1): the one-write paths step aside
    and flow control carries them, intact, both ways."""
    channel, _, proxy = proxied
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    call = channel.unary_unary(ECHO)(payload, timeout=10)
    assert await call == payload
    assert await call.trailing_metadata() == (("x-trailer", "t"), ("x-trailer-bin", b"\x01\x00\x02"))
    assert proxy.backends[0].status_counts() == {"OK": 1}


async def test_a_client_stream_of_no_messages_through_the_proxy(proxied: tuple[Channel, Proxied, L7Proxy]) -> None:
    """A request stream that ends with no message at all is not a whole unary request: it is forwarded
    as a stream, and the backend sees it end empty."""
    channel, _, _ = proxied
    call = channel.stream_unary(JOIN)(timeout=5)
    await call.done_writing()
    assert await call == b""


# --- failures of its own -------------------------------------------------------------------------


async def test_all_backends_down_is_unavailable_quickly() -> None:
    """No backend listening: UNAVAILABLE with a sentence naming the backends, well within the timeout."""
    target = f"ipv4:127.0.0.1:{closed_port()},127.0.0.1:{closed_port()}"
    async with (
        L7Proxy(target, channel_options=FAST) as proxy,
        Channel(f"ipv4:{proxy.address}", "pick_first", options=FAST) as channel,
    ):
        started = time.monotonic()
        with pytest.raises(RpcError) as raised:
            await greet(channel, timeout=10)
        assert time.monotonic() - started < 5, "UNAVAILABLE should come at once, not at the deadline"
        assert raised.value.code is StatusCode.UNAVAILABLE
        assert raised.value.details.startswith(f"L7 proxy: no backend of {target} took the call"), raised.value.details
        assert proxy.calls_unrouted == 1


# --- a stock grpcio client ------------------------------------------------------------------------


async def test_a_grpcio_client_through_the_proxy(greeters: list[Server]) -> None:
    """grpcio's own client (pick_first, one connection) gets answers from every pod through the proxy."""
    async with L7Proxy(ipv4_target(greeters), channel_options=FAST) as proxy:
        await wait_until(lambda: proxy.ready_backends() == 4, what="the proxy's 4 upstream connections")
        async with grpc.aio.insecure_channel(str(proxy.address)) as channel:
            say_hello = channel.unary_unary(
                SAY_HELLO,
                request_serializer=HelloRequest.SerializeToString,
                response_deserializer=HelloReply.FromString,
            )
            pods: Counter[str] = Counter()
            for _ in range(8):
                call = say_hello(HelloRequest(name="Ada"), timeout=5, metadata=(("x-user", "ada"),))
                assert (await call).message == "Hello, Ada!"
                pods[str(dict(await call.initial_metadata())["rpcviz-server"])] += 1
                assert await call.code() is grpc.StatusCode.OK
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await channel.unary_unary("/helloworld.Greeter/Nope")(b"", timeout=5)
            assert raised.value.code() is grpc.StatusCode.UNIMPLEMENTED
        assert pods == {"pod-1": 2, "pod-2": 2, "pod-3": 2, "pod-4": 2}
        assert proxy.server.stats.connections_total == 1


async def test_stop_ends_running_calls_with_unavailable_and_cancels_them_upstream(
    backend: tuple[Server, Proxied],
) -> None:
    """stop(grace) with a call that never ends: after the grace the client gets UNAVAILABLE and the
    backend's handler is cancelled (nothing is left running behind the proxy)."""
    server, service = backend
    proxy = L7Proxy([server.address], channel_options=FAST)
    await proxy.start()
    async with Channel(f"ipv4:{proxy.address}", "pick_first", options=FAST) as channel:
        call = channel.unary_unary(SLOW)(b"", timeout=10)
        waiting = asyncio.ensure_future(call.code())
        await wait_until(service.slow_started.is_set, what="the slow call to reach the backend")
        await proxy.stop(grace=0.1)
        async with asyncio.timeout(5):
            assert await waiting is StatusCode.UNAVAILABLE
        await wait_until(service.slow_cancelled.is_set, what="the backend handler to be cancelled")
    assert proxy.backends[0].calls_in_flight == 0
