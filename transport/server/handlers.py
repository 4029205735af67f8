"""How a server method is described: its path, its cardinality and its codec."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from transport.server.call import ServerCall

Deserializer = Callable[[bytes], Any]
Serializer = Callable[[Any], bytes]


def _identity(data: Any) -> Any:
    return data


class Cardinality(enum.Enum):
    """How many messages each side sends."""

    UNARY_UNARY = "unary_unary"
    UNARY_STREAM = "unary_stream"
    #: The client streams, the server answers once.
    STREAM_UNARY = "stream_unary"
    #: Both sides stream. Minimal for now (see transport/server/streaming.py): the
    #: handler starts at the request headers and iterates the request messages.
    STREAM_STREAM = "stream_stream"


@dataclass(frozen=True, slots=True)
class MethodHandler:
    """A registered method: the coroutine to run and how to (de)serialize messages.

    ``fn(request, context)`` returns the response (UNARY_UNARY) or is an async
    generator of responses (UNARY_STREAM); ``fn(requests, context)`` takes an
    async iterator of requests and returns the response (STREAM_UNARY) or is an
    async generator of responses (STREAM_STREAM).
    """

    cardinality: Cardinality
    fn: Callable[..., Any]
    request_deserializer: Deserializer = _identity
    response_serializer: Serializer = _identity


def unary_unary(
    fn: Callable[[Any, ServerCall], Awaitable[Any]],
    request_deserializer: Deserializer = _identity,
    response_serializer: Serializer = _identity,
) -> MethodHandler:
    """A handler taking one request and returning one response."""
    return MethodHandler(Cardinality.UNARY_UNARY, fn, request_deserializer, response_serializer)


def unary_stream(
    fn: Callable[[Any, ServerCall], AsyncIterator[Any]],
    request_deserializer: Deserializer = _identity,
    response_serializer: Serializer = _identity,
) -> MethodHandler:
    """A handler taking one request and yielding a stream of responses."""
    return MethodHandler(Cardinality.UNARY_STREAM, fn, request_deserializer, response_serializer)


def stream_unary(
    fn: Callable[[AsyncIterator[Any], ServerCall], Awaitable[Any]],
    request_deserializer: Deserializer = _identity,
    response_serializer: Serializer = _identity,
) -> MethodHandler:
    """A handler iterating a stream of requests and returning one response."""
    return MethodHandler(Cardinality.STREAM_UNARY, fn, request_deserializer, response_serializer)


def stream_stream(
    fn: Callable[[AsyncIterator[Any], ServerCall], AsyncIterator[Any]],
    request_deserializer: Deserializer = _identity,
    response_serializer: Serializer = _identity,
) -> MethodHandler:
    """A handler iterating a stream of requests and yielding a stream of responses."""
    return MethodHandler(Cardinality.STREAM_STREAM, fn, request_deserializer, response_serializer)


class Service(Protocol):
    """Anything that can list its methods by full path (``/package.Service/Method``)."""

    def method_handlers(self) -> Mapping[str, MethodHandler]: ...
