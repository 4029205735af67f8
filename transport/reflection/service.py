"""``grpc.reflection.v1`` and ``v1alpha`` ServerReflection, as doc/server-reflection.md specifies.

One bidirectional stream per client; each request is answered in order with
one response. The services listed are the server's registered ones (read when
a stream opens, so registration order does not matter). Their descriptors come
from the protobuf descriptor pools of the registered methods' message classes,
then :data:`transport.descriptors.POOL` (the transport's own protos) and
protobuf's default pool. Only the files declaring a served service and what
they import are shown: a process's default pool may hold unrelated protos.

As grpc-go does, a file's dependencies are sent with it, and each file once per
stream (the file asked for is always sent).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from types import ModuleType
from typing import Any

from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor, FileDescriptor
from google.protobuf.descriptor_pool import DescriptorPool

from transport.descriptors import POOL
from transport.reflection.v1 import reflection_pb2 as v1
from transport.reflection.v1alpha import reflection_pb2 as v1alpha
from transport.server import MethodHandler, Server, ServerCall, stream_stream
from transport.status import StatusCode

V1 = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
V1ALPHA = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"


def service_names(paths: Iterable[str]) -> list[str]:
    """The services of method paths (``/package.Service/Method``), sorted, each once."""
    return sorted({path.split("/")[1] for path in paths})


class Reflection:
    """Server reflection for ``server``: ``server.add_service(Reflection(server))``.

    ``pools`` replaces the descriptor pools searched (by default: those of the
    registered methods' message classes, then the transport's, then protobuf's default).
    """

    def __init__(self, server: Server, pools: Sequence[DescriptorPool] | None = None) -> None:
        self._server = server
        self._pools = tuple(pools) if pools is not None else None

    def method_handlers(self) -> Mapping[str, MethodHandler]:
        return {V1: self._handler(v1), V1ALPHA: self._handler(v1alpha)}

    def _handler(self, pb2: ModuleType) -> MethodHandler:
        return stream_stream(
            functools.partial(self._info, pb2),
            pb2.ServerReflectionRequest.FromString,
            pb2.ServerReflectionResponse.SerializeToString,
        )

    async def _info(self, pb2: ModuleType, requests: AsyncIterator[Any], context: ServerCall) -> AsyncIterator[Any]:
        methods = self._server.methods
        names = service_names(methods)
        files = _ServedFiles(names, self._pools if self._pools is not None else _pools_of(methods.values()))
        sent: set[str] = set()
        async for request in requests:
            yield _answer(pb2, request, names, files, sent)


def _pools_of(handlers: Iterable[MethodHandler]) -> tuple[DescriptorPool, ...]:
    """The pools of the handlers' protobuf message classes (``HelloRequest.FromString``
    is bound to ``HelloRequest``), then the transport's and the default pool."""
    pools: list[DescriptorPool] = []
    for handler in handlers:
        for codec in (handler.request_deserializer, handler.response_serializer):
            descriptor = getattr(getattr(codec, "__self__", None), "DESCRIPTOR", None)
            if isinstance(descriptor, Descriptor) and descriptor.file.pool not in pools:
                pools.append(descriptor.file.pool)
    for pool in (POOL, descriptor_pool.Default()):
        if pool not in pools:
            pools.append(pool)
    return tuple(pools)


class _ServedFiles:
    """The files reflection may show: those declaring the served services, and their imports."""

    def __init__(self, services: Iterable[str], pools: Sequence[DescriptorPool]) -> None:
        self._pools = pools
        self.by_name: dict[str, FileDescriptor] = {}
        for name in services:
            for pool in pools:
                try:
                    self._add(pool.FindServiceByName(name).file)
                    break
                except KeyError:
                    continue

    def _add(self, file: FileDescriptor) -> None:
        if file.name not in self.by_name:
            self.by_name[file.name] = file
            for dependency in file.dependencies:
                self._add(dependency)

    def _served(self, file: FileDescriptor) -> bool:
        return self.by_name.get(file.name) is file

    def containing_symbol(self, symbol: str) -> FileDescriptor | None:
        for pool in self._pools:
            file = _file_containing_symbol(pool, symbol)
            if file is not None and self._served(file):
                return file
        return None

    def containing_extension(self, type_name: str, number: int) -> FileDescriptor | None:
        for pool in self._pools:
            try:
                extension = pool.FindExtensionByNumber(pool.FindMessageTypeByName(type_name), number)
            except KeyError:
                continue
            file: FileDescriptor = extension.file
            if self._served(file):
                return file
        return None

    def extension_numbers(self, type_name: str) -> list[int] | None:
        """The extension numbers of a served message type; None if it is not one."""
        for pool in self._pools:
            try:
                message = pool.FindMessageTypeByName(type_name)
            except KeyError:
                continue
            if self._served(message.file):
                return sorted(ext.number for ext in pool.FindAllExtensions(message) if self._served(ext.file))
        return None

    def with_dependencies(self, file: FileDescriptor, sent: set[str]) -> list[bytes]:
        """``file`` and, breadth first, the imports not yet ``sent`` on this stream."""
        out: list[bytes] = []
        queue = [file]
        while queue:
            current = queue.pop(0)
            if not out or current.name not in sent:
                sent.add(current.name)
                out.append(current.serialized_pb)
                queue += current.dependencies
        return out


def _file_containing_symbol(pool: DescriptorPool, symbol: str) -> FileDescriptor | None:
    """protobuf's lookup, plus methods (``package.Service.Method``), which it does not find."""
    file: FileDescriptor
    try:
        file = pool.FindFileContainingSymbol(symbol)
        return file
    except KeyError:
        pass
    service, _, method = symbol.rpartition(".")
    try:
        found = pool.FindServiceByName(service)
    except KeyError:
        return None
    if method not in found.methods_by_name:
        return None
    file = found.file
    return file


def _answer(pb2: ModuleType, request: Any, names: list[str], files: _ServedFiles, sent: set[str]) -> Any:
    response = pb2.ServerReflectionResponse(valid_host=request.host, original_request=request)
    kind = request.WhichOneof("message_request")
    file: FileDescriptor | None
    if kind == "list_services":
        response.list_services_response.service.extend(pb2.ServiceResponse(name=name) for name in names)
        return response
    if kind == "all_extension_numbers_of_type":
        type_name = request.all_extension_numbers_of_type
        numbers = files.extension_numbers(type_name)
        if numbers is None:
            return _error(response, StatusCode.NOT_FOUND, f"unknown message type {type_name!r}")
        response.all_extension_numbers_response.base_type_name = type_name
        response.all_extension_numbers_response.extension_number.extend(numbers)
        return response
    if kind == "file_by_filename":
        file = files.by_name.get(request.file_by_filename)
        missing = f"unknown file {request.file_by_filename!r}"
    elif kind == "file_containing_symbol":
        file = files.containing_symbol(request.file_containing_symbol)
        missing = f"unknown symbol {request.file_containing_symbol!r}"
    elif kind == "file_containing_extension":
        ask = request.file_containing_extension
        file = files.containing_extension(ask.containing_type, ask.extension_number)
        missing = f"no extension {ask.extension_number} of {ask.containing_type!r}"
    else:
        return _error(response, StatusCode.INVALID_ARGUMENT, "the request asks nothing (no message_request field set)")
    if file is None:
        return _error(response, StatusCode.NOT_FOUND, missing)
    response.file_descriptor_response.file_descriptor_proto.extend(files.with_dependencies(file, sent))
    return response


def _error(response: Any, code: StatusCode, message: str) -> Any:
    response.error_response.error_code = int(code)
    response.error_response.error_message = message
    return response
