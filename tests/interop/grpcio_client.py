"""The 14 standard interop cases on a grpc.aio channel: the reference client for our interop server.

Written from grpc's ``doc/interop-test-descriptions.md``: each case sends what its
"Procedure" says and checks what its "Client asserts" says, raising
``AssertionError("what differed")`` otherwise. Messages are our ``*_pb2``; the methods
are called by path (no grpcio codegen).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import grpc

from app.interop.protos.empty_pb2 import Empty
from app.interop.protos.messages_pb2 import (
    COMPRESSABLE,
    EchoStatus,
    Payload,
    ResponseParameters,
    SimpleRequest,
    SimpleResponse,
    StreamingInputCallRequest,
    StreamingInputCallResponse,
    StreamingOutputCallRequest,
    StreamingOutputCallResponse,
)

TEST_SERVICE = "/grpc.testing.TestService/"
ECHO_INITIAL = ("x-grpc-test-echo-initial", "test_initial_metadata_value")
ECHO_TRAILING = ("x-grpc-test-echo-trailing-bin", b"\xab\xab\xab")
SPECIAL_MESSAGE = "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n"

Case = Callable[[grpc.aio.Channel], Awaitable[None]]

#: grpc.aio (1.85) marks a call INTERNAL "Internal error from Core" itself when a write() races the
#: call's end (core refuses the write, ``_StreamRequestMixin._write`` sets an internal error over the
#: real status, cf. grpc/grpc#36066); with a 1 ms deadline that is ~3 % of timeout_on_sleeping_server
#: runs. Such an attempt says nothing about the server, so the case makes a new one (bounded).
_WRITE_RACE_ATTEMPTS = 5


def _empty_call(channel: grpc.aio.Channel, path: str = TEST_SERVICE + "EmptyCall") -> grpc.aio.UnaryUnaryMultiCallable:
    return channel.unary_unary(path, request_serializer=Empty.SerializeToString, response_deserializer=Empty.FromString)


def _unary_call(channel: grpc.aio.Channel) -> grpc.aio.UnaryUnaryMultiCallable:
    return channel.unary_unary(
        TEST_SERVICE + "UnaryCall",
        request_serializer=SimpleRequest.SerializeToString,
        response_deserializer=SimpleResponse.FromString,
    )


def _streaming_output_call(channel: grpc.aio.Channel) -> grpc.aio.UnaryStreamMultiCallable:
    return channel.unary_stream(
        TEST_SERVICE + "StreamingOutputCall",
        request_serializer=StreamingOutputCallRequest.SerializeToString,
        response_deserializer=StreamingOutputCallResponse.FromString,
    )


def _streaming_input_call(channel: grpc.aio.Channel) -> grpc.aio.StreamUnaryMultiCallable:
    return channel.stream_unary(
        TEST_SERVICE + "StreamingInputCall",
        request_serializer=StreamingInputCallRequest.SerializeToString,
        response_deserializer=StreamingInputCallResponse.FromString,
    )


def _full_duplex_call(channel: grpc.aio.Channel) -> grpc.aio.StreamStreamMultiCallable:
    return channel.stream_stream(
        TEST_SERVICE + "FullDuplexCall",
        request_serializer=StreamingOutputCallRequest.SerializeToString,
        response_deserializer=StreamingOutputCallResponse.FromString,
    )


def _zeros(size: int) -> Payload:
    return Payload(body=bytes(size))


def _check_payload(what: str, payload: Payload, size: int) -> None:
    """The payload is ``size`` zero bytes of type COMPRESSABLE."""
    if len(payload.body) != size:
        raise AssertionError(f"{what} payload is {len(payload.body)} bytes, expected {size}")
    if payload.body.count(0) != size:
        raise AssertionError(f"{what} payload is not all zeros")
    if payload.type != COMPRESSABLE:
        raise AssertionError(f"{what} payload type is {payload.type}, expected COMPRESSABLE")


async def _check_status(what: str, call: grpc.aio.Call, code: grpc.StatusCode, details: str | None = None) -> None:
    got = await call.code()
    if got != code:
        raise AssertionError(f"{what} ended with {got.name} {await call.details()!r}, expected {code.name}")
    if details is not None and (got_details := await call.details()) != details:
        raise AssertionError(f"{what} status message is {got_details!r}, expected {details!r}")


async def _check_no_more(what: str, call: grpc.aio.StreamStreamCall, count: int) -> None:
    extra = await call.read()
    if extra is not grpc.aio.EOF:
        raise AssertionError(f"{what}: got a response after the {count} expected")


async def empty_unary(channel: grpc.aio.Channel) -> None:
    response = await _empty_call(channel)(Empty())
    if not isinstance(response, Empty):
        raise AssertionError(f"EmptyCall answered {type(response).__name__}, expected grpc.testing.Empty")  # noqa: TRY004
    if response.ByteSize() != 0:
        raise AssertionError(f"EmptyCall's response serializes to {response.ByteSize()} bytes, expected 0")


async def large_unary(channel: grpc.aio.Channel) -> None:
    request = SimpleRequest(response_type=COMPRESSABLE, response_size=314159, payload=_zeros(271828))
    response = await _unary_call(channel)(request)
    _check_payload("UnaryCall's response", response.payload, 314159)


async def client_streaming(channel: grpc.aio.Channel) -> None:
    call = _streaming_input_call(channel)()
    for size in (27182, 8, 1828, 45904):
        await call.write(StreamingInputCallRequest(payload=_zeros(size)))
    await call.done_writing()
    response = await call
    if response.aggregated_payload_size != 74922:
        raise AssertionError(f"aggregated_payload_size is {response.aggregated_payload_size}, expected 74922")


async def server_streaming(channel: grpc.aio.Channel) -> None:
    sizes = (31415, 9, 2653, 58979)
    request = StreamingOutputCallRequest(
        response_type=COMPRESSABLE, response_parameters=[ResponseParameters(size=size) for size in sizes]
    )
    call = _streaming_output_call(channel)(request)
    responses = [response async for response in call]
    if len(responses) != len(sizes):
        raise AssertionError(f"got {len(responses)} responses, expected {len(sizes)}")
    for i, (response, size) in enumerate(zip(responses, sizes, strict=True)):
        _check_payload(f"response {i + 1}", response.payload, size)
    await _check_status("StreamingOutputCall", call, grpc.StatusCode.OK)


async def ping_pong(channel: grpc.aio.Channel) -> None:
    call = _full_duplex_call(channel)()
    steps = ((31415, 27182), (9, 8), (2653, 1828), (58979, 45904))
    for i, (response_size, payload_size) in enumerate(steps):
        await call.write(
            StreamingOutputCallRequest(
                response_type=COMPRESSABLE,
                response_parameters=[ResponseParameters(size=response_size)],
                payload=_zeros(payload_size),
            )
        )
        response = await call.read()
        if response is grpc.aio.EOF:
            raise AssertionError(f"the stream ended after {i} responses, expected 4")
        _check_payload(f"response {i + 1}", response.payload, response_size)
    await call.done_writing()
    await _check_no_more("FullDuplexCall", call, 4)
    await _check_status("FullDuplexCall", call, grpc.StatusCode.OK)


async def empty_stream(channel: grpc.aio.Channel) -> None:
    call = _full_duplex_call(channel)()
    await call.done_writing()
    await _check_no_more("FullDuplexCall", call, 0)
    await _check_status("FullDuplexCall", call, grpc.StatusCode.OK)


async def cancel_after_begin(channel: grpc.aio.Channel) -> None:
    call = _streaming_input_call(channel)()
    await call.wait_for_connection()  # for a streaming request: its headers are sent
    call.cancel()
    await _check_status("StreamingInputCall", call, grpc.StatusCode.CANCELLED)


async def cancel_after_first_response(channel: grpc.aio.Channel) -> None:
    call = _full_duplex_call(channel)()
    await call.write(
        StreamingOutputCallRequest(
            response_type=COMPRESSABLE, response_parameters=[ResponseParameters(size=31415)], payload=_zeros(27182)
        )
    )
    response = await call.read()
    if response is grpc.aio.EOF:
        raise AssertionError("the stream ended before its first response")
    call.cancel()
    await _check_status("FullDuplexCall", call, grpc.StatusCode.CANCELLED)


async def timeout_on_sleeping_server(channel: grpc.aio.Channel) -> None:
    request = StreamingOutputCallRequest(response_type=COMPRESSABLE, payload=_zeros(27182))
    for _ in range(_WRITE_RACE_ATTEMPTS):
        call = _full_duplex_call(channel)(timeout=0.001)
        try:
            await call.write(request)
        except asyncio.InvalidStateError:
            pass  # the deadline passed before the write: the call has its status already
        except grpc.aio.AioRpcError as exc:
            if exc.code() is grpc.StatusCode.INTERNAL:
                continue  # grpc.aio's write raced the deadline and replaced the status (see above)
        await _check_status("FullDuplexCall", call, grpc.StatusCode.DEADLINE_EXCEEDED)
        return
    raise AssertionError(f"all {_WRITE_RACE_ATTEMPTS} FullDuplexCalls ended INTERNAL in their write")


async def custom_metadata(channel: grpc.aio.Channel) -> None:
    metadata = (ECHO_INITIAL, ECHO_TRAILING)

    async def check(what: str, call: grpc.aio.Call) -> None:
        await _check_status(what, call, grpc.StatusCode.OK)
        initial = tuple(await call.initial_metadata() or ())
        if ECHO_INITIAL not in initial:
            raise AssertionError(f"{what}'s initial metadata is {initial}, expected it to hold {ECHO_INITIAL}")
        trailing = tuple(await call.trailing_metadata() or ())
        if ECHO_TRAILING not in trailing:
            raise AssertionError(f"{what}'s trailing metadata is {trailing}, expected it to hold {ECHO_TRAILING}")

    request = SimpleRequest(response_type=COMPRESSABLE, response_size=314159, payload=_zeros(271828))
    unary = _unary_call(channel)(request, metadata=metadata)
    await unary
    await check("UnaryCall", unary)

    duplex = _full_duplex_call(channel)(metadata=metadata)
    await duplex.write(
        StreamingOutputCallRequest(
            response_type=COMPRESSABLE, response_parameters=[ResponseParameters(size=314159)], payload=_zeros(271828)
        )
    )
    await duplex.done_writing()
    async for _ in duplex:
        pass
    await check("FullDuplexCall", duplex)


async def _status_echo(channel: grpc.aio.Channel, message: str, *, duplex: bool) -> None:
    status = EchoStatus(code=2, message=message)
    unary = _unary_call(channel)(SimpleRequest(response_status=status))
    await _check_status("UnaryCall", unary, grpc.StatusCode.UNKNOWN, message)
    if duplex:
        call = _full_duplex_call(channel)()
        await call.write(StreamingOutputCallRequest(response_status=status))
        await call.done_writing()
        await _check_status("FullDuplexCall", call, grpc.StatusCode.UNKNOWN, message)


async def status_code_and_message(channel: grpc.aio.Channel) -> None:
    await _status_echo(channel, "test status message", duplex=True)


async def special_status_message(channel: grpc.aio.Channel) -> None:
    await _status_echo(channel, SPECIAL_MESSAGE, duplex=False)


async def unimplemented_method(channel: grpc.aio.Channel) -> None:
    call = _empty_call(channel, TEST_SERVICE + "UnimplementedCall")(Empty())
    await _check_status("TestService/UnimplementedCall", call, grpc.StatusCode.UNIMPLEMENTED)


async def unimplemented_service(channel: grpc.aio.Channel) -> None:
    call = _empty_call(channel, "/grpc.testing.UnimplementedService/UnimplementedCall")(Empty())
    await _check_status("UnimplementedService/UnimplementedCall", call, grpc.StatusCode.UNIMPLEMENTED)


#: The 14 standard cases, by their interop names, in the order of grpc's list.
CASES: dict[str, Case] = {
    case.__name__: case
    for case in (
        empty_unary,
        large_unary,
        client_streaming,
        server_streaming,
        ping_pong,
        empty_stream,
        cancel_after_begin,
        cancel_after_first_response,
        timeout_on_sleeping_server,
        custom_metadata,
        status_code_and_message,
        special_status_message,
        unimplemented_service,
        unimplemented_method,
    )
}
