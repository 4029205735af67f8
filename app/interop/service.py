"""``grpc.testing.TestService`` on our server, as grpc's ``doc/interop-test-descriptions.md`` specifies.

Server features: EmptyCall, UnaryCall, StreamingOutputCall, StreamingInputCall, FullDuplexCall,
HalfDuplexCall, Echo Status (a request's ``response_status`` ends the call with it), Echo Metadata
(``x-grpc-test-echo-initial`` back in the response headers, ``x-grpc-test-echo-trailing-bin`` in the
trailers) and ``ResponseParameters.interval_us`` (a sleep before each response). It is the generated
``TestServiceServicer``: ``UnimplementedCall`` keeps the base class's UNIMPLEMENTED answer, as in
grpc's own interop servers, and ``grpc.testing.UnimplementedService`` is not registered, so the
server answers UNIMPLEMENTED for it too.
Not implemented (UNIMPLEMENTED, the base class's): CacheableUnaryCall; also compression
(``response_compressed``, ``expect_compressed``) and the auth echoes (``fill_username``,
``fill_oauth_scope``). The 14 standard cases use none of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from app.interop.protos.empty_pb2 import Empty
from app.interop.protos.messages_pb2 import (
    COMPRESSABLE,
    Payload,
    SimpleRequest,
    SimpleResponse,
    StreamingInputCallRequest,
    StreamingInputCallResponse,
    StreamingOutputCallRequest,
    StreamingOutputCallResponse,
)
from app.interop.protos.test_rpcviz import TestServiceServicer
from transport import Metadata, RpcError, ServicerContext, StatusCode

ECHO_INITIAL = "x-grpc-test-echo-initial"
ECHO_TRAILING = "x-grpc-test-echo-trailing-bin"

_CODES = {int(code): code for code in StatusCode}


async def _echo_metadata(context: ServicerContext) -> Metadata:
    """Echo Metadata: send the initial key back in the response headers now (so the client sees it
    before any response) and set the trailing key for the trailers; return the trailing metadata."""
    received = context.invocation_metadata()
    initial = tuple((key, value) for key, value in received if key == ECHO_INITIAL)
    trailing = tuple((key, value) for key, value in received if key == ECHO_TRAILING)
    if initial:
        await context.send_initial_metadata(initial)
    if trailing:
        context.set_trailing_metadata(trailing)
    return trailing


def _echo_status(
    request: SimpleRequest | StreamingOutputCallRequest, context: ServicerContext, trailing: Metadata
) -> None:
    """Echo Status: a request whose ``response_status`` is not OK ends the call with that status
    (an unknown code number becomes UNKNOWN); the echoed trailing metadata goes with it."""
    if request.HasField("response_status") and request.response_status.code != StatusCode.OK:
        status = request.response_status
        context.abort(_CODES.get(status.code, StatusCode.UNKNOWN), status.message, trailing)


def _payload(response_type: int, size: int) -> Payload:
    """``size`` zero bytes of ``response_type``; INVALID_ARGUMENT for a type or size we cannot make."""
    if response_type != COMPRESSABLE:
        raise RpcError(StatusCode.INVALID_ARGUMENT, f"response type {response_type} is not supported")
    if size < 0:
        raise RpcError(StatusCode.INVALID_ARGUMENT, f"response size {size} is negative")
    return Payload(type=COMPRESSABLE, body=bytes(size))


async def _responses(request: StreamingOutputCallRequest) -> AsyncIterator[StreamingOutputCallResponse]:
    """One response per ResponseParameters, each sent ``interval_us`` after the one before."""
    for params in request.response_parameters:
        if params.interval_us > 0:
            await asyncio.sleep(params.interval_us / 1_000_000)
        yield StreamingOutputCallResponse(payload=_payload(request.response_type, params.size))


class TestService(TestServiceServicer):
    """The interop server's service; ``server.add_service(TestService())``."""

    __test__ = False  # not a pytest test class, whatever its name

    async def EmptyCall(self, request: Empty, context: ServicerContext) -> Empty:
        await _echo_metadata(context)
        return Empty()

    async def UnaryCall(self, request: SimpleRequest, context: ServicerContext) -> SimpleResponse:
        trailing = await _echo_metadata(context)
        _echo_status(request, context, trailing)
        return SimpleResponse(payload=_payload(request.response_type, request.response_size))

    async def StreamingOutputCall(
        self, request: StreamingOutputCallRequest, context: ServicerContext
    ) -> AsyncIterator[StreamingOutputCallResponse]:
        trailing = await _echo_metadata(context)
        _echo_status(request, context, trailing)
        async for response in _responses(request):
            yield response

    async def StreamingInputCall(
        self, requests: AsyncIterator[StreamingInputCallRequest], context: ServicerContext
    ) -> StreamingInputCallResponse:
        """Upon the half-close: the sum of the payload sizes received."""
        await _echo_metadata(context)
        total = 0
        async for request in requests:
            total += len(request.payload.body)
        return StreamingInputCallResponse(aggregated_payload_size=total)

    async def FullDuplexCall(
        self, requests: AsyncIterator[StreamingOutputCallRequest], context: ServicerContext
    ) -> AsyncIterator[StreamingOutputCallResponse]:
        """Each request's responses as soon as it arrives (ping-pong); OK after the half-close.
        A request without response parameters gets no response: the server waits for the next
        (the "sleeping server" of timeout_on_sleeping_server)."""
        trailing = await _echo_metadata(context)
        async for request in requests:
            _echo_status(request, context, trailing)
            async for response in _responses(request):
                yield response

    async def HalfDuplexCall(
        self, requests: AsyncIterator[StreamingOutputCallRequest], context: ServicerContext
    ) -> AsyncIterator[StreamingOutputCallResponse]:
        """Every request first (until the half-close), then their responses in order."""
        trailing = await _echo_metadata(context)
        buffered = [request async for request in requests]
        for request in buffered:
            _echo_status(request, context, trailing)
            async for response in _responses(request):
                yield response
