"""``grpc.health.v1.Health``: Check and Watch, as health-checking.md specifies.

The empty service name stands for the whole server. Check on an unknown
service is NOT_FOUND; Watch on one answers SERVICE_UNKNOWN and keeps
watching (the service may appear later).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

from transport.health import health_pb2
from transport.health.messages import ServingStatus, decode_request, encode_response
from transport.server import MethodHandler, ServerCall, unary_stream, unary_unary
from transport.status import RpcError, StatusCode

CHECK = "/grpc.health.v1.Health/Check"
WATCH = "/grpc.health.v1.Health/Watch"
#: grpc.health.v1.Health as protoc describes it, in transport.descriptors.POOL, where
#: server reflection finds it (the messages themselves are encoded by hand, messages.py).
DESCRIPTOR = health_pb2.DESCRIPTOR.services_by_name["Health"]


class HealthService:
    def __init__(self) -> None:
        self._statuses: dict[str, ServingStatus] = {"": ServingStatus.SERVING}
        self._watchers: dict[str, set[asyncio.Queue[ServingStatus | None]]] = {}

    def status(self, service: str = "") -> ServingStatus | None:
        return self._statuses.get(service)

    def set(self, service: str, status: ServingStatus) -> None:
        """Set a service's status; every Watch on it hears of a change."""
        if self._statuses.get(service) == status:
            return
        self._statuses[service] = status
        for queue in self._watchers.get(service, ()):
            queue.put_nowait(status)

    def shutdown(self) -> None:
        """Everything NOT_SERVING (health-checking.md: on server shutdown), then
        end every Watch so a graceful stop does not wait for them."""
        for service in list(self._statuses):
            self.set(service, ServingStatus.NOT_SERVING)
        for queues in self._watchers.values():
            for queue in queues:
                queue.put_nowait(None)

    def resume(self) -> None:
        """Back to SERVING after a restart."""
        for service in list(self._statuses):
            self.set(service, ServingStatus.SERVING)

    async def check(self, service: str, context: ServerCall) -> ServingStatus:
        status = self._statuses.get(service)
        if status is None:
            raise RpcError(StatusCode.NOT_FOUND, f"unknown service {service!r}")
        return status

    async def watch(self, service: str, context: ServerCall) -> AsyncIterator[ServingStatus]:
        queue: asyncio.Queue[ServingStatus | None] = asyncio.Queue()
        self._watchers.setdefault(service, set()).add(queue)
        try:
            last = self._statuses.get(service, ServingStatus.SERVICE_UNKNOWN)
            yield last
            while True:
                status = await queue.get()
                if status is None:
                    return
                if status != last:
                    last = status
                    yield status
        finally:
            self._watchers[service].discard(queue)

    def method_handlers(self) -> Mapping[str, MethodHandler]:
        return {
            CHECK: unary_unary(self.check, decode_request, encode_response),
            WATCH: unary_stream(self.watch, decode_request, encode_response),
        }
