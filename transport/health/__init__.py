"""gRPC health checking: the server's Health service and its serving statuses."""

from transport.health.service import CHECK, WATCH, HealthService, ServingStatus

__all__ = ["CHECK", "WATCH", "HealthService", "ServingStatus"]
