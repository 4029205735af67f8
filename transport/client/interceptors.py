"""Client interceptors: a chain of callables around each call.

An interceptor is ``async def __call__(details, request, invoke)``: it may
read or change ``details`` (method, timeout, metadata), call
``await invoke(details, request)`` to continue down the chain to the
transport, and return or transform the :class:`UnaryResult`.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from transport.metadata import Metadata

if TYPE_CHECKING:
    from transport.client.channel import UnaryResult


def _identity(value: Any) -> Any:
    return value


@dataclass(slots=True)
class CallDetails:
    """What a call is, before it is sent."""

    method: str
    timeout: float | None = None
    metadata: Metadata = ()
    wait_for_ready: bool = False
    request_serializer: Callable[[Any], bytes] = _identity
    response_deserializer: Callable[[bytes], Any] = _identity


Invoker = Callable[[CallDetails, Any], Awaitable["UnaryResult"]]


class ClientInterceptor(Protocol):
    def __call__(self, details: CallDetails, request: Any, invoke: Invoker) -> Awaitable[UnaryResult]: ...


def chain(interceptors: Sequence[ClientInterceptor], invoke: Invoker) -> Invoker:
    """Wrap ``invoke`` so the first interceptor runs first (outermost)."""
    for interceptor in reversed(interceptors):
        invoke = functools.partial(interceptor, invoke=invoke)
    return invoke
