"""DATA frames written by ``send_data_frame`` (no frame objects, the body copied once) are h2's own, byte for
byte and state for state; large messages still round-trip with grpcio both ways; tiny windows are never overrun.
"""

from __future__ import annotations

import asyncio
import random
import socket
import threading
import tracemalloc
from collections.abc import AsyncIterator

import grpc
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import pytest
from h2.settings import SettingCodes

from tests.helpers import REQUEST_HEADERS, wait_until
from transport import Channel, Server, ServicerContext, stream_stream, unary_stream, unary_unary
from transport.http2 import GrpcH2Connection
from transport.http2.protocol import send_data_frame
from transport.wire import MessageDecoder, encode_message

MiB = 1024 * 1024
ECHO = "/test.Big/Echo"  # unary: the request back
SPLIT = "/test.Big/Split"  # unary_stream: b"n,size" -> n messages of size random bytes (seeded by n)
PING = "/test.Big/Ping"  # stream_stream: each request back


def _config(client_side: bool) -> h2.config.H2Configuration:
    return h2.config.H2Configuration(
        client_side=client_side,
        header_encoding=None,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
    )


def _open_stream() -> tuple[GrpcH2Connection, GrpcH2Connection, int]:
    """A client and server connection with one request stream open (headers sent and received)."""
    client, server = GrpcH2Connection(_config(True)), GrpcH2Connection(_config(False))
    client.initiate_connection()
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    sid = client.get_next_available_stream_id()
    client.send_headers(sid, REQUEST_HEADERS)
    server.receive_data(client.data_to_send())
    return client, server, sid


def _state(conn: GrpcH2Connection) -> tuple[object, ...]:
    streams = {sid: (s.state_machine.state, s.outbound_flow_control_window) for sid, s in conn.streams.items()}
    return conn.state_machine.state, conn.outbound_flow_control_window, conn._stream_frames_sent, streams


SENDS = [
    [(b"", b"x", False)],
    [(b"\x00\x00\x00\x00\x03", b"abc", True)],
    [(b"\x00\x00\x00\x40\x00", memoryview(bytes(range(256)) * 64)[:16379], False), (b"", b"tail", True)],
    [(b"\x00\x00", b"", False), (b"\x00\x00\x03", memoryview(b"xyz"), False), (b"", b"", True)],
]


@pytest.mark.parametrize("sends", SENDS, ids=["one-byte", "prefix-and-end", "memoryview-frame", "split-prefix"])
@pytest.mark.parametrize("side", ["client", "server"])
def test_same_bytes_and_state_as_h2s_send_data(sends: list[tuple[bytes, bytes | memoryview, bool]], side: str) -> None:
    """Each frame: the same wire bytes and the same stream state, windows and frames-sent flag as
    ``send_data(sid, head + body, end)``; the peer reads the same data and end."""
    fast_client, fast_server, sid = _open_stream()
    slow_client, slow_server, _ = _open_stream()
    if side == "server":
        for conn in (fast_server, slow_server):
            conn.send_headers(sid, [(b":status", b"200"), (b"content-type", b"application/grpc")])
        fast_client.receive_data(fast_server.data_to_send())
        slow_client.receive_data(slow_server.data_to_send())
    fast, slow = (fast_client, slow_client) if side == "client" else (fast_server, slow_server)
    fast_peer = fast_server if side == "client" else fast_client
    for head, body, end in sends:
        fast._stream_frames_sent = slow._stream_frames_sent = False
        send_data_frame(fast, fast.streams[sid], head, body, end)
        slow.send_data(sid, head + bytes(body), end_stream=end)
        wire = fast.data_to_send()
        assert wire == slow.data_to_send()
        assert _state(fast) == _state(slow)
        events = fast_peer.receive_data(wire)
        data = [e for e in events if isinstance(e, h2.events.DataReceived)]
        assert [e.data for e in data] == [head + bytes(body)]
        assert any(isinstance(e, h2.events.StreamEnded) for e in events) is end


def test_a_closed_stream_raises_as_h2_does() -> None:
    """After END_STREAM, and after a reset: the same exception type as h2's, the same state left behind
    (h2 moves the stream to CLOSED), the windows untouched, nothing queued."""
    for close in ("end", "reset"):
        fast, _, sid = _open_stream()
        slow, _, _ = _open_stream()
        for conn in (fast, slow):
            if close == "end":
                conn.end_stream(sid)
            else:
                conn.reset_stream(sid)
            conn.data_to_send()
        with pytest.raises(h2.exceptions.ProtocolError) as fast_error:
            send_data_frame(fast, fast.streams[sid], b"", b"late", False)
        with pytest.raises(h2.exceptions.ProtocolError) as slow_error:
            slow.send_data(sid, b"late")
        assert type(fast_error.value) is type(slow_error.value)
        assert _state(fast) == _state(slow)
        assert fast.outbound_flow_control_window == fast.streams[sid].outbound_flow_control_window == 65535
        assert fast.data_to_send() == slow.data_to_send() == b""


# --- end to end ----------------------------------------------------------------------


def _blob(n: int, size: int) -> bytes:
    return random.Random(n * 1_000_003 + size).randbytes(size)


async def echo(request: bytes, context: ServicerContext) -> bytes:
    return request


async def split(request: bytes, context: ServicerContext) -> AsyncIterator[bytes]:
    n, size = (int(x) for x in request.split(b","))
    for i in range(n):
        yield _blob(i, size)


async def ping(requests: AsyncIterator[bytes], context: ServicerContext) -> AsyncIterator[bytes]:
    async for request in requests:
        yield request


@pytest.fixture
async def ours() -> AsyncIterator[Server]:
    server = Server(name="big")
    server.add_method(ECHO, unary_unary(echo))
    server.add_method(SPLIT, unary_stream(split))
    server.add_method(PING, stream_stream(ping))
    await server.start("127.0.0.1", 0)
    yield server
    await server.stop(grace=0.5)


@pytest.mark.parametrize("size", [MiB, 4 * MiB], ids=["1MiB", "4MiB"])
async def test_grpcio_client_large_messages_both_ways(ours: Server, size: int) -> None:
    """grpcio → ours: a unary echo of ``size`` random bytes, and a stream of three, arrive byte-exact."""
    payload = _blob(7, size)
    async with grpc.aio.insecure_channel(str(ours.address)) as channel:
        assert await channel.unary_unary(ECHO)(payload, timeout=30) == payload
        got = [m async for m in channel.unary_stream(SPLIT)(b"3,%d" % size, timeout=30)]
    assert got == [_blob(i, size) for i in range(3)]


@pytest.fixture
async def grpcio_server() -> AsyncIterator[str]:
    server = grpc.aio.server()

    async def grpc_echo(request: bytes, context: object) -> bytes:
        return request

    async def grpc_ping(requests: AsyncIterator[bytes], context: object) -> AsyncIterator[bytes]:
        async for request in requests:
            yield request

    handlers = {
        "Echo": grpc.unary_unary_rpc_method_handler(grpc_echo),
        "Ping": grpc.stream_stream_rpc_method_handler(grpc_ping),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Big", handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(0.5)


@pytest.mark.parametrize("size", [MiB, 4 * MiB], ids=["1MiB", "4MiB"])
async def test_our_client_large_messages_with_grpcio_server(grpcio_server: str, size: int) -> None:
    """ours → grpcio: a unary echo and a bidi stream of three ``size``-byte messages come back byte-exact."""
    async with Channel(grpcio_server) as channel:
        payload = _blob(11, size)
        assert await channel.unary_unary(ECHO)(payload, timeout=30) == payload
        call = channel.stream_stream(PING)(timeout=30)
        for i in range(3):
            await call.write(_blob(i, size))
            assert await call.read() == _blob(i, size)
        await call.done_writing()


async def _raw_call(port: int, path: bytes, body: bytes, window: int) -> tuple[list[int], bytes]:
    """One gRPC call from a plain h2 client granting a ``window``-byte stream window (and the default
    65,535-byte connection window), acknowledging each DATA frame as it is read. h2 raises
    FlowControlError if the server sends past either window. Returns (DATA frame sizes, response body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = h2.connection.H2Connection(_config(True))
    conn.local_settings = h2.settings.Settings(client=True, initial_values={SettingCodes.INITIAL_WINDOW_SIZE: window})
    conn.initiate_connection()
    sid = conn.get_next_available_stream_id()
    headers = [(k, path if k == b":path" else v) for k, v in REQUEST_HEADERS]
    conn.send_headers(sid, headers)
    conn.send_data(sid, encode_message(body), end_stream=True)
    writer.write(conn.data_to_send())
    sizes: list[int] = []
    data = bytearray()
    try:
        ended = False
        while not ended:
            chunk = await asyncio.wait_for(reader.read(65536), 10)
            assert chunk, "the server closed the connection"
            for event in conn.receive_data(chunk):
                if isinstance(event, h2.events.DataReceived):
                    sizes.append(event.flow_controlled_length)
                    data += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, sid)
                elif isinstance(event, h2.events.StreamEnded):
                    ended = True
                else:
                    assert not isinstance(event, h2.events.StreamReset), f"stream reset: {event.error_code}"
            writer.write(conn.data_to_send())
    finally:
        writer.close()
    return sizes, bytes(data)


@pytest.mark.parametrize(("window", "n", "size"), [(3, 2, 20), (1000, 3, 100_000)])
async def test_tiny_windows_are_never_overrun(ours: Server, window: int, n: int, size: int) -> None:
    """A peer granting a 3-byte or 1,000-byte stream window gets every message whole, in frames no larger
    than its window (so a 5-byte prefix is split across frames too), and h2 on its side sees no overrun."""
    sizes, data = await _raw_call(ours.port, SPLIT.encode(), b"%d,%d" % (n, size), window)
    assert max(sizes) <= window
    decoder = MessageDecoder()
    assert decoder.feed(data) == [_blob(i, size) for i in range(n)]
    assert sum(sizes) == n * (size + 5)


def _sink(listener: socket.socket, received: list[int], max_frame: int) -> None:
    """A peer that opens its windows wide (2^31 - 1) and allows frames of ``max_frame`` bytes, then reads and
    discards everything without allocating."""
    sock, _ = listener.accept()
    with sock:
        conn = h2.connection.H2Connection(_config(False))
        conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1, SettingCodes.MAX_FRAME_SIZE: max_frame},
        )
        conn.initiate_connection()
        conn.increment_flow_control_window(2**31 - 1 - 65535)
        sock.sendall(conn.data_to_send())
        settled = False
        while not settled:
            chunk = sock.recv(65536)
            if not chunk:
                return
            received[0] += len(chunk)
            settled = any(isinstance(e, h2.events.RemoteSettingsChanged) for e in conn.receive_data(chunk))
        sock.sendall(conn.data_to_send())
        buffer = bytearray(65536)
        try:
            while n := sock.recv_into(buffer):
                received[0] += n
        except ConnectionResetError:
            return  # the client went away


@pytest.mark.parametrize("max_frame", [16 * 1024, 2**24 - 1], ids=["16KiB-frames", "16MiB-frames"])
async def test_sending_a_4mib_message_holds_no_copy_of_it(max_frame: int) -> None:
    """Our client writing one 4 MiB message on a stream (to a peer that reads everything, windows wide
    open) allocates ≈ one flush of output at a time, not a framed copy of the message (≥ 4 MiB); with frames
    as large as the message (grpcio allows 4 MiB), the body goes to the socket from the caller's bytes."""
    listener = socket.create_server(("127.0.0.1", 0))
    received = [0]
    sink = threading.Thread(target=_sink, args=(listener, received, max_frame), daemon=True)
    sink.start()
    payload = _blob(3, 4 * MiB)
    try:
        async with Channel(f"127.0.0.1:{listener.getsockname()[1]}") as channel:
            call = channel.stream_unary(PING)(timeout=30)
            await call.write(b"open")
            tracemalloc.start()
            try:
                await call.write(payload)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            await wait_until(lambda: received[0] > 4 * MiB, 10, "the peer to read the whole message")
            call.cancel()
    finally:
        listener.close()
        await asyncio.to_thread(sink.join, 10)
    assert peak <= MiB, f"{peak / MiB:.2f} MiB allocated at the peak to send a 4 MiB message"


def test_the_state_inputs_it_skips_are_no_ops_in_this_h2() -> None:
    """send_data_frame skips DATA's state inputs only where this h2's tables make them no-ops: on an open
    connection (either side) and an open or half-closed (remote) stream; each other state still gets them."""
    from h2.connection import ConnectionState
    from h2.stream import StreamState

    from transport.http2 import protocol

    assert (protocol._CLIENT_OPEN, protocol._SERVER_OPEN) == (ConnectionState.CLIENT_OPEN, ConnectionState.SERVER_OPEN)
    assert (protocol._OPEN, protocol._HALF_CLOSED_REMOTE) == (StreamState.OPEN, StreamState.HALF_CLOSED_REMOTE)
    # A table where DATA moves the state, or has a callback, or is missing: not skipped.
    for table in (
        {(StreamState.OPEN, 3): (None, StreamState.CLOSED)},
        {(StreamState.OPEN, 3): (len, StreamState.OPEN)},
        {},
    ):
        assert protocol._unchanged_by_data(table, StreamState.OPEN, 3) is None
