"""grpc.health.v1 on our server, called by a stock grpcio-health-checking client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from transport import Server, StatusCode
from transport.health import HealthService, ServingStatus


@pytest.fixture
async def health_server() -> AsyncIterator[tuple[Server, HealthService]]:
    health = HealthService()
    server = Server(name="pod-h")
    server.add_service(health)
    await server.start()
    yield server, health
    health.shutdown()
    await server.stop(grace=1)


async def test_check_whole_server_and_unknown_service(health_server: tuple[Server, HealthService]) -> None:
    server, health = health_server
    async with grpc.aio.insecure_channel(str(server.address)) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        health.set("", ServingStatus.NOT_SERVING)
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert server.stats.calls_by_status[StatusCode.NOT_FOUND] == 1


async def test_watch_streams_every_change(health_server: tuple[Server, HealthService]) -> None:
    server, health = health_server
    async with grpc.aio.insecure_channel(str(server.address)) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        call = stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=10)
        seen = [(await call.read()).status]
        health.set("", ServingStatus.NOT_SERVING)
        seen.append((await call.read()).status)
        health.set("", ServingStatus.SERVING)
        seen.append((await call.read()).status)
        assert seen == [
            health_pb2.HealthCheckResponse.SERVING,
            health_pb2.HealthCheckResponse.NOT_SERVING,
            health_pb2.HealthCheckResponse.SERVING,
        ]
        call.cancel()


async def test_watch_unknown_service_says_service_unknown_then_follows_it(
    health_server: tuple[Server, HealthService],
) -> None:
    server, health = health_server
    async with grpc.aio.insecure_channel(str(server.address)) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        call = stub.Watch(health_pb2.HealthCheckRequest(service="later"), timeout=10)
        assert (await call.read()).status == health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
        health.set("later", ServingStatus.SERVING)
        assert (await call.read()).status == health_pb2.HealthCheckResponse.SERVING
        call.cancel()


async def test_shutdown_reports_not_serving_and_ends_watches(health_server: tuple[Server, HealthService]) -> None:
    server, health = health_server
    async with grpc.aio.insecure_channel(str(server.address)) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        call = stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert (await call.read()).status == health_pb2.HealthCheckResponse.SERVING
        health.shutdown()
        assert (await call.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert await call.read() is grpc.aio.EOF
        assert await asyncio.wait_for(call.code(), 5) == grpc.StatusCode.OK
