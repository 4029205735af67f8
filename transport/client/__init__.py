"""The client: channel, resolver, subchannels, interceptors."""

from transport.client.backoff import BackoffConfig, ExponentialBackoff
from transport.client.call import (
    Call,
    StreamStreamCall,
    StreamUnaryCall,
    UnaryResult,
    UnaryStreamCall,
    UnaryUnaryCall,
)
from transport.client.channel import Channel, ChannelOptions, ChannelStats
from transport.client.endpoints import Endpoints, EndpointsResolver
from transport.client.interceptors import CallDetails, ClientInterceptor, Invoker
from transport.client.multicallable import (
    StreamStreamMultiCallable,
    StreamUnaryMultiCallable,
    UnaryStreamMultiCallable,
    UnaryUnaryMultiCallable,
)
from transport.client.orca import OrcaOobWatcher, parse_load_report
from transport.client.resolver import Resolver, parse_target, register_scheme, resolve_all, resolve_one
from transport.client.subchannel import Subchannel, SubchannelOptions, SubchannelStats

__all__ = [
    "BackoffConfig",
    "Call",
    "CallDetails",
    "Channel",
    "ChannelOptions",
    "ChannelStats",
    "ClientInterceptor",
    "Endpoints",
    "EndpointsResolver",
    "ExponentialBackoff",
    "Invoker",
    "OrcaOobWatcher",
    "Resolver",
    "StreamStreamCall",
    "StreamStreamMultiCallable",
    "StreamUnaryCall",
    "StreamUnaryMultiCallable",
    "Subchannel",
    "SubchannelOptions",
    "SubchannelStats",
    "UnaryResult",
    "UnaryStreamCall",
    "UnaryStreamMultiCallable",
    "UnaryUnaryCall",
    "UnaryUnaryMultiCallable",
    "parse_load_report",
    "parse_target",
    "register_scheme",
    "resolve_all",
    "resolve_one",
]
