"""gRPC health checking: the server's Health service and its messages."""

from transport.health.messages import ServingStatus, decode_response, encode_request
from transport.health.service import CHECK, WATCH, HealthService

__all__ = ["CHECK", "WATCH", "HealthService", "ServingStatus", "decode_response", "encode_request"]
