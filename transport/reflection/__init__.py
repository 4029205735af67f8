"""gRPC server reflection (``grpc.reflection.v1`` and ``v1alpha``): tools such as grpcurl
list and describe a server's services with no .proto file."""

from transport.reflection.service import V1, V1ALPHA, Reflection, service_names

__all__ = ["V1", "V1ALPHA", "Reflection", "service_names"]
