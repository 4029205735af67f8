"""Client interceptors: a chain of callables around the start of every call, whatever its cardinality.

An interceptor is ``async def __call__(details, call, invoke)``. It may read or
change ``details`` (method, timeout, metadata), must ``await invoke(details)``
to go on down the chain (the innermost ``invoke`` picks a subchannel and opens
the call's stream), may raise RpcError to fail the call instead, and may watch
how the call ends with ``call.add_done_callback(cb)`` (``await call.code()``
and the metadata work as for the caller). The chain runs once per call;
transparent retries happen below it, as in gRPC.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from transport.metadata import Metadata

if TYPE_CHECKING:
    from transport.client.call import Call


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


Invoker = Callable[[CallDetails], Awaitable[None]]


class ClientInterceptor(Protocol):
    def __call__(self, details: CallDetails, call: Call, invoke: Invoker) -> Awaitable[None]: ...


Chain = Callable[[CallDetails, "Call", Invoker], Awaitable[None]]


def chain(interceptors: Sequence[ClientInterceptor]) -> Chain | None:
    """One callable running ``interceptors`` in order (the first outermost); None when there are none."""
    if not interceptors:
        return None

    async def run(details: CallDetails, call: Call, invoke: Invoker) -> None:
        inner: Invoker = invoke
        for interceptor in reversed(interceptors):
            inner = functools.partial(_step, interceptor, call, inner)
        await inner(details)

    return run


async def _step(interceptor: ClientInterceptor, call: Call, invoke: Invoker, details: CallDetails) -> None:
    await interceptor(details, call, invoke)
