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
    UnaryUnaryMethod,
)
from transport.connectivity import ConnectivityState
from transport.metadata import Metadata
from transport.server import Server, ServerOptions, ServicerContext, unary_stream, unary_unary
from transport.status import RpcError, StatusCode

__all__ = [
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
    "UnaryUnaryMethod",
    "unary_stream",
    "unary_unary",
]
