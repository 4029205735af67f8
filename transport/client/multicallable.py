"""What ``channel.unary_unary(path, ...)`` and its three siblings return (grpc.aio's multi-callables).

Calling one starts a call object (:mod:`transport.client.call`) for one RPC.
Generated stubs hold one per method.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from transport.client.call import StreamStreamCall, StreamUnaryCall, UnaryResult, UnaryStreamCall, UnaryUnaryCall
from transport.client.interceptors import CallDetails, _identity
from transport.metadata import Metadata

if TYPE_CHECKING:
    from transport.client.channel import Channel

RequestIterator = Iterable[Any] | AsyncIterable[Any]  # of Request
Request = TypeVar("Request")
Response = TypeVar("Response")


class _MultiCallable(Generic[Request, Response]):
    __slots__ = ("_channel", "_deserializer", "_path", "_serializer")

    def __init__(
        self,
        channel: Channel,
        path: str,
        request_serializer: Callable[[Request], bytes] | None,
        response_deserializer: Callable[[bytes], Response] | None,
    ) -> None:
        self._channel = channel
        self._path = path
        self._serializer = request_serializer or _identity
        self._deserializer = response_deserializer or _identity

    def _details(self, timeout: float | None, metadata: Metadata | None, wait_for_ready: bool | None) -> CallDetails:
        return CallDetails(
            self._path, timeout, metadata or (), bool(wait_for_ready), self._serializer, self._deserializer
        )


class UnaryUnaryMultiCallable(_MultiCallable[Request, Response]):
    __slots__ = ()

    def __call__(
        self,
        request: Request,
        *,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        wait_for_ready: bool | None = None,
    ) -> UnaryUnaryCall[Response]:
        return UnaryUnaryCall(self._channel, self._details(timeout, metadata, wait_for_ready), request)

    async def with_call(
        self,
        request: Request,
        *,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        wait_for_ready: bool | None = None,
    ) -> UnaryResult:
        """The response together with its call (metadata, the address it rode)."""
        call = self(request, timeout=timeout, metadata=metadata, wait_for_ready=wait_for_ready)
        return UnaryResult(await call, call)


class UnaryStreamMultiCallable(_MultiCallable[Request, Response]):
    __slots__ = ()

    def __call__(
        self,
        request: Request,
        *,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        wait_for_ready: bool | None = None,
    ) -> UnaryStreamCall[Response]:
        return UnaryStreamCall(self._channel, self._details(timeout, metadata, wait_for_ready), request)


class StreamUnaryMultiCallable(_MultiCallable[Request, Response]):
    __slots__ = ()

    def __call__(
        self,
        request_iterator: RequestIterator | None = None,
        *,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        wait_for_ready: bool | None = None,
    ) -> StreamUnaryCall[Request, Response]:
        return StreamUnaryCall(self._channel, self._details(timeout, metadata, wait_for_ready), request_iterator)


class StreamStreamMultiCallable(_MultiCallable[Request, Response]):
    __slots__ = ()

    def __call__(
        self,
        request_iterator: RequestIterator | None = None,
        *,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        wait_for_ready: bool | None = None,
    ) -> StreamStreamCall[Request, Response]:
        return StreamStreamCall(self._channel, self._details(timeout, metadata, wait_for_ready), request_iterator)
