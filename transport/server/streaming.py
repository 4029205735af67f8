"""A minimal server path for bidirectional streaming (``Cardinality.STREAM_STREAM``).

Enough for request/answer protocols such as server reflection, whose clients
send one request and wait for its answer. The handler starts when the request
headers arrive (not at END_STREAM, as the unary paths do); the connection hands
each decoded request message to the call's :class:`RequestStream`
(``ServerConnection._on_data`` -> :meth:`RequestStream.take`) and the end of the
request to it (END_STREAM -> ``ServerCall.start`` -> :meth:`RequestStream.end`).

Received data is still acknowledged to flow control when it arrives, as on the
other paths today: a client that keeps sending without reading can make the
stream hold what the handler has not read yet. The stream redesign acknowledges
on consumption and takes this over.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import h2.exceptions

from transport.http2 import ConnectionClosed
from transport.server.call import ServerCall, _deserialize, _handler_failed
from transport.status import RpcError, StatusCode


class RequestStream:
    """The request messages of one streaming call, fed by the connection, read by the handler."""

    __slots__ = ("_ended", "_messages", "_waiter")

    def __init__(self) -> None:
        self._messages: deque[bytes] = deque()
        self._ended = False
        self._waiter: asyncio.Future[None] | None = None

    def take(self, messages: list[bytes]) -> None:
        """Move the decoded ``messages`` here (the list is emptied) and wake the reader."""
        if messages:
            self._messages.extend(messages)
            messages.clear()
            self._wake()

    def end(self) -> None:
        """The client half-closed: the reader ends after the messages already taken."""
        self._ended = True
        self._wake()

    def close(self, task: asyncio.Task[None] | None) -> None:
        """The call finished: end the requests and cancel the handler's ``task``,
        unless this is that task finishing its own call."""
        self.end()
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __aiter__(self) -> RequestStream:
        return self

    async def __anext__(self) -> bytes:
        while not self._messages:
            if self._ended:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self._messages.popleft()


def start_stream_stream(call: ServerCall, loop: asyncio.AbstractEventLoop) -> None:
    """Run ``call``'s STREAM_STREAM handler from now on, fed through ``call.inbox``."""
    inbox = call.inbox = RequestStream()
    call.task = loop.create_task(_run_stream_stream(call, inbox))


async def _requests(call: ServerCall, inbox: RequestStream) -> AsyncIterator[Any]:
    async for raw in inbox:
        yield _deserialize(call.handler, raw)


async def _run_stream_stream(call: ServerCall, inbox: RequestStream) -> None:
    handler = call.handler
    try:
        async with contextlib.aclosing(handler.fn(_requests(call, inbox), call)) as responses:
            async for response in responses:
                if call.finished:
                    return
                payload = handler.response_serializer(response)
                try:
                    await call.send_message(payload)
                except (h2.exceptions.ProtocolError, ConnectionClosed):
                    call.on_reset()
                    return
        call.finish(StatusCode.OK)
    except RpcError as exc:
        call.finish(exc.code, exc.details, exc.trailing_metadata or None)
    except asyncio.CancelledError:
        call.on_reset()
    except Exception as exc:  # noqa: BLE001 - a handler bug must not reach the peer as a traceback
        _handler_failed(call, exc)
