"""The client: channel, resolver, subchannels, interceptors."""

from transport.client.backoff import BackoffConfig, ExponentialBackoff
from transport.client.channel import Channel, ChannelOptions, ChannelStats, UnaryResult, UnaryUnaryMethod
from transport.client.interceptors import CallDetails, ClientInterceptor, Invoker
from transport.client.resolver import Resolver, parse_target, register_scheme, resolve_all, resolve_one
from transport.client.subchannel import Subchannel, SubchannelOptions, SubchannelStats

__all__ = [
    "BackoffConfig",
    "CallDetails",
    "Channel",
    "ChannelOptions",
    "ChannelStats",
    "ClientInterceptor",
    "ExponentialBackoff",
    "Invoker",
    "Resolver",
    "Subchannel",
    "SubchannelOptions",
    "SubchannelStats",
    "UnaryResult",
    "UnaryUnaryMethod",
    "parse_target",
    "register_scheme",
    "resolve_all",
    "resolve_one",
]
