"""What ``rpcviz serve`` serves beside the Greeter: health checking and server reflection."""

from __future__ import annotations

from transport import Server
from transport.health import HealthService, ServingStatus
from transport.reflection import Reflection, service_names


def add_health_and_reflection(server: Server) -> HealthService:
    """Serve ``grpc.health.v1.Health`` (SERVING for "" and for each service registered so far)
    and ``grpc.reflection.v1``/``v1alpha`` on ``server``; return the health service, whose
    ``shutdown()`` turns everything NOT_SERVING before a graceful stop."""
    health = HealthService()
    for name in service_names(server.methods):
        health.set(name, ServingStatus.SERVING)
    server.add_service(health)
    server.add_service(Reflection(server))
    return health
