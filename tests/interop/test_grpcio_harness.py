"""The interop harness proves itself on grpcio alone: the 14 grpcio cases pass against the grpcio
TestService, and fail, naming what differed, against a TestService broken on purpose.

This checks the reference peers (tests/interop/grpcio_*.py), not our transport: when a case
fails against ``rpcviz interop-server`` or ``rpcviz interop-client``, the harness is not to blame.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest

from app.interop.protos.empty_pb2 import Empty
from app.interop.protos.messages_pb2 import (
    Payload,
    SimpleRequest,
    SimpleResponse,
    StreamingInputCallRequest,
    StreamingInputCallResponse,
    StreamingOutputCallRequest,
    StreamingOutputCallResponse,
)
from tests.interop import grpcio_server
from tests.interop.grpcio_client import CASES
from tests.interop.grpcio_server import start_grpcio_server

#: Liveness bound for one case (each takes milliseconds); a hang fails instead of blocking the suite.
CASE_TIMEOUT = 20.0


@pytest.fixture
async def grpcio_channel() -> AsyncIterator[grpc.aio.Channel]:
    """A grpc.aio channel to a fresh grpc.aio TestService on 127.0.0.1."""
    server, port = await start_grpcio_server()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield channel
    await channel.close()
    await server.stop(grace=1)


@pytest.mark.parametrize("name", list(CASES))
async def test_grpcio_case_passes_against_the_grpcio_server(grpcio_channel: grpc.aio.Channel, name: str) -> None:
    await asyncio.wait_for(CASES[name](grpcio_channel), CASE_TIMEOUT)


def test_the_cases_are_the_14_standard_ones() -> None:
    assert sorted(CASES) == sorted(
        [
            "empty_unary",
            "large_unary",
            "client_streaming",
            "server_streaming",
            "ping_pong",
            "empty_stream",
            "cancel_after_begin",
            "cancel_after_first_response",
            "timeout_on_sleeping_server",
            "custom_metadata",
            "status_code_and_message",
            "special_status_message",
            "unimplemented_service",
            "unimplemented_method",
        ]
    )


# --- the cases can fail: each against a server broken in the way it checks ------------------


async def _short_unary(request: SimpleRequest, context: grpc.aio.ServicerContext) -> SimpleResponse:
    response = await grpcio_server.unary_call(request, context)
    response.payload.body = response.payload.body[:-1]
    return response


async def _first_only(
    requests: AsyncIterator[StreamingInputCallRequest], context: grpc.aio.ServicerContext
) -> StreamingInputCallResponse:
    sizes = [len(request.payload.body) async for request in requests]
    return StreamingInputCallResponse(aggregated_payload_size=sizes[0] if sizes else 0)


async def _drop_last(
    request: StreamingOutputCallRequest, context: grpc.aio.ServicerContext
) -> AsyncIterator[StreamingOutputCallResponse]:
    responses = [response async for response in grpcio_server.streaming_output_call(request, context)]
    for response in responses[:-1]:
        yield response


async def _unsolicited(
    requests: AsyncIterator[StreamingOutputCallRequest], context: grpc.aio.ServicerContext
) -> AsyncIterator[StreamingOutputCallResponse]:
    yield StreamingOutputCallResponse()
    async for response in grpcio_server.full_duplex_call(requests, context):
        yield response


async def _no_echo(request: SimpleRequest, context: grpc.aio.ServicerContext) -> SimpleResponse:
    return SimpleResponse(payload=Payload(body=bytes(request.response_size)))


async def _strip_status(request: SimpleRequest, context: grpc.aio.ServicerContext) -> SimpleResponse:
    await context.abort(grpc.StatusCode.UNKNOWN, request.response_status.message.strip())
    raise AssertionError("abort() returned")


async def _implemented(request: Empty, context: grpc.aio.ServicerContext) -> Empty:
    return Empty()


def _unary(fn: object) -> grpc.RpcMethodHandler:
    return grpc.unary_unary_rpc_method_handler(
        fn, request_deserializer=SimpleRequest.FromString, response_serializer=SimpleResponse.SerializeToString
    )


def _duplex(fn: object) -> grpc.RpcMethodHandler:
    return grpc.stream_stream_rpc_method_handler(
        fn,
        request_deserializer=StreamingOutputCallRequest.FromString,
        response_serializer=StreamingOutputCallResponse.SerializeToString,
    )


def _sabotages() -> Iterator[tuple[str, dict[str, grpc.RpcMethodHandler], str]]:
    """(case, broken methods, what the case must say differed)."""
    yield "large_unary", {"UnaryCall": _unary(_short_unary)}, "payload is 314158 bytes, expected 314159"
    yield (
        "client_streaming",
        {
            "StreamingInputCall": grpc.stream_unary_rpc_method_handler(
                _first_only,
                request_deserializer=StreamingInputCallRequest.FromString,
                response_serializer=StreamingInputCallResponse.SerializeToString,
            )
        },
        "aggregated_payload_size is 27182, expected 74922",
    )
    yield (
        "server_streaming",
        {
            "StreamingOutputCall": grpc.unary_stream_rpc_method_handler(
                _drop_last,
                request_deserializer=StreamingOutputCallRequest.FromString,
                response_serializer=StreamingOutputCallResponse.SerializeToString,
            )
        },
        "got 3 responses, expected 4",
    )
    yield "empty_stream", {"FullDuplexCall": _duplex(_unsolicited)}, "got a response after the 0 expected"
    yield "custom_metadata", {"UnaryCall": _unary(_no_echo)}, "UnaryCall's initial metadata is"
    yield "status_code_and_message", {"UnaryCall": _unary(_no_echo)}, "UnaryCall ended with OK"
    yield "special_status_message", {"UnaryCall": _unary(_strip_status)}, "UnaryCall status message is"
    yield (
        "unimplemented_method",
        {
            "UnimplementedCall": grpc.unary_unary_rpc_method_handler(
                _implemented, request_deserializer=Empty.FromString, response_serializer=Empty.SerializeToString
            )
        },
        "ended with OK",
    )


@pytest.mark.parametrize(("name", "overrides", "differs"), list(_sabotages()), ids=[s[0] for s in _sabotages()])
async def test_grpcio_case_names_what_a_broken_server_got_wrong(
    name: str, overrides: dict[str, grpc.RpcMethodHandler], differs: str
) -> None:
    server, port = await start_grpcio_server(overrides=overrides)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(AssertionError, match=differs):
                await asyncio.wait_for(CASES[name](channel), CASE_TIMEOUT)
    finally:
        await server.stop(grace=1)


async def test_ping_pong_does_not_pass_against_a_half_duplex_server() -> None:
    """A FullDuplexCall that waits for the half-close before answering never answers ping_pong's first
    ping: the case stays waiting (the liveness bound ends it)."""
    server, port = await start_grpcio_server(overrides={"FullDuplexCall": _duplex(grpcio_server.half_duplex_call)})
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(CASES["ping_pong"](channel), 1.0)
    finally:
        await server.stop(grace=0)
