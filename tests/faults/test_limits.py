"""Bounds on what a peer can make one server connection hold, on real sockets (issue 10 #6, #7, #10).

- Frames: a frame over SETTINGS_MAX_FRAME_SIZE is refused from its 9-byte header; a header block
  (HEADERS + CONTINUATION) is bounded in bytes and in time.
- Control-frame floods (CVE-2019-9512 / 9515): PINGs follow gRFC A8's enforcement, SETTINGS are
  rate-bounded, and answers a non-reading peer lets pile up are bounded; each ends in GOAWAY
  ENHANCE_YOUR_CALM, while grpcio's own BDP pings never trip it.
- Header lists over the limit fail only their call (RESOURCE_EXHAUSTED), on both sides, and the
  connection and its HPACK state carry on.

Where memory is the point, the assertion carries the figure: the server connection's buffered
input or its unsent output, read from the connection itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from h2.errors import ErrorCodes
from hyperframe.frame import ContinuationFrame, GoAwayFrame, HeadersFrame, PingFrame, SettingsFrame

from app.greeter.service import Greeter
from tests.faults.env import FaultEnv
from tests.faults.rawclient import (
    RawH2Client,
    frame_header,
    grpc_message,
    open_flood_socket,
    read_socket_frames,
    request_headers,
)
from tests.helpers import FAST, greet, wait_until
from transport import Channel, RpcError, Server, ServerOptions, ServicerContext, StatusCode, unary_unary
from transport.http2 import DEFAULT_MAX_FRAME_SIZE
from transport.server.connection import ServerConnection

ECHO = b"/test.Limits/Echo"
#: Answers with the request's ``x-probe`` metadata value, to check what the server decoded.
PROBE = b"/test.Limits/Probe"
#: Answers 256 KiB.
BIG = b"/test.Limits/Big"
#: Answers with 20 KB of trailing metadata.
BIG_TRAILERS = b"/test.Limits/BigTrailers"
KIB = 1024
MIB = 1024 * KIB


def _hex(n: int, seed: int = 7) -> bytes:
    """``n`` hex characters, deterministic and not compressible by HPACK's Huffman code below ~5/8."""
    return random.Random(seed).randbytes(n // 2).hex().encode()


class Env(FaultEnv):
    """Servers, raw clients and flood sockets under test; what went wrong unseen."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        super().__init__(caplog)
        self.sockets: list[socket.socket] = []
        #: Requests the Echo handler ran for.
        self.echoed: list[bytes] = []

    async def start(self, options: ServerOptions | None = None) -> Server:
        server = Server(name="limits", options=options)
        server.add_service(Greeter())

        async def echo(request: bytes, context: ServicerContext) -> bytes:
            self.echoed.append(request)
            return request

        async def probe(request: bytes, context: ServicerContext) -> bytes:
            value = dict(context.invocation_metadata()).get("x-probe", "")
            return value.encode() if isinstance(value, str) else value

        async def big(request: bytes, context: ServicerContext) -> bytes:
            return b"x" * (256 * KIB)

        async def big_trailers(request: bytes, context: ServicerContext) -> bytes:
            context.set_trailing_metadata([("x-big", _hex(20_000).decode())])
            return request

        server.add_method(ECHO.decode(), unary_unary(echo))
        server.add_method(PROBE.decode(), unary_unary(probe))
        server.add_method(BIG.decode(), unary_unary(big))
        server.add_method(BIG_TRAILERS.decode(), unary_unary(big_trailers))
        await server.start("127.0.0.1", 0)
        self.servers.append(server)
        return server

    async def client(self, server: Server) -> RawH2Client:
        """A raw client past the handshake: it has read the server's SETTINGS and sent the ACK,
        so no ACK of ours can land inside a header block a test sends."""
        client = await RawH2Client.connect(server.port)
        self.clients.append(client)
        while not any(isinstance(f, SettingsFrame) and "ACK" not in f.flags for f in client.received):
            assert await client.read_frame(2.0) is not None, "the server closed during the handshake"
        return client

    async def flood_socket(self, server: Server) -> socket.socket:
        sock = await open_flood_socket(server.port)
        self.sockets.append(sock)
        return sock

    async def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        await super().close()


@pytest.fixture
async def env(caplog: pytest.LogCaptureFixture) -> AsyncIterator[Env]:
    caplog.set_level(logging.ERROR)
    e = Env(caplog)
    try:
        yield e
    finally:
        await e.close()


def _connection(server: Server) -> ServerConnection | None:
    """The server's one connection (None once it is gone)."""
    connections = list(server._connections)
    assert len(connections) <= 1
    return connections[0] if connections else None


def _held_input(conn: ServerConnection | None) -> int:
    """Bytes of peer input the connection holds: unparsed frames plus an unfinished header block."""
    if conn is None:
        return 0
    buffer = conn.h2.incoming_buffer
    held = len(buffer._data) + sum(len(f.data) for f in buffer._headers_buffer)
    return held + len(conn._large_frame or b"")  # (a large frame being read into a buffer of its own)


def _unsent_output(conn: ServerConnection | None) -> int:
    """Bytes the connection wrote that the peer has not taken."""
    if conn is None or conn.transport is None:
        return 0
    return conn.transport.get_write_buffer_size() + len(conn.h2._data_to_send)


async def _until_read(conn: ServerConnection, payload: int) -> None:
    """Until the connection holds ``payload`` bytes of header block fragments, or has closed."""
    await wait_until(lambda: conn.closed or _held_input(conn) >= payload, 2, f"the server to read {payload} bytes")


def _goaways(frames: list[Any]) -> list[GoAwayFrame]:
    return [f for f in frames if isinstance(f, GoAwayFrame)]


# --- 6. frames ----------------------------------------------------------------------------------


@pytest.mark.parametrize("frame_type", [0x0, 0x1, 0x9], ids=["DATA", "HEADERS", "CONTINUATION"])
async def test_frame_announcing_16mib_is_refused_from_its_header(env: Env, frame_type: int) -> None:
    """The 9-byte header alone is enough: GOAWAY FRAME_SIZE_ERROR at once, before any of the body."""
    server = await env.start()
    client = await env.client(server)
    await wait_until(lambda: server.stats.connections_open == 1, 2, "the connection")
    client.send(frame_header((1 << 24) - 1, frame_type, 0, 1))  # 16 MiB - 1, the largest a header can announce
    await client.drain()
    started = time.monotonic()
    try:
        frames = await client.read_until_closed(timeout=2.0)
    except TimeoutError:
        frames = []
    codes = [f.error_code for f in _goaways(frames)]
    assert codes and set(codes) == {ErrorCodes.FRAME_SIZE_ERROR}, (
        f"a 9-byte header announcing 16 MiB got GOAWAY {codes} within 2 s (the server waits for the body)"
    )
    assert time.monotonic() - started < 1.0
    await env.assert_serves(server)


async def test_oversized_frame_body_is_never_buffered(env: Env) -> None:
    """A peer streaming the body of a frame announcing 16 MiB: the server holds at most one read of it."""
    server = await env.start()
    client = await env.client(server)
    await wait_until(lambda: server.stats.connections_open == 1, 2, "the connection")
    conn = _connection(server)
    client.send(frame_header((1 << 24) - 1, 0x0, 0, 1))
    chunk = b"\0" * (256 * KIB)
    sent = 0
    held = 0
    with contextlib.suppress(ConnectionError, TimeoutError):
        for _ in range(16):  # 4 MiB of the 16 MiB body
            client.send(chunk)
            await client.drain()
            sent += len(chunk)
            held = max(held, _held_input(conn))
    # Wait until the server has either closed the connection or read everything sent.
    await wait_until(lambda: conn is None or conn.closed or _held_input(conn) >= sent, 5, "the server to read")
    held = max(held, _held_input(conn))
    assert held <= 64 * KIB + 9, f"the server buffered {held} bytes of a frame announcing 16 MiB (sent {sent})"
    assert conn is None or conn.closed
    await env.assert_serves(server)


async def test_a_large_frame_header_alone_does_not_make_the_server_allocate_the_frame(env: Env) -> None:
    """A DATA frame announcing the largest size we accept (1 MiB), on an open stream, then a trickle: the
    server holds what was sent, not the announced size; a large frame gets a buffer of its own only once a
    quarter of it has arrived (at most 4x the bytes sent, never over SETTINGS_MAX_FRAME_SIZE)."""
    server = await env.start()
    client = await env.client(server)
    await wait_until(lambda: server.stats.connections_open == 1, 2, "the connection")
    conn = _connection(server)
    assert conn is not None
    client.send_headers(1, request_headers(ECHO))
    client.send(frame_header(DEFAULT_MAX_FRAME_SIZE, 0x0, 0x0, 1) + b"\0" * 100)
    await client.drain()
    await wait_until(lambda: _held_input(conn) >= 109, 2, "the server to read the trickle")
    await asyncio.sleep(0.05)
    assert _held_input(conn) <= 4 * 109, f"the server holds {_held_input(conn)} bytes for 109 sent"
    client.send(b"\0" * (64 * KIB))
    await client.drain()
    sent = 109 + 64 * KIB
    await wait_until(lambda: _held_input(conn) >= sent, 2, "the server to read 64 KiB more")
    assert _held_input(conn) <= min(4 * sent, DEFAULT_MAX_FRAME_SIZE + 9)
    client.close()
    await env.assert_serves(server)


def _continuation_flood(frames: int, size: int = 16 * KIB) -> bytes:
    """HEADERS without END_HEADERS, then ``frames - 1`` CONTINUATION frames, none ending the block."""
    out = HeadersFrame(1, data=b"\0" * size).serialize()
    for _ in range(frames - 1):
        out += ContinuationFrame(1, data=b"\0" * size).serialize()
    return out


async def test_continuation_flood_is_cut_at_the_header_block_bound(env: Env) -> None:
    """max(2 x 16 KiB header list limit, 64 KiB) = 64 KiB of header block; the frame that crosses it
    is a connection error PROTOCOL_ERROR (golang.org/x/net/http2, and so grpc-go, answer the same)."""
    server = await env.start()
    client = await env.client(server)
    await wait_until(lambda: server.stats.connections_open == 1, 2, "the connection")
    conn = _connection(server)
    client.send(_continuation_flood(4))  # exactly 64 KiB: still allowed
    await client.drain()
    await wait_until(lambda: _held_input(conn) >= 64 * KIB, 2, "the server to hold the first 64 KiB")
    assert not client.goaways() and not conn.closed
    client.send(ContinuationFrame(1, data=b"\0" * 16 * KIB).serialize())  # 80 KiB
    try:
        frames = await client.read_until_closed(timeout=2.0)
    except TimeoutError:
        frames = []
    codes = [f.error_code for f in _goaways(frames)]
    assert codes == [ErrorCodes.PROTOCOL_ERROR], f"an 80 KiB unfinished header block got GOAWAY {codes}"
    assert _held_input(conn) <= 80 * KIB
    await env.assert_serves(server)


async def test_continuation_flood_holds_at_most_the_bound(env: Env) -> None:
    """HEADERS + 63 CONTINUATION frames of 16 KiB (h2's own limit is 64 frames, 1 MiB): held ≤ 80 KiB."""
    server = await env.start()
    client = await env.client(server)
    await wait_until(lambda: server.stats.connections_open == 1, 2, "the connection")
    conn = _connection(server)
    held = 0
    sent = 0
    with contextlib.suppress(ConnectionError, TimeoutError):
        for frame in range(64):
            f = HeadersFrame(1, data=b"\0" * 16 * KIB) if frame == 0 else ContinuationFrame(1, data=b"\0" * 16 * KIB)
            client.send(f.serialize())
            await client.drain()
            sent += 16 * KIB
            await _until_read(conn, sent)
            held = max(held, _held_input(conn))
            if conn.closed:
                break
    assert held <= 80 * KIB, f"the server held {held} bytes of one unfinished header block"
    assert conn.closed
    await env.assert_serves(server)


async def test_stalled_header_block_is_closed_after_the_timeout(env: Env) -> None:
    """HEADERS without END_HEADERS, then silence: GOAWAY ENHANCE_YOUR_CALM after header_block_timeout.
    A block finished in time (HEADERS + CONTINUATION back to back) is served and never trips it."""
    server = await env.start(ServerOptions(header_block_timeout=0.3))
    client = await env.client(server)
    # A request whose header block spans two frames, finished at once, then idle past the timeout.
    block = client.encoder.encode(request_headers(ECHO))
    client.send(HeadersFrame(1, data=block[:10]).serialize())
    client.send(ContinuationFrame(1, data=block[10:], flags=["END_HEADERS"]).serialize())
    client.send_data(1, grpc_message(b"split"), end_stream=True)
    result = await client.stream_result(1)
    assert result.grpc_status == StatusCode.OK and result.body == grpc_message(b"split")
    await client.read_idle(0.5)
    assert not client.goaways() and not client.eof
    # Now a block that never ends.
    block = client.encoder.encode(request_headers(ECHO))
    client.send(HeadersFrame(3, data=block[:10]).serialize())
    await client.drain()
    started = time.monotonic()
    try:
        frames = await client.read_until_closed(timeout=2.0)
    except TimeoutError:
        frames = []
    elapsed = time.monotonic() - started
    goaways = _goaways(frames)
    assert [g.error_code for g in goaways] == [ErrorCodes.ENHANCE_YOUR_CALM], (
        f"an unfinished header block got GOAWAY {[g.error_code for g in goaways]} within 2 s"
    )
    assert goaways[0].additional_data == b"header block not finished in time"
    assert 0.25 <= elapsed < 1.5, elapsed
    await env.assert_serves(server)


# --- 7. control-frame floods --------------------------------------------------------------------


def _small_send_buffer(conn: ServerConnection | None) -> ServerConnection:
    """Give the server's socket a small kernel send buffer (as on a loaded host), so answers a peer
    does not read back up into the process within a few hundred KiB instead of several MiB."""
    assert conn is not None and conn.transport is not None
    conn.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * KIB)
    return conn


def _pings(n: int) -> bytes:
    return PingFrame(0, opaque_data=b"12345678").serialize() * n


async def _flood(sock: socket.socket, frames: bytes, batch: int, stop: Any) -> int:
    """Write ``frames`` in batches of ``batch`` bytes, never reading, until ``stop()``; bytes written."""
    loop = asyncio.get_running_loop()
    sent = 0
    with contextlib.suppress(ConnectionError, TimeoutError):
        for start in range(0, len(frames), batch):
            if stop():
                break
            await asyncio.wait_for(loop.sock_sendall(sock, frames[start : start + batch]), 5)
            sent += min(batch, len(frames) - start)
    return sent


async def test_ping_flood_gets_too_many_pings(env: Env) -> None:
    """CVE-2019-9512 under gRFC A8 enforcement (defaults: min_time 5 min, no pings without calls):
    the first ping is free, the next two are strikes, the fourth is GOAWAY ENHANCE_YOUR_CALM
    ``too_many_pings``; 200,000 pings from a client that never reads get 3 acknowledgements."""
    server = await env.start()
    sock = await env.flood_socket(server)
    await wait_until(lambda: server.stats.connections_open == 1, 2, "the connection")
    conn = _small_send_buffer(_connection(server))
    await _flood(sock, _pings(200_000), 64 * KIB, lambda: server.stats.connections_calmed > 0)
    await wait_until(lambda: server.stats.connections_calmed > 0 or _unsent_output(conn) > MIB, 10, "calm or a pile")
    unsent = _unsent_output(conn)
    frames, closed = await read_socket_frames(sock, timeout=3.0)
    acks = sum(1 for f in frames if isinstance(f, PingFrame) and "ACK" in f.flags)
    goaways = _goaways(frames)
    assert [(g.error_code, g.additional_data) for g in goaways] == [
        (ErrorCodes.ENHANCE_YOUR_CALM, b"too_many_pings")
    ], f"{acks} PING ACKs, GOAWAY {[(g.error_code, g.additional_data) for g in goaways]}, {unsent} bytes unsent"
    assert acks <= 3, f"{acks} pings acknowledged"
    assert unsent <= 64 * KIB, f"{unsent} bytes of answers piled up"
    assert closed
    await env.assert_serves(server)


async def test_ping_flood_with_pings_permitted_is_bounded_by_the_backlog(env: Env) -> None:
    """With the ping policy off (min_time 0, pings without calls permitted) a client that never reads
    still cannot pile up acknowledgements: past 64 KiB of answers unsent, GOAWAY ENHANCE_YOUR_CALM."""
    server = await env.start(ServerOptions(keepalive_min_time=0.0, keepalive_permit_without_calls=True))
    sock = await env.flood_socket(server)
    await wait_until(lambda: server.stats.connections_open == 1, 2, "the connection")
    conn = _small_send_buffer(_connection(server))
    peak = 0

    def stop() -> bool:
        nonlocal peak
        peak = max(peak, _unsent_output(conn))
        return server.stats.connections_calmed > 0 or peak > 4 * MIB

    sent = await _flood(sock, _pings(1_000_000), 64 * KIB, stop)  # up to 17 MB of pings
    await wait_until(lambda: stop() or _held_input(conn) == 0, 10, "the server to read")
    stop()
    assert server.stats.connections_calmed == 1, f"{sent} bytes of pings, {peak} bytes of answers unsent"
    assert peak <= 256 * KIB, f"{peak} bytes of answers piled up"
    frames, closed = await read_socket_frames(sock, timeout=3.0)
    goaways = _goaways(frames)
    assert [(g.error_code, g.additional_data) for g in goaways] == [
        (ErrorCodes.ENHANCE_YOUR_CALM, b"control_frame_backlog")
    ]
    assert closed
    await env.assert_serves(server)


async def test_settings_flood_gets_enhance_your_calm(env: Env) -> None:
    """CVE-2019-9515: 10,000 SETTINGS frames from a client that never reads; past 100 within
    10 s, GOAWAY ENHANCE_YOUR_CALM ``too_many_settings`` and no more acknowledgements."""
    server = await env.start()
    sock = await env.flood_socket(server)
    await wait_until(lambda: server.stats.connections_open == 1, 2, "the connection")
    conn = _small_send_buffer(_connection(server))
    flood = SettingsFrame(0, settings={SettingsFrame.MAX_CONCURRENT_STREAMS: 100}).serialize() * 10_000
    await _flood(sock, flood, 16 * KIB, lambda: server.stats.connections_calmed > 0)
    await wait_until(lambda: server.stats.connections_calmed > 0 or _held_input(conn) == 0, 10, "calm")
    unsent = _unsent_output(conn)
    frames, closed = await read_socket_frames(sock, timeout=3.0)
    acks = sum(1 for f in frames if isinstance(f, SettingsFrame) and "ACK" in f.flags)
    goaways = _goaways(frames)
    assert [(g.error_code, g.additional_data) for g in goaways] == [
        (ErrorCodes.ENHANCE_YOUR_CALM, b"too_many_settings")
    ], f"{acks} SETTINGS ACKs, GOAWAY {[g.error_code for g in goaways]}, {unsent} bytes unsent"
    assert acks <= 100, f"{acks} SETTINGS acknowledged"
    assert unsent <= 64 * KIB
    assert closed
    await env.assert_serves(server)


async def test_grpcio_bdp_pings_never_trip_the_ping_policy(env: Env) -> None:
    """grpcio's BDP pings follow the data we send: 200 calls with 256 KiB responses on one channel
    all succeed, on one connection, with no GOAWAY."""
    server = await env.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        method = channel.unary_unary(BIG.decode())
        sizes = await asyncio.to_thread(lambda: [len(method(b"", timeout=10)) for _ in range(200)])
        conn = _connection(server)
        assert conn is not None and conn.h2.flood_guard is not None
        pings, strikes = conn.h2.flood_guard.pings, conn.h2.flood_guard.ping_strikes
    finally:
        channel.close()
    assert sizes == [256 * KIB] * 200
    assert server.stats.connections_calmed == 0
    assert server.stats.connections_total == 1
    assert pings > 0, "grpcio sent no BDP ping: the test shows nothing"
    assert strikes == 0, f"{strikes} strikes after {pings} BDP pings"


async def test_grpcio_keepalive_faster_than_min_time_gets_too_many_pings(env: Env) -> None:
    """A grpcio client pinging every 100 ms without calls, against the default policy, is told
    ``too_many_pings`` (GOAWAY ENHANCE_YOUR_CALM), as a grpc server would tell it."""
    server = await env.start()
    options = [
        ("grpc.keepalive_time_ms", 100),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]

    def connect_and_idle() -> None:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}", options=options) as channel:
            grpc.channel_ready_future(channel).result(timeout=5)
            deadline = time.monotonic() + 5
            while server.stats.connections_calmed == 0 and time.monotonic() < deadline:
                time.sleep(0.02)

    await asyncio.to_thread(connect_and_idle)
    assert server.stats.connections_calmed == 1


# --- 10. header lists over the limit ------------------------------------------------------------


#: 20 KB of metadata in two shapes: one value (its header block spans HEADERS + CONTINUATION),
#: and 100 fields of ~200 bytes that each enter the HPACK dynamic table (a partial decode would
#: leave the server's table out of step with the client's).
BIG_METADATA = {
    "one-20KB-value": [(b"x-big", _hex(20_000))],
    "100-fields": [(b"x-h%d" % i, _hex(200, seed=i)) for i in range(100)],
}


@pytest.mark.parametrize("shape", list(BIG_METADATA))
async def test_oversized_request_headers_fail_only_that_call(env: Env, shape: str) -> None:
    """On one connection: a normal call, a call with 20 KB of metadata (RESOURCE_EXHAUSTED for it
    alone, with the sizes in the message), then calls that work, decoding HPACK references right."""
    server = await env.start()
    client = await env.client(server)
    client.send_request(1, ECHO, b"before")
    assert (await client.stream_result(1)).grpc_status == StatusCode.OK
    big = BIG_METADATA[shape]
    client.send_request(3, ECHO, b"big", extra=big)
    result = await client.stream_result(3)
    assert result.grpc_status == StatusCode.RESOURCE_EXHAUSTED, (
        f"grpc-status {result.grpc_status}, GOAWAY {[g.error_code for g in client.goaways()]}, eof {result.eof}"
    )
    size = sum(len(n) + len(v) + 32 for n, v in request_headers(ECHO, extra=big))
    assert result.grpc_message == f"request header list is {size} bytes, over the server's limit of 16384"
    assert result.http_status == 200 and result.ended
    # The same connection serves on, and its HPACK table is the client's: the last fields of the big
    # block that fit the table are indexed references now, and decode to their values.
    tail = [field for field in big[-5:] if len(field[1]) < 1000]
    value = tail[-1][1] if tail else b"plain"
    client.send_request(5, PROBE, b"", extra=[(b"x-probe", value), *tail])
    after = await client.stream_result(5)
    assert after.grpc_status == StatusCode.OK, after
    assert after.body == grpc_message(value)
    client.send_request(7, ECHO, b"after")
    assert (await client.stream_result(7)).body == grpc_message(b"after")
    assert client.goaways() == []
    assert server.stats.connections_total == 1
    await env.assert_serves(server)


async def test_oversized_request_trailers_fail_only_that_call(env: Env) -> None:
    """Request trailers over the limit, after the call started: RESOURCE_EXHAUSTED in its trailers."""
    server = await env.start()
    client = await env.client(server)
    client.send_headers(1, request_headers(ECHO))
    client.send_data(1, grpc_message(b"body"))
    client.send_headers(1, [(b"x-big", _hex(20_000))], end_stream=True)
    result = await client.stream_result(1)
    assert result.grpc_status == StatusCode.RESOURCE_EXHAUSTED, result
    assert "over the server's limit of 16384" in result.grpc_message
    client.send_request(3, ECHO, b"after")
    assert (await client.stream_result(3)).body == grpc_message(b"after")
    assert client.goaways() == []
    assert env.echoed == [b"after"], "the handler ran for the call that failed"
    assert server.stats.calls_in_flight == 0
    await env.assert_serves(server)


async def test_header_block_past_the_hard_limit_is_a_connection_error(env: Env) -> None:
    """Past 4 x the limit (64 KiB decoded) the block is an HPACK-bomb guard's connection error:
    GOAWAY ENHANCE_YOUR_CALM, and the server serves other connections on."""
    server = await env.start()
    client = await env.client(server)
    client.send_request(1, ECHO, b"bomb", extra=[(b"x-bomb%d" % i, _hex(7000, seed=i)) for i in range(10)])
    try:
        await client.read_until_closed(timeout=2.0)
    except TimeoutError:
        pass
    assert [g.error_code for g in client.goaways()] == [ErrorCodes.ENHANCE_YOUR_CALM]
    await env.assert_serves(server)


async def test_channel_with_oversized_metadata_fails_that_call_only(env: Env) -> None:
    """Our own Channel: 20 KB of metadata is RESOURCE_EXHAUSTED; the next call uses the same connection."""
    server = await env.start()
    async with Channel(f"ipv4:{server.address}", options=FAST) as channel:
        assert (await greet(channel, "Ada", timeout=2.0)).response.message == "Hello, Ada!"
        with pytest.raises(RpcError) as caught:
            await greet(channel, "Big", timeout=2.0, metadata=[("x-big", _hex(20_000).decode())])
        assert caught.value.code == StatusCode.RESOURCE_EXHAUSTED, caught.value
        assert "over the server's limit of 16384" in caught.value.details
        assert (await greet(channel, "Bob", timeout=2.0)).response.message == "Hello, Bob!"
    assert server.stats.connections_total == 1
    assert server.stats.connections_calmed == 0


async def test_grpcio_client_with_oversized_metadata_fails_that_call_only(env: Env) -> None:
    server = await env.start()

    def calls() -> tuple[bytes, grpc.StatusCode, str, bytes]:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            method = channel.unary_unary(ECHO.decode())
            first = method(b"a", timeout=5)
            try:
                method(b"b", timeout=5, metadata=[("x-big", _hex(20_000).decode())])
                code, details = grpc.StatusCode.OK, ""
            except grpc.RpcError as exc:
                code, details = exc.code(), exc.details()
            return first, code, details, method(b"c", timeout=5)

    first, code, details, last = await asyncio.to_thread(calls)
    assert (first, last) == (b"a", b"c")
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, (code, details)
    assert "over the server's limit of 16384" in details
    assert server.stats.connections_total == 1


async def test_oversized_response_trailers_fail_that_call_only_on_the_client(env: Env) -> None:
    """Response trailers over the client's 16 KiB limit: RESOURCE_EXHAUSTED for that call; the
    connection (and its HPACK table) serves the next call."""
    server = await env.start()
    async with Channel(f"ipv4:{server.address}", options=FAST) as channel:
        with pytest.raises(RpcError) as caught:
            await channel.unary_unary(BIG_TRAILERS.decode()).with_call(b"x", timeout=2.0)
        assert caught.value.code == StatusCode.RESOURCE_EXHAUSTED, caught.value
        assert "over the client's limit of 16384" in caught.value.details
        for name in ("Bob", "Cy"):
            assert (await greet(channel, name, timeout=2.0)).response.message == f"Hello, {name}!"
    assert server.stats.connections_total == 1
