"""``grpc.health.v1.Health``: Check and Watch, as health-checking.md specifies.

The empty service name stands for the whole server. Check on an unknown
service is NOT_FOUND; Watch on one answers SERVICE_UNKNOWN and keeps
watching (the service may appear later).
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator

from transport.health import health_pb2
from transport.health.health_pb2 import HealthCheckRequest, HealthCheckResponse
from transport.health.health_rpcviz import HEALTH_CHECK, HEALTH_WATCH, HealthServicer
from transport.server import ServicerContext
from transport.status import RpcError, StatusCode

CHECK = HEALTH_CHECK
WATCH = HEALTH_WATCH
#: grpc.health.v1.Health as protoc describes it, in transport.descriptors.POOL (not protobuf's
#: default pool, where grpcio-health-checking registers its own copy), where reflection finds it.
DESCRIPTOR = health_pb2.DESCRIPTOR.services_by_name["Health"]


class ServingStatus(enum.IntEnum):
    """``HealthCheckResponse.ServingStatus`` as a Python enum (same numbers)."""

    UNKNOWN = HealthCheckResponse.UNKNOWN
    SERVING = HealthCheckResponse.SERVING
    NOT_SERVING = HealthCheckResponse.NOT_SERVING
    SERVICE_UNKNOWN = HealthCheckResponse.SERVICE_UNKNOWN  # Watch only

    @classmethod
    def of(cls, response: HealthCheckResponse) -> ServingStatus:
        """A response's status; a number this enum does not know is UNKNOWN (proto3 enums are open)."""
        try:
            return cls(response.status)
        except ValueError:
            return cls.UNKNOWN


class HealthService(HealthServicer):
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

    async def Check(self, request: HealthCheckRequest, context: ServicerContext) -> HealthCheckResponse:
        status = self._statuses.get(request.service)
        if status is None:
            raise RpcError(StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return HealthCheckResponse(status=status.name)

    async def Watch(self, request: HealthCheckRequest, context: ServicerContext) -> AsyncIterator[HealthCheckResponse]:
        service = request.service
        queue: asyncio.Queue[ServingStatus | None] = asyncio.Queue()
        self._watchers.setdefault(service, set()).add(queue)
        try:
            last = self._statuses.get(service, ServingStatus.SERVICE_UNKNOWN)
            yield HealthCheckResponse(status=last.name)
            while True:
                status = await queue.get()
                if status is None:
                    return
                if status != last:
                    last = status
                    yield HealthCheckResponse(status=status.name)
        finally:
            self._watchers[service].discard(queue)
