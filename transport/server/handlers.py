"""How a server method is described: its path, its cardinality and its codec."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
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
    STREAM_UNARY = "stream_unary"
    STREAM_STREAM = "stream_stream"

    #: Hashed by identity (the members are singletons): Enum's own hash runs Python code, and every call
    #: looks its cardinality up (the runner, one request or many).
    __hash__ = object.__hash__

    @property
    def request_streaming(self) -> bool:
        """The client sends a stream of messages (the handler starts at the request headers)."""
        return self is Cardinality.STREAM_UNARY or self is Cardinality.STREAM_STREAM

    @property
    def response_streaming(self) -> bool:
        return self is Cardinality.UNARY_STREAM or self is Cardinality.STREAM_STREAM


@dataclass(frozen=True, slots=True)
class MethodHandler:
    """A registered method: the coroutine to run and how to (de)serialize messages.

    - UNARY_UNARY: ``fn(request, context)`` returns the response;
    - UNARY_STREAM: ``fn(request, context)`` is an async generator of responses;
    - STREAM_UNARY: ``fn(requests, context)`` takes an async iterator of requests, returns the response;
    - STREAM_STREAM: ``fn(requests, context)`` is an async generator of responses, reading and
      writing in any order.

    A streaming-response handler may instead be a plain coroutine that writes with
    ``await context.write(response)``.
    """

    cardinality: Cardinality
    fn: Callable[..., Any]
    request_deserializer: Deserializer = _identity
    response_serializer: Serializer = _identity
    #: ``cardinality.request_streaming``, read on every call (a property of an Enum member is a call).
    request_streaming: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "request_streaming", self.cardinality.request_streaming)


def unary_unary(
    fn: Callable[[Any, ServerCall], Awaitable[Any]],
    request_deserializer: Deserializer = _identity,
    response_serializer: Serializer = _identity,
) -> MethodHandler:
    """A handler taking one request and returning one response."""
    return MethodHandler(Cardinality.UNARY_UNARY, fn, request_deserializer, response_serializer)


def unary_stream(
    fn: Callable[[Any, ServerCall], AsyncIterator[Any]] | Callable[[Any, ServerCall], Awaitable[None]],
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
    fn: Callable[[AsyncIterator[Any], ServerCall], AsyncIterator[Any]]
    | Callable[[AsyncIterator[Any], ServerCall], Awaitable[None]],
    request_deserializer: Deserializer = _identity,
    response_serializer: Serializer = _identity,
) -> MethodHandler:
    """A handler iterating a stream of requests and yielding a stream of responses."""
    return MethodHandler(Cardinality.STREAM_STREAM, fn, request_deserializer, response_serializer)


#: A catch-all: asked for a method path the server has no handler for; None = UNIMPLEMENTED.
GenericHandler = Callable[[str], MethodHandler | None]


class Service(Protocol):
    """Anything that can list its methods by full path (``/package.Service/Method``)."""

    def method_handlers(self) -> Mapping[str, MethodHandler]: ...
