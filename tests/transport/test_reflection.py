"""Server reflection on our server, asked by grpcio's stock reflection client (v1alpha) and by a
raw grpcio stub of grpc.reflection.v1: list, describe, files with their imports, errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, empty_pb2, message_factory, timestamp_pb2
from grpc_health.v1 import health_pb2 as stock_health_pb2  # noqa: F401 - both copies of grpc.health.v1 in one process
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from app.greeter.service import Greeter
from transport import Server
from transport.health import HealthService
from transport.reflection import V1, Reflection
from transport.reflection.v1 import reflection_pb2 as v1
from transport.server import ServerCall, unary_unary

SERVICES = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
    "helloworld.Greeter",
]


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    server = Server(name="pod-r")
    server.add_service(Reflection(server))  # before the others: it reads the table per stream
    server.add_service(Greeter())
    health = HealthService()
    server.add_service(health)
    await server.start()
    yield server
    health.shutdown()
    await server.stop(grace=1)


class V1Stream:
    """One grpc.reflection.v1 ServerReflectionInfo stream: ask, read the answer, repeat."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        method = channel.stream_stream(
            V1,
            request_serializer=v1.ServerReflectionRequest.SerializeToString,
            response_deserializer=v1.ServerReflectionResponse.FromString,
        )
        self.call = method(timeout=10)

    async def ask(self, **request: Any) -> Any:
        sent = v1.ServerReflectionRequest(host="here", **request)
        await self.call.write(sent)
        response = await self.call.read()
        assert response.original_request == sent
        assert response.valid_host == "here"
        return response

    async def files(self, **request: Any) -> list[str]:
        """The names of the files an answer carries, in order."""
        response = await self.ask(**request)
        assert response.WhichOneof("message_response") == "file_descriptor_response", response
        protos = [
            descriptor_pb2.FileDescriptorProto.FromString(b)
            for b in response.file_descriptor_response.file_descriptor_proto
        ]
        return [p.name for p in protos]

    async def close(self) -> grpc.StatusCode:
        await self.call.done_writing()
        assert await self.call.read() is grpc.aio.EOF
        return await self.call.code()


async def test_stock_v1alpha_client_lists_services_and_describes_say_hello(server: Server) -> None:
    def ask() -> tuple[list[str], Any, Any]:
        with grpc.insecure_channel(str(server.address)) as channel:
            database = ProtoReflectionDescriptorDatabase(channel)
            pool = descriptor_pool.DescriptorPool(database)
            say_hello = pool.FindMethodByName("helloworld.Greeter.SayHello")
            health = pool.FindServiceByName("grpc.health.v1.Health")
            return list(database.get_services()), say_hello, health

    services, say_hello, health = await asyncio.to_thread(ask)
    assert services == SERVICES
    assert say_hello.input_type.full_name == "helloworld.HelloRequest"
    assert say_hello.output_type.full_name == "helloworld.HelloReply"
    assert [f.name for f in say_hello.input_type.fields] == ["name"]
    assert say_hello.containing_service.file.name == "helloworld.proto"
    assert [(m.name, m.server_streaming) for m in health.methods] == [("Check", False), ("Watch", True)]
    assert health.file.name == "grpc/health/v1/health.proto"


async def test_v1_answers_each_kind_of_request_on_one_stream(server: Server) -> None:
    async with grpc.aio.insecure_channel(str(server.address)) as channel:
        stream = V1Stream(channel)
        listed = await stream.ask(list_services="*")
        assert [s.name for s in listed.list_services_response.service] == SERVICES
        assert await stream.files(file_containing_symbol="helloworld.Greeter") == ["helloworld.proto"]
        assert await stream.files(file_containing_symbol="helloworld.Greeter.SayHello") == ["helloworld.proto"]
        assert await stream.files(file_containing_symbol="helloworld.HelloReply.message") == ["helloworld.proto"]
        # The file asked for is sent again even though this stream had it already.
        assert await stream.files(file_by_filename="helloworld.proto") == ["helloworld.proto"]
        assert await stream.files(file_containing_symbol="grpc.reflection.v1.ServerReflection") == [
            "grpc/reflection/v1/reflection.proto"
        ]
        numbers = await stream.ask(all_extension_numbers_of_type="helloworld.HelloRequest")
        assert numbers.all_extension_numbers_response.base_type_name == "helloworld.HelloRequest"
        assert list(numbers.all_extension_numbers_response.extension_number) == []
        errors = [
            await stream.ask(file_containing_symbol="helloworld.Nobody"),
            await stream.ask(file_by_filename="nobody.proto"),
            await stream.ask(
                file_containing_extension=v1.ExtensionRequest(
                    containing_type="helloworld.HelloRequest", extension_number=100
                )
            ),
            await stream.ask(all_extension_numbers_of_type="helloworld.Nobody"),
            # In this process's default pool (grpcio-health-checking's copy), but not served here.
            await stream.ask(file_containing_symbol="grpc.health.v1.HealthListRequest"),
            await stream.ask(),
        ]
        assert [(e.error_response.error_code, e.error_response.error_message) for e in errors] == [
            (grpc.StatusCode.NOT_FOUND.value[0], "unknown symbol 'helloworld.Nobody'"),
            (grpc.StatusCode.NOT_FOUND.value[0], "unknown file 'nobody.proto'"),
            (grpc.StatusCode.NOT_FOUND.value[0], "no extension 100 of 'helloworld.HelloRequest'"),
            (grpc.StatusCode.NOT_FOUND.value[0], "unknown message type 'helloworld.Nobody'"),
            (grpc.StatusCode.NOT_FOUND.value[0], "unknown symbol 'grpc.health.v1.HealthListRequest'"),
            (grpc.StatusCode.INVALID_ARGUMENT.value[0], "the request asks nothing (no message_request field set)"),
        ]
        assert await stream.close() == grpc.StatusCode.OK


def _shop_pool() -> tuple[descriptor_pool.DescriptorPool, type[Any]]:
    """A private pool with test/shop.proto -> test/common.proto -> google/protobuf/timestamp.proto,
    and test/shop.proto -> google/protobuf/empty.proto; returns it and shop.Order's class."""
    pool = descriptor_pool.DescriptorPool()
    for module in (timestamp_pb2, empty_pb2):
        proto = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(proto)
        pool.Add(proto)
    common = descriptor_pb2.FileDescriptorProto(
        name="test/common.proto", package="test", syntax="proto3", dependency=["google/protobuf/timestamp.proto"]
    )
    stamp = common.message_type.add(name="Stamped")
    stamp.field.add(name="at", number=1, type=11, label=1, type_name=".google.protobuf.Timestamp")
    shop = descriptor_pb2.FileDescriptorProto(
        name="test/shop.proto",
        package="test",
        syntax="proto3",
        dependency=["test/common.proto", "google/protobuf/empty.proto"],
    )
    order = shop.message_type.add(name="Order")
    order.field.add(name="stamp", number=1, type=11, label=1, type_name=".test.Stamped")
    service = shop.service.add(name="Shop")
    service.method.add(name="Place", input_type=".test.Order", output_type=".google.protobuf.Empty")
    pool.Add(common)
    pool.Add(shop)
    return pool, message_factory.GetMessageClass(pool.FindMessageTypeByName("test.Order"))


async def test_files_come_with_their_imports_each_once_per_stream() -> None:
    _, order = _shop_pool()

    async def place(request: Any, context: ServerCall) -> Any:
        return empty_pb2.Empty()

    server = Server()
    # The pool is found through the handler's message class (Order.FromString).
    server.add_method("/test.Shop/Place", unary_unary(place, order.FromString, empty_pb2.Empty.SerializeToString))
    server.add_service(Reflection(server))
    await server.start()
    try:
        async with grpc.aio.insecure_channel(str(server.address)) as channel:
            stream = V1Stream(channel)
            assert await stream.files(file_containing_symbol="test.Shop") == [
                "test/shop.proto",
                "test/common.proto",
                "google/protobuf/empty.proto",
                "google/protobuf/timestamp.proto",
            ]
            # Already sent on this stream: only the file asked for comes again.
            assert await stream.files(file_containing_symbol="test.Stamped") == ["test/common.proto"]
            assert await stream.files(file_by_filename="google/protobuf/timestamp.proto") == [
                "google/protobuf/timestamp.proto"
            ]
            assert await stream.close() == grpc.StatusCode.OK
            fresh = V1Stream(channel)  # a new stream starts over
            assert await fresh.files(file_by_filename="test/common.proto") == [
                "test/common.proto",
                "google/protobuf/timestamp.proto",
            ]
            # A served file's import is shown; an unrelated file of the same pool is not.
            missing = await fresh.ask(file_by_filename="google/protobuf/duration.proto")
            assert missing.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
            assert await fresh.close() == grpc.StatusCode.OK
    finally:
        await server.stop(grace=1)
