"""The gRPC server: method table, connections, calls."""

from transport.server.call import ServerCall
from transport.server.handlers import (
    Cardinality,
    MethodHandler,
    Service,
    stream_stream,
    stream_unary,
    unary_stream,
    unary_unary,
)
from transport.server.server import SERVER_NAME_KEY, Server, ServerOptions, ServerStats

#: grpcio's name for the object a handler receives.
ServicerContext = ServerCall

__all__ = [
    "SERVER_NAME_KEY",
    "Cardinality",
    "MethodHandler",
    "Server",
    "ServerCall",
    "ServerOptions",
    "ServerStats",
    "Service",
    "ServicerContext",
    "stream_stream",
    "stream_unary",
    "unary_stream",
    "unary_unary",
]
