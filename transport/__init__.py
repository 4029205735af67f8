"""rpcviz's transport: gRPC over HTTP/2 on h2 + asyncio, with client-side load balancing.

It never imports textual or rich: the UI reads its counters, not the other way round.
"""

from transport.address import Address
from transport.client import (
    BackoffConfig,
    CallDetails,
    Channel,
    ChannelOptions,
    Subchannel,
    UnaryResult,
)
from transport.connectivity import ConnectivityState
from transport.eof import EOF
from transport.metadata import Metadata
from transport.server import (
    Server,
    ServerOptions,
    ServicerContext,
    stream_stream,
    stream_unary,
    unary_stream,
    unary_unary,
)
from transport.status import RpcError, StatusCode

__all__ = [
    "EOF",
    "Address",
    "BackoffConfig",
    "CallDetails",
    "Channel",
    "ChannelOptions",
    "ConnectivityState",
    "Metadata",
    "RpcError",
    "Server",
    "ServerOptions",
    "ServicerContext",
    "StatusCode",
    "Subchannel",
    "UnaryResult",
    "stream_stream",
    "stream_unary",
    "unary_stream",
    "unary_unary",
]
