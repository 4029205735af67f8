"""Interop with grpcio in both directions, plus raw HTTP/2 peers that are not gRPC."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import h2.config
import h2.connection
import h2.events
import pytest

from app.greeter.helloworld_pb2 import HelloReply, HelloRequest
from app.greeter.service import SAY_HELLO, Greeter
from tests.helpers import FAST, greet, wait_until
from transport import Channel, RpcError, Server, ServicerContext, StatusCode, unary_unary
from transport.metadata import metadata_value

ECHO = "/test.Echo/Echo"
META = "/test.Echo/Meta"
SLOW = "/test.Echo/Slow"
ABORT = "/test.Echo/Abort"
BOOM = "/test.Echo/Boom"
MiB = 1024 * 1024
NON_ASCII = "pas trouvé ✗"
SECRET = "secret-db-password-xyz"


# --- our server, called by grpcio ----------------------------------------------------


class Recorder:
    """What our server's handlers observed."""

    def __init__(self) -> None:
        self.metadata: tuple[tuple[str, Any], ...] = ()
        self.cancelled = asyncio.Event()
        self.slow_started = asyncio.Event()


def our_service(rec: Recorder) -> dict[str, Any]:
    async def echo(request: bytes, context: ServicerContext) -> bytes:
        return request

    async def meta(request: bytes, context: ServicerContext) -> bytes:
        rec.metadata = tuple(context.invocation_metadata())
        await context.send_initial_metadata([("initial-key", "iv"), ("initial-bin", b"\x01\x02")])
        context.set_trailing_metadata([("trailing-key", "tv"), ("trailing-bin", b"\xff\x00")])
        return b"meta:" + request

    async def slow(request: bytes, context: ServicerContext) -> bytes:
        rec.slow_started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            rec.cancelled.set()
            raise
        return b"late"

    async def abort(request: bytes, context: ServicerContext) -> bytes:
        context.abort(StatusCode.NOT_FOUND, NON_ASCII)

    async def boom(request: bytes, context: ServicerContext) -> bytes:
        raise ValueError(SECRET)

    return {
        ECHO: unary_unary(echo),
        META: unary_unary(meta),
        SLOW: unary_unary(slow),
        ABORT: unary_unary(abort),
        BOOM: unary_unary(boom),
    }


@pytest.fixture
async def ours() -> AsyncIterator[tuple[Server, Recorder]]:
    """Our Server with the Greeter and the test methods."""
    rec = Recorder()
    server = Server(name="ours")
    server.add_service(Greeter())
    server.add_service(our_service(rec))
    await server.start("127.0.0.1", 0)
    yield server, rec
    await server.stop(grace=0.5)


@pytest.fixture
async def grpc_client(ours: tuple[Server, Recorder]) -> AsyncIterator[grpc.aio.Channel]:
    """A grpcio aio channel to our server."""
    server, _ = ours
    channel = grpc.aio.insecure_channel(str(server.address))
    yield channel
    await channel.close()


async def test_grpcio_calls_our_greeter(grpc_client: grpc.aio.Channel) -> None:
    """grpcio's helloworld call gets our Greeter's answer and our server-name header."""
    say = grpc_client.unary_unary(
        SAY_HELLO, request_serializer=HelloRequest.SerializeToString, response_deserializer=HelloReply.FromString
    )
    call = say(HelloRequest(name="Ada"), timeout=5)
    reply = await call
    assert reply.message == "Hello, Ada!"
    assert ("rpcviz-server", "ours") in tuple(await call.initial_metadata())
    assert await call.code() == grpc.StatusCode.OK


async def test_grpcio_metadata_both_ways(grpc_client: grpc.aio.Channel, ours: tuple[Server, Recorder]) -> None:
    """grpcio's request metadata (incl. -bin) reaches our handler; its initial and trailing metadata come back."""
    _, rec = ours
    call = grpc_client.unary_unary(META)(
        b"x", metadata=(("x-user", "ada"), ("blob-bin", b"\x00\x01\xfe\xff")), timeout=5
    )
    assert await call == b"meta:x"
    assert metadata_value(rec.metadata, "x-user") == "ada"
    assert metadata_value(rec.metadata, "blob-bin") == b"\x00\x01\xfe\xff"
    initial = tuple(await call.initial_metadata())
    trailing = tuple(await call.trailing_metadata())
    assert ("initial-key", "iv") in initial and ("initial-bin", b"\x01\x02") in initial
    assert ("trailing-key", "tv") in trailing and ("trailing-bin", b"\xff\x00") in trailing


async def test_grpcio_deadline_cancels_our_handler(
    grpc_client: grpc.aio.Channel, ours: tuple[Server, Recorder]
) -> None:
    """A grpcio deadline shorter than the handler → DEADLINE_EXCEEDED; our handler sees CancelledError."""
    server, rec = ours
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await grpc_client.unary_unary(SLOW)(b"", timeout=0.2)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await asyncio.wait_for(rec.cancelled.wait(), 3)
    await wait_until(lambda: server.stats.calls_in_flight == 0, what="no call in flight")


async def test_grpcio_sees_non_ascii_error(grpc_client: grpc.aio.Channel) -> None:
    """abort(NOT_FOUND, non-ASCII) reaches grpcio intact."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await grpc_client.unary_unary(ABORT)(b"", timeout=5)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert info.value.details() == NON_ASCII


async def test_grpcio_large_message_both_ways(grpc_client: grpc.aio.Channel) -> None:
    """3 MiB up and 3 MiB back through our server's flow control."""
    payload = bytes(range(256)) * (3 * MiB // 256)
    assert await grpc_client.unary_unary(ECHO)(payload, timeout=10) == payload


async def test_grpcio_unknown_method(grpc_client: grpc.aio.Channel) -> None:
    """An unknown method is UNIMPLEMENTED."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await grpc_client.unary_unary("/nope.Nope/Nope")(b"", timeout=5)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_grpcio_handler_exception_is_unknown_without_leak(grpc_client: grpc.aio.Channel) -> None:
    """A plain exception → UNKNOWN; its text and traceback stay on the server."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await grpc_client.unary_unary(BOOM)(b"", timeout=5)
    assert info.value.code() == grpc.StatusCode.UNKNOWN
    details = info.value.details() or ""
    assert SECRET not in details and "Traceback" not in details


async def test_sync_grpcio_in_thread(ours: tuple[Server, Recorder]) -> None:
    """A blocking grpcio client in a thread talks to our server on this loop."""
    server, _ = ours

    def call() -> str:
        with grpc.insecure_channel(str(server.address)) as ch:
            say = ch.unary_unary(
                SAY_HELLO,
                request_serializer=HelloRequest.SerializeToString,
                response_deserializer=HelloReply.FromString,
            )
            return str(say(HelloRequest(name="Sync"), timeout=5).message)

    assert await asyncio.to_thread(call) == "Hello, Sync!"


# --- our channel, calling grpcio ---------------------------------------------------


class GrpcRecorder:
    def __init__(self) -> None:
        self.metadata: tuple[tuple[str, Any], ...] = ()
        self.slow_done = asyncio.Event()
        self.slow_cancelled = False


@pytest.fixture
async def grpcio_server() -> AsyncIterator[tuple[str, GrpcRecorder]]:
    """A grpc.aio server with helloworld and echo methods, via generic handlers."""
    rec = GrpcRecorder()

    async def say_hello(request: HelloRequest, context: grpc.aio.ServicerContext) -> HelloReply:
        return HelloReply(message=f"Hi {request.name} from grpcio")

    async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return request

    async def meta(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        rec.metadata = tuple((m.key, m.value) for m in context.invocation_metadata() or ())
        await context.send_initial_metadata((("initial-key", "iv"), ("initial-bin", b"\x01\x02")))
        context.set_trailing_metadata((("trailing-key", "tv"), ("trailing-bin", b"\xff\x00")))
        return b"meta:" + request

    async def slow(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            rec.slow_cancelled = True
            raise
        finally:
            rec.slow_done.set()
        return b"late"

    async def abort(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        await context.abort(grpc.StatusCode.NOT_FOUND, NON_ASCII)
        return b""

    server = grpc.aio.server()
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
            grpc.method_handlers_generic_handler(
                "test.Echo",
                {
                    "Echo": grpc.unary_unary_rpc_method_handler(echo),
                    "Meta": grpc.unary_unary_rpc_method_handler(meta),
                    "Slow": grpc.unary_unary_rpc_method_handler(slow),
                    "Abort": grpc.unary_unary_rpc_method_handler(abort),
                },
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}", rec
    await server.stop(0)


@pytest.fixture
async def to_grpcio(grpcio_server: tuple[str, GrpcRecorder]) -> AsyncIterator[Channel]:
    """Our Channel to the grpcio server."""
    async with Channel(grpcio_server[0], options=FAST) as channel:
        yield channel


async def test_our_channel_calls_grpcio_greeter(to_grpcio: Channel) -> None:
    """Our client's helloworld call is answered by grpcio."""
    result = await greet(to_grpcio, "Bob", timeout=5)
    assert result.response.message == "Hi Bob from grpcio"


async def test_our_channel_metadata_both_ways(to_grpcio: Channel, grpcio_server: tuple[str, GrpcRecorder]) -> None:
    """Our metadata (incl. -bin) reaches grpcio's handler; its initial and trailing metadata reach us."""
    _, rec = grpcio_server
    result = await to_grpcio.unary_unary(META).with_call(
        b"y", metadata=(("x-user", "bob"), ("blob-bin", b"\x00\x01\xfe\xff")), timeout=5
    )
    assert result.response == b"meta:y"
    assert metadata_value(rec.metadata, "x-user") == "bob"
    assert metadata_value(rec.metadata, "blob-bin") == b"\x00\x01\xfe\xff"
    assert metadata_value(result.initial_metadata, "initial-key") == "iv"
    assert metadata_value(result.initial_metadata, "initial-bin") == b"\x01\x02"
    assert metadata_value(result.trailing_metadata, "trailing-key") == "tv"
    assert metadata_value(result.trailing_metadata, "trailing-bin") == b"\xff\x00"


async def test_our_channel_deadline_against_grpcio(to_grpcio: Channel, grpcio_server: tuple[str, GrpcRecorder]) -> None:
    """Our deadline expires → DEADLINE_EXCEEDED, and grpcio's handler is cancelled too."""
    _, rec = grpcio_server
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(RpcError) as info:
        await to_grpcio.unary_unary(SLOW).with_call(b"", timeout=0.2)
    assert info.value.code is StatusCode.DEADLINE_EXCEEDED
    assert loop.time() - start < 2
    await asyncio.wait_for(rec.slow_done.wait(), 3)
    assert rec.slow_cancelled


async def test_our_channel_non_ascii_error_from_grpcio(to_grpcio: Channel) -> None:
    """grpcio's abort(NOT_FOUND, non-ASCII) arrives intact."""
    with pytest.raises(RpcError) as info:
        await to_grpcio.unary_unary(ABORT).with_call(b"", timeout=5)
    assert info.value.code is StatusCode.NOT_FOUND
    assert info.value.details == NON_ASCII


async def test_our_channel_large_message_with_grpcio(to_grpcio: Channel) -> None:
    """3 MiB each way with grpcio."""
    payload = bytes(range(256)) * (3 * MiB // 256)
    result = await to_grpcio.unary_unary(ECHO).with_call(payload, timeout=10)
    assert result.response == payload


async def test_our_channel_unknown_method_on_grpcio(to_grpcio: Channel) -> None:
    """grpcio answers an unknown method with UNIMPLEMENTED."""
    with pytest.raises(RpcError) as info:
        await to_grpcio.unary_unary("/nope.Nope/Nope").with_call(b"", timeout=5)
    assert info.value.code is StatusCode.UNIMPLEMENTED


# --- our channel against our server ---------------------------------------------------


async def test_our_client_handler_exception_no_leak(ours: tuple[Server, Recorder]) -> None:
    """Our client sees UNKNOWN for a raising handler, without the exception's text."""
    server, _ = ours
    async with Channel(str(server.address), options=FAST) as channel:
        with pytest.raises(RpcError) as info:
            await channel.unary_unary(BOOM).with_call(b"", timeout=5)
    assert info.value.code is StatusCode.UNKNOWN
    assert SECRET not in info.value.details and "Traceback" not in info.value.details


async def test_our_client_our_server_deadline(ours: tuple[Server, Recorder]) -> None:
    """Our client's deadline → DEADLINE_EXCEEDED, and our handler observes CancelledError."""
    server, rec = ours
    async with Channel(str(server.address), options=FAST) as channel:
        with pytest.raises(RpcError) as info:
            await channel.unary_unary(SLOW).with_call(b"", timeout=0.2)
    assert info.value.code is StatusCode.DEADLINE_EXCEEDED
    await asyncio.wait_for(rec.cancelled.wait(), 3)


# --- raw HTTP/2 peers ---------------------------------------------------------------


async def _raw_h2_request(
    host: str, port: int, headers: list[tuple[str, str]], body: bytes = b""
) -> tuple[dict[str, str], bytes, bool]:
    """Send one request with h2 over a socket; return (response headers, body, reset?)."""
    reader, writer = await asyncio.open_connection(host, port)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    stream_id = conn.get_next_available_stream_id()
    conn.send_headers(stream_id, headers, end_stream=not body)
    if body:
        conn.send_data(stream_id, body, end_stream=True)
    writer.write(conn.data_to_send())
    response: dict[str, str] = {}
    data = b""
    reset = False
    try:
        done = False
        while not done:
            chunk = await asyncio.wait_for(reader.read(65536), 5)
            if not chunk:
                break
            for event in conn.receive_data(chunk):
                if isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream_id:
                    response = dict(event.headers)  # type: ignore[arg-type]
                elif isinstance(event, h2.events.DataReceived) and event.stream_id == stream_id:
                    data += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
                elif isinstance(event, h2.events.StreamEnded) and event.stream_id == stream_id:
                    done = True
                elif isinstance(event, h2.events.StreamReset) and event.stream_id == stream_id:
                    reset = True
                    done = True
            writer.write(conn.data_to_send())
    finally:
        writer.close()
    return response, data, reset


async def test_non_grpc_request_gets_415_text(ours: tuple[Server, Recorder]) -> None:
    """A plain HTTP/2 POST with content-type text/plain gets HTTP 415 and a text body, not a reset."""
    server, _ = ours
    headers, body, reset = await _raw_h2_request(
        "127.0.0.1",
        server.port,
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":authority", str(server.address)),
            (":path", SAY_HELLO),
            ("content-type", "text/plain"),
        ],
        b"hello",
    )
    assert headers.get(":status") == "415"
    assert headers.get("content-type", "").startswith("text/plain")
    assert not reset
    assert body and body.decode().strip()
    assert server.stats.rejected_requests == 1


async def test_get_root_gets_415(ours: tuple[Server, Recorder]) -> None:
    """GET / (what HTTP/2 conformance suites send) is answered, not reset."""
    server, _ = ours
    headers, body, reset = await _raw_h2_request(
        "127.0.0.1", server.port, [(":method", "GET"), (":scheme", "http"), (":authority", "x"), (":path", "/")]
    )
    assert headers.get(":status") == "415" and body and not reset


async def _serve_raw_h2(status: int, content_type: str, body: bytes) -> asyncio.Server:
    """A plain HTTP/2 server answering every request with ``status`` (and ``body``, if any)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        try:
            while chunk := await reader.read(65536):
                for event in conn.receive_data(chunk):
                    if isinstance(event, h2.events.RequestReceived):
                        conn.send_headers(
                            event.stream_id,
                            [(":status", str(status)), ("content-type", content_type)],
                            end_stream=not body,
                        )
                        if body:
                            conn.send_data(event.stream_id, body, end_stream=True)
                    elif isinstance(event, h2.events.DataReceived):
                        conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                writer.write(conn.data_to_send())
        except (ConnectionError, h2.exceptions.ProtocolError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def _call_raw_h2(status: int, content_type: str, body: bytes) -> RpcError:
    raw = await _serve_raw_h2(status, content_type, body)
    port = raw.sockets[0].getsockname()[1]
    try:
        async with Channel(f"127.0.0.1:{port}", options=FAST) as channel:
            with pytest.raises(RpcError) as info:
                await greet(channel, timeout=5)
        return info.value
    finally:
        raw.close()


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (503, StatusCode.UNAVAILABLE),
        (404, StatusCode.UNIMPLEMENTED),
        (401, StatusCode.UNAUTHENTICATED),
        (500, StatusCode.UNKNOWN),
    ],
)
async def test_our_client_synthesizes_status_from_http(status: int, code: StatusCode) -> None:
    """A plain HTTP/2 server's bodiless non-200 answer becomes the mapped gRPC status."""
    error = await _call_raw_h2(status, "text/plain", b"")
    assert error.code is code
    assert str(status) in error.details


@pytest.mark.parametrize(
    ("status", "content_type", "code"),
    [
        (503, "text/plain", StatusCode.UNAVAILABLE),
        (404, "text/html", StatusCode.UNIMPLEMENTED),
        (200, "text/html", StatusCode.UNKNOWN),
    ],
)
async def test_our_client_synthesizes_status_despite_text_body(
    status: int, content_type: str, code: StatusCode
) -> None:
    """A non-gRPC answer with a text body (what real proxies send) still gets the synthesized status,
    not INTERNAL from parsing the body as gRPC messages."""
    error = await _call_raw_h2(status, content_type, b"service unavailable\n")
    assert error.code is code, error


@pytest.mark.parametrize("key", ["te", "content-type"])
async def test_reserved_header_as_metadata_does_not_break_connection(ours: tuple[Server, Recorder], key: str) -> None:
    """Metadata named like a protocol header is refused locally or ignored: it must neither turn the
    call into garbage nor kill the connection (and the other calls on it)."""
    server, _ = ours
    async with Channel(str(server.address), options=FAST) as channel:
        await greet(channel, timeout=5)
        sc = channel.subchannels[0]
        conn = sc.connection
        try:
            result = await greet(channel, metadata=((key, "x"),), timeout=5)
        except RpcError as exc:
            assert exc.code is StatusCode.INTERNAL and key in exc.details, exc
        else:
            assert result.response.message == "Hello, Ada!"
        assert (await greet(channel, timeout=5)).response.message == "Hello, Ada!"
        assert sc.connection is conn and sc.stats.connects == 1
