"""grpc.testing.TestService on grpc.aio, the reference server for our interop client.

Written from grpc's ``doc/interop-test-descriptions.md`` ("Server" features: EmptyCall,
UnaryCall, StreamingInputCall, StreamingOutputCall, FullDuplexCall, HalfDuplexCall,
Echo Status, Echo Metadata, ResponseParameters.interval_us). It uses generic handlers
with our ``*_pb2`` messages, so no grpcio codegen is needed. ``UnimplementedCall`` and
``grpc.testing.UnimplementedService`` are not registered: grpcio answers UNIMPLEMENTED.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

import grpc

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

SERVICE = "grpc.testing.TestService"
ECHO_INITIAL = "x-grpc-test-echo-initial"
ECHO_TRAILING = "x-grpc-test-echo-trailing-bin"
_CODES = {code.value[0]: code for code in grpc.StatusCode}

Metadata = tuple[tuple[str, str | bytes], ...]


def _echo_trailing(context: grpc.aio.ServicerContext) -> Metadata:
    """The ``x-grpc-test-echo-trailing-bin`` pair the client sent, as trailing metadata to send back."""
    return tuple((k, v) for k, v in context.invocation_metadata() or () if k == ECHO_TRAILING)


async def _echo_metadata(context: grpc.aio.ServicerContext) -> Metadata:
    """Echo Metadata: the initial key goes back in the response headers (sent now), the
    trailing key in the trailers; returns the trailing metadata (for an abort)."""
    initial = tuple((k, v) for k, v in context.invocation_metadata() or () if k == ECHO_INITIAL)
    if initial:
        await context.send_initial_metadata(initial)
    trailing = _echo_trailing(context)
    if trailing:
        context.set_trailing_metadata(trailing)
    return trailing


async def _echo_status(
    request: SimpleRequest | StreamingOutputCallRequest, context: grpc.aio.ServicerContext, trailing: Metadata
) -> None:
    """Echo Status: a request with a non-OK ``response_status`` ends the call with it."""
    if request.HasField("response_status") and request.response_status.code != 0:
        code = _CODES.get(request.response_status.code, grpc.StatusCode.UNKNOWN)
        await context.abort(code, request.response_status.message, trailing)


async def _payload(size: int, context: grpc.aio.ServicerContext) -> Payload:
    if size < 0:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"response size {size} is negative")
    return Payload(type=COMPRESSABLE, body=bytes(size))


async def _check_type(response_type: int, context: grpc.aio.ServicerContext) -> None:
    if response_type != COMPRESSABLE:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"response type {response_type} is not supported")


async def empty_call(request: Empty, context: grpc.aio.ServicerContext) -> Empty:
    await _echo_metadata(context)
    return Empty()


async def unary_call(request: SimpleRequest, context: grpc.aio.ServicerContext) -> SimpleResponse:
    trailing = await _echo_metadata(context)
    await _echo_status(request, context, trailing)
    await _check_type(request.response_type, context)
    return SimpleResponse(payload=await _payload(request.response_size, context))


async def _responses(
    request: StreamingOutputCallRequest, context: grpc.aio.ServicerContext
) -> AsyncIterator[StreamingOutputCallResponse]:
    """One response per ResponseParameters, each after its ``interval_us``."""
    await _check_type(request.response_type, context)
    for params in request.response_parameters:
        if params.interval_us > 0:
            await asyncio.sleep(params.interval_us / 1_000_000)
        yield StreamingOutputCallResponse(payload=await _payload(params.size, context))


async def streaming_output_call(
    request: StreamingOutputCallRequest, context: grpc.aio.ServicerContext
) -> AsyncIterator[StreamingOutputCallResponse]:
    trailing = await _echo_metadata(context)
    await _echo_status(request, context, trailing)
    async for response in _responses(request, context):
        yield response


async def streaming_input_call(
    requests: AsyncIterator[StreamingInputCallRequest], context: grpc.aio.ServicerContext
) -> StreamingInputCallResponse:
    await _echo_metadata(context)
    total = 0
    async for request in requests:
        total += len(request.payload.body)
    return StreamingInputCallResponse(aggregated_payload_size=total)


async def full_duplex_call(
    requests: AsyncIterator[StreamingOutputCallRequest], context: grpc.aio.ServicerContext
) -> AsyncIterator[StreamingOutputCallResponse]:
    """Each request's responses as soon as it arrives (ping-pong); OK after the half-close."""
    trailing = await _echo_metadata(context)
    async for request in requests:
        await _echo_status(request, context, trailing)
        async for response in _responses(request, context):
            yield response


async def half_duplex_call(
    requests: AsyncIterator[StreamingOutputCallRequest], context: grpc.aio.ServicerContext
) -> AsyncIterator[StreamingOutputCallResponse]:
    """All requests first (until the half-close), then their responses in order."""
    trailing = await _echo_metadata(context)
    buffered = [request async for request in requests]
    for request in buffered:
        await _echo_status(request, context, trailing)
        async for response in _responses(request, context):
            yield response


def service_handler(overrides: Mapping[str, grpc.RpcMethodHandler] | None = None) -> grpc.GenericRpcHandler:
    """grpc.testing.TestService without UnimplementedCall (and without CacheableUnaryCall);
    ``overrides`` replaces or adds methods by name (the harness's own tests break it on purpose)."""
    handlers: dict[str, grpc.RpcMethodHandler] = {
        "EmptyCall": grpc.unary_unary_rpc_method_handler(
            empty_call, request_deserializer=Empty.FromString, response_serializer=Empty.SerializeToString
        ),
        "UnaryCall": grpc.unary_unary_rpc_method_handler(
            unary_call,
            request_deserializer=SimpleRequest.FromString,
            response_serializer=SimpleResponse.SerializeToString,
        ),
        "StreamingOutputCall": grpc.unary_stream_rpc_method_handler(
            streaming_output_call,
            request_deserializer=StreamingOutputCallRequest.FromString,
            response_serializer=StreamingOutputCallResponse.SerializeToString,
        ),
        "StreamingInputCall": grpc.stream_unary_rpc_method_handler(
            streaming_input_call,
            request_deserializer=StreamingInputCallRequest.FromString,
            response_serializer=StreamingInputCallResponse.SerializeToString,
        ),
        "FullDuplexCall": grpc.stream_stream_rpc_method_handler(
            full_duplex_call,
            request_deserializer=StreamingOutputCallRequest.FromString,
            response_serializer=StreamingOutputCallResponse.SerializeToString,
        ),
        "HalfDuplexCall": grpc.stream_stream_rpc_method_handler(
            half_duplex_call,
            request_deserializer=StreamingOutputCallRequest.FromString,
            response_serializer=StreamingOutputCallResponse.SerializeToString,
        ),
    }
    handlers.update(overrides or {})
    return grpc.method_handlers_generic_handler(SERVICE, handlers)


async def start_grpcio_server(
    host: str = "127.0.0.1", port: int = 0, overrides: Mapping[str, grpc.RpcMethodHandler] | None = None
) -> tuple[grpc.aio.Server, int]:
    """A started grpc.aio server with the TestService, and its port; stop it with ``stop(grace)``."""
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((service_handler(overrides),))
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    return server, bound
