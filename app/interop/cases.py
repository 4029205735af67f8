"""The 14 standard interop cases, run with our :class:`transport.Channel`.

Each follows its "Procedure" and checks its "Client asserts" in grpc's
``doc/interop-test-descriptions.md``; a difference raises ``AssertionError("what differed")``,
a call that fails where it should not raises its ``RpcError``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from app.interop.protos.empty_pb2 import Empty
from app.interop.protos.messages_pb2 import (
    COMPRESSABLE,
    EchoStatus,
    Payload,
    ResponseParameters,
    SimpleRequest,
    StreamingInputCallRequest,
    StreamingOutputCallRequest,
)
from app.interop.protos.test_rpcviz import TestServiceStub, UnimplementedServiceStub
from app.interop.service import ECHO_INITIAL, ECHO_TRAILING
from transport import EOF, Channel, Metadata, RpcError, StatusCode

INITIAL_VALUE = "test_initial_metadata_value"
TRAILING_VALUE = b"\xab\xab\xab"
SPECIAL_MESSAGE = "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n"

Case = Callable[[Channel], Awaitable[None]]


class _Call(Protocol):
    """What the cases ask of every call object once its call has ended."""

    def code(self) -> Awaitable[StatusCode]: ...
    def details(self) -> Awaitable[str]: ...
    def initial_metadata(self) -> Awaitable[Metadata]: ...
    def trailing_metadata(self) -> Awaitable[Metadata]: ...


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


async def _check_status(what: str, call: _Call, code: StatusCode, details: str | None = None) -> None:
    got = await call.code()
    if got != code:
        raise AssertionError(f"{what} ended with {got.name} {await call.details()!r}, expected {code.name}")
    if details is not None and (got_details := await call.details()) != details:
        raise AssertionError(f"{what} status message is {got_details!r}, expected {details!r}")


def _check_error(what: str, exc: RpcError, code: StatusCode, details: str | None = None) -> None:
    """The RpcError the call raised carries the expected status."""
    if exc.code != code or (details is not None and exc.details != details):
        expected = code.name if details is None else f"{code.name} {details!r}"
        raise AssertionError(f"{what} raised {exc.code.name} {exc.details!r}, expected {expected}")


def _request(response_size: int | None, payload_size: int) -> StreamingOutputCallRequest:
    """A FullDuplexCall request: one response of ``response_size`` (none if None), a zero payload."""
    params = [ResponseParameters(size=response_size)] if response_size is not None else []
    return StreamingOutputCallRequest(
        response_type=COMPRESSABLE, response_parameters=params, payload=_zeros(payload_size)
    )


async def empty_unary(channel: Channel) -> None:
    response = await TestServiceStub(channel).EmptyCall(Empty())
    if not isinstance(response, Empty):
        raise AssertionError(f"EmptyCall answered {type(response).__name__}, expected grpc.testing.Empty")  # noqa: TRY004
    if response.ByteSize() != 0:
        raise AssertionError(f"EmptyCall's response serializes to {response.ByteSize()} bytes, expected 0")


async def large_unary(channel: Channel) -> None:
    request = SimpleRequest(response_type=COMPRESSABLE, response_size=314159, payload=_zeros(271828))
    response = await TestServiceStub(channel).UnaryCall(request)
    _check_payload("UnaryCall's response", response.payload, 314159)


async def client_streaming(channel: Channel) -> None:
    call = TestServiceStub(channel).StreamingInputCall(None)
    for size in (27182, 8, 1828, 45904):
        await call.write(StreamingInputCallRequest(payload=_zeros(size)))
    await call.done_writing()
    response = await call
    if response.aggregated_payload_size != 74922:
        raise AssertionError(f"aggregated_payload_size is {response.aggregated_payload_size}, expected 74922")


async def server_streaming(channel: Channel) -> None:
    sizes = (31415, 9, 2653, 58979)
    request = StreamingOutputCallRequest(
        response_type=COMPRESSABLE, response_parameters=[ResponseParameters(size=size) for size in sizes]
    )
    call = TestServiceStub(channel).StreamingOutputCall(request)
    responses = [response async for response in call]
    if len(responses) != len(sizes):
        raise AssertionError(f"got {len(responses)} responses, expected {len(sizes)}")
    for i, (response, size) in enumerate(zip(responses, sizes, strict=True)):
        _check_payload(f"response {i + 1}", response.payload, size)
    await _check_status("StreamingOutputCall", call, StatusCode.OK)


async def ping_pong(channel: Channel) -> None:
    call = TestServiceStub(channel).FullDuplexCall(None)
    steps = ((31415, 27182), (9, 8), (2653, 1828), (58979, 45904))
    for i, (response_size, payload_size) in enumerate(steps):
        await call.write(_request(response_size, payload_size))
        response = await call.read()
        if response is EOF:
            raise AssertionError(f"the stream ended after {i} responses, expected 4")
        _check_payload(f"response {i + 1}", response.payload, response_size)
    await call.done_writing()
    if await call.read() is not EOF:
        raise AssertionError("got a response after the 4 expected")
    await _check_status("FullDuplexCall", call, StatusCode.OK)


async def empty_stream(channel: Channel) -> None:
    call = TestServiceStub(channel).FullDuplexCall(None)
    await call.done_writing()
    if await call.read() is not EOF:
        raise AssertionError("got a response, expected none")
    await _check_status("FullDuplexCall", call, StatusCode.OK)


async def cancel_after_begin(channel: Channel) -> None:
    call = TestServiceStub(channel).StreamingInputCall(None)
    call.cancel()
    await _check_status("StreamingInputCall", call, StatusCode.CANCELLED)


async def cancel_after_first_response(channel: Channel) -> None:
    call = TestServiceStub(channel).FullDuplexCall(None)
    await call.write(_request(31415, 27182))
    if await call.read() is EOF:
        raise AssertionError("the stream ended before its first response")
    call.cancel()
    await _check_status("FullDuplexCall", call, StatusCode.CANCELLED)


async def timeout_on_sleeping_server(channel: Channel) -> None:
    call = TestServiceStub(channel).FullDuplexCall(None, timeout=0.001)
    try:
        await call.write(_request(None, 27182))
        response = await call.read()  # the server sends nothing for this request: the deadline ends it
    except RpcError as exc:
        _check_error("FullDuplexCall", exc, StatusCode.DEADLINE_EXCEEDED)
    else:
        raise AssertionError(f"FullDuplexCall's read returned {'EOF' if response is EOF else 'a response'}")
    await _check_status("FullDuplexCall", call, StatusCode.DEADLINE_EXCEEDED)


async def custom_metadata(channel: Channel) -> None:
    stub = TestServiceStub(channel)
    metadata = ((ECHO_INITIAL, INITIAL_VALUE), (ECHO_TRAILING, TRAILING_VALUE))

    async def check(what: str, call: _Call) -> None:
        await _check_status(what, call, StatusCode.OK)
        initial = [(key, value) for key, value in await call.initial_metadata()]
        if (ECHO_INITIAL, INITIAL_VALUE) not in initial:
            raise AssertionError(f"{what}'s initial metadata is {initial}, expected {ECHO_INITIAL}={INITIAL_VALUE!r}")
        trailing = [(key, value) for key, value in await call.trailing_metadata()]
        if (ECHO_TRAILING, TRAILING_VALUE) not in trailing:
            raise AssertionError(
                f"{what}'s trailing metadata is {trailing}, expected {ECHO_TRAILING}={TRAILING_VALUE!r}"
            )

    request = SimpleRequest(response_type=COMPRESSABLE, response_size=314159, payload=_zeros(271828))
    unary = stub.UnaryCall(request, metadata=metadata)
    await unary
    await check("UnaryCall", unary)

    duplex = stub.FullDuplexCall(None, metadata=metadata)
    await duplex.write(_request(314159, 271828))
    await duplex.done_writing()
    async for _ in duplex:
        pass
    await check("FullDuplexCall", duplex)


async def _status_echo(channel: Channel, message: str, *, duplex: bool) -> None:
    stub = TestServiceStub(channel)
    status = EchoStatus(code=StatusCode.UNKNOWN, message=message)
    unary = stub.UnaryCall(SimpleRequest(response_status=status))
    try:
        await unary
    except RpcError as exc:
        _check_error("UnaryCall", exc, StatusCode.UNKNOWN, message)
    await _check_status("UnaryCall", unary, StatusCode.UNKNOWN, message)
    if duplex:
        call = stub.FullDuplexCall(None)
        await call.write(StreamingOutputCallRequest(response_status=status))
        await call.done_writing()
        try:
            async for _ in call:
                pass
        except RpcError as exc:
            _check_error("FullDuplexCall", exc, StatusCode.UNKNOWN, message)
        await _check_status("FullDuplexCall", call, StatusCode.UNKNOWN, message)


async def status_code_and_message(channel: Channel) -> None:
    await _status_echo(channel, "test status message", duplex=True)


async def special_status_message(channel: Channel) -> None:
    await _status_echo(channel, SPECIAL_MESSAGE, duplex=False)


async def unimplemented_method(channel: Channel) -> None:
    call = TestServiceStub(channel).UnimplementedCall(Empty())
    await _check_status("TestService/UnimplementedCall", call, StatusCode.UNIMPLEMENTED)


async def unimplemented_service(channel: Channel) -> None:
    call = UnimplementedServiceStub(channel).UnimplementedCall(Empty())
    await _check_status("UnimplementedService/UnimplementedCall", call, StatusCode.UNIMPLEMENTED)


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
