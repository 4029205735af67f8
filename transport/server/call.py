"""One server-side RPC: one HTTP/2 stream, from request headers to trailers.

:class:`ServerCall` is also the handler's context (grpcio calls it the
``ServicerContext``): request metadata, the deadline, response metadata,
status, ``abort``, and ``read``/``write`` for streaming handlers. It reads and
writes only through its :class:`~transport.http2.stream.Stream`, made when first
needed: a unary call answered in one step needs none (its answer goes to the
connection's fast path, ``GrpcH2Connection.send_response``, as the stream's would).

A call is fed, not written into: methods that take one request start when the
request has ended, with that message (a unary call then costs no Task, see
:mod:`transport.eager`); streaming-request methods start at the headers and
read the requests as they arrive.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from h2.errors import ErrorCodes

from transport.eager import start_eagerly
from transport.eof import EOF
from transport.http2 import ConnectionClosed
from transport.http2.stream import Stream, StreamReset
from transport.metadata import Metadata, decode_metadata, encode_metadata
from transport.server.handlers import Cardinality, MethodHandler
from transport.status import RpcError, StatusCode
from transport.wire import PREFIX_SIZE, encode_message, percent_encode

if TYPE_CHECKING:
    from transport.server.connection import ServerConnection
    from transport.server.server import Server

log = logging.getLogger(__name__)

_RESPONSE_HEADERS = [(b":status", b"200"), (b"content-type", b"application/grpc")]
_STATUS_BYTES = [str(int(code)).encode() for code in StatusCode]
_OK_STATUS = (b"grpc-status", b"0")
#: The trailers of an OK answer without trailing metadata: a constant block (the HPACK encoder knows it by identity).
_OK_TRAILERS = (_OK_STATUS,)


def ok_headers(server_headers: list[tuple[bytes, bytes]]) -> tuple[tuple[bytes, bytes], ...]:
    """The response headers of a call with no metadata of its own, as a constant block (a connection's)."""
    return (*_RESPONSE_HEADERS, *server_headers)


class ServerCall:
    """The state of one call and the context its handler sees."""

    __slots__ = (
        "_code",
        "_conn",
        "_deadline",
        "_deadline_timer",
        "_details",
        "_headers",
        "_initial_metadata",
        "_metadata",
        "_stream",
        "_trailing_metadata",
        "attachments",
        "finished",
        "handler",
        "method",
        "request_ended",
        "stream_id",
        "task",
    )

    def __init__(
        self,
        conn: ServerConnection,
        stream_id: int,
        method: str,
        handler: MethodHandler,
        headers: Sequence[tuple[bytes, bytes]],
        timeout: float | None,
    ) -> None:
        self._conn = conn
        self.stream_id = stream_id
        self._stream: Stream | None = None
        #: The client ended its request (a unary request taken whole: the stream, when made, says so).
        self.request_ended = False
        self.method = method
        self.handler = handler
        self._headers = headers
        self._metadata: Metadata | None = None
        self.task: asyncio.Task[None] | None = None
        self._initial_metadata: list[tuple[bytes, bytes]] = conn.server_headers
        self._trailing_metadata: list[tuple[bytes, bytes]] = []
        self._code = StatusCode.OK
        self._details = ""
        self.finished = False
        #: What extensions keep with this call while it runs (grpc-go keeps such things in the
        #: call's context), by a key of theirs: ORCA's per-call metrics recorder. None until one does.
        self.attachments: dict[object, object] | None = None
        if timeout is not None:
            loop = conn.loop
            self._deadline: float | None = loop.time() + timeout
            self._deadline_timer: asyncio.TimerHandle | None = loop.call_at(self._deadline, self._on_deadline)
        else:
            self._deadline = None
            self._deadline_timer = None

    @property
    def stream(self) -> Stream:
        """The call's HTTP/2 stream (made on first use)."""
        stream = self._stream
        if stream is None:
            conn = self._conn
            stream = self._stream = Stream(conn, self.stream_id, conn.max_message_length)
            stream.remote_ended = self.request_ended
        return stream

    # --- the handler's context --------------------------------------------

    def invocation_metadata(self) -> Metadata:
        """The request's custom metadata (decoded from the headers on first use)."""
        if self._metadata is None:
            self._metadata = decode_metadata(self._headers)
        return self._metadata

    @property
    def server(self) -> Server:
        """The server running this call."""
        return self._conn.server

    def peer(self) -> str:
        """The client's address in gRPC's form, e.g. ``ipv4:127.0.0.1:5000``."""
        peer = self._conn.peer
        return f"ipv6:{peer}" if peer.startswith("[") else f"ipv4:{peer}"

    def time_remaining(self) -> float | None:
        """Seconds until the deadline, or None when the client set none."""
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - self._conn.loop.time())

    def cancelled(self) -> bool:
        return self.finished

    async def send_initial_metadata(self, metadata: Metadata) -> None:
        """Send response headers now, carrying ``metadata`` (awaitable, as in grpc.aio)."""
        if self.stream.headers_sent:
            raise RuntimeError("initial metadata was already sent")
        self._initial_metadata = self._initial_metadata + encode_metadata(metadata)
        self.stream.send_headers(_RESPONSE_HEADERS + self._initial_metadata)

    def set_trailing_metadata(self, metadata: Metadata) -> None:
        self._trailing_metadata = encode_metadata(metadata)

    def set_code(self, code: StatusCode) -> None:
        """The status sent when the handler returns normally (default OK)."""
        self._code = code

    def set_details(self, details: str) -> None:
        self._details = details

    def abort(self, code: StatusCode, details: str = "", trailing_metadata: Metadata = ()) -> NoReturn:
        """End the call with ``code``: raises the RpcError that carries it."""
        raise RpcError(code, details, trailing_metadata)

    async def read(self) -> Any:
        """The next request message (deserialized), or ``EOF`` once the client has half-closed."""
        try:
            data = await self.stream.recv_message()
        except StreamReset:
            raise asyncio.CancelledError from None
        if data is None:
            return EOF
        return _deserialize(self.handler, data)

    async def requests(self) -> AsyncIterator[Any]:
        """The request messages, deserialized, until the client half-closes (:meth:`read`'s, one layer less)."""
        stream, handler = self.stream, self.handler
        while True:
            try:
                data = await stream.recv_message()
            except StreamReset:
                raise asyncio.CancelledError from None
            if data is None:
                return
            yield _deserialize(handler, data)

    async def write(self, response: Any) -> None:
        """Send one response message (streaming-response handlers)."""
        if self.finished:
            raise asyncio.CancelledError
        await self.send_message(self.handler.response_serializer(response))

    # --- running the handler ----------------------------------------------

    def start(self, request: bytes | None) -> None:
        """Run the handler: with its one ``request`` message, or (streaming requests) with None."""
        cardinality = self.handler.cardinality
        runner = _RUNNERS[cardinality]
        self.task = start_eagerly(runner(self, request))

    async def send_message(self, payload: bytes) -> None:
        """Send one response message, waiting for flow control when needed."""
        stream = self.stream
        if not stream.headers_sent:
            stream.send_headers(_RESPONSE_HEADERS + self._initial_metadata)
        if not stream.try_send_message(payload):
            await stream.send_message(payload)

    def send_unary_response(self, payload: bytes) -> bool:
        """Headers, message and OK trailers in one go if the windows allow (the fast path)."""
        if self.finished:
            return True
        if self._code is not StatusCode.OK or len(payload) + PREFIX_SIZE > self._conn.h2.max_outbound_frame_size:
            return False  # (a message over one frame takes the streaming path: no framed copy made for nothing)
        conn = self._conn
        headers: Sequence[tuple[bytes, bytes]]
        trailers: Sequence[tuple[bytes, bytes]]
        if self._initial_metadata is conn.server_headers and not self._trailing_metadata and not conn.trailer_hooks:
            headers, trailers = conn.ok_headers, _OK_TRAILERS  # (the common answer: constant blocks)
        else:
            headers = _RESPONSE_HEADERS + self._initial_metadata
            trailers = [_OK_STATUS, *self._trailing_metadata]
            if conn.trailer_hooks:
                trailers += self._hook_trailers()
        stream = self._stream
        if stream is None:  # (no stream made: the answer straight to the connection, as Stream.send_response)
            if conn._write_paused or not conn.h2.send_response(
                self.stream_id, headers, encode_message(payload), trailers
            ):
                return False
            conn.schedule_flush()
        elif not stream.send_response(headers, encode_message(payload), trailers):
            return False
        self._close(StatusCode.OK)
        return True

    def finish(self, code: StatusCode, details: str = "", metadata: Metadata | None = None) -> None:
        """Send the status (in trailers, or Trailers-Only) and close the call."""
        if self.finished:
            return
        trailers = [(b"grpc-status", _STATUS_BYTES[code])]
        if details:
            trailers.append((b"grpc-message", percent_encode(details)))
        trailers += encode_metadata(metadata) if metadata else self._trailing_metadata
        if self._conn.trailer_hooks:
            trailers += self._hook_trailers()
        stream = self.stream
        try:
            if stream.headers_sent:
                stream.send_trailers(trailers)
            else:
                stream.send_trailers(_RESPONSE_HEADERS + self._initial_metadata + trailers)
            if not stream.remote_ended:
                # We answered before the client finished sending: tell it to stop.
                stream.reset(ErrorCodes.NO_ERROR)
        except Exception as exc:  # noqa: BLE001 - the stream is gone; account and move on
            log.debug("could not send status on stream %d: %s", self.stream_id, exc)
        self._close(code)

    def _hook_trailers(self) -> list[tuple[bytes, bytes]]:
        """What the server's trailer hooks add to this call's status."""
        added: list[tuple[bytes, bytes]] = []
        for hook in self._conn.trailer_hooks:
            try:
                added += hook(self)
            except Exception:
                log.exception("a trailer hook failed on %s", self.method)
        return added

    def finish_normally(self) -> None:
        """The handler returned: the status it set (OK unless ``set_code``)."""
        self.finish(self._code, self._details)

    def on_reset(self) -> None:
        """The client reset the stream (cancelled) or the connection died."""
        if self.finished:
            return
        self._cancel_task()
        self._close(StatusCode.CANCELLED)

    def _on_deadline(self) -> None:
        self._deadline_timer = None
        if self.finished:
            return
        self._cancel_task()
        self.finish(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")

    def _cancel_task(self) -> None:
        task = self.task
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def _close(self, code: StatusCode) -> None:
        self.finished = True
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
            self._deadline_timer = None
        if self.handler.request_streaming:
            # A handler may be waiting for requests: end them (finished from outside, e.g. abort()).
            self._cancel_task()
            self.stream.on_reset(None, "call finished")
        self._conn.call_finished(self, code)


# --- the four runners -------------------------------------------------------
# Each turns what the handler does into exactly one status on the stream.


async def _run_unary_unary(call: ServerCall, request: bytes | None) -> None:
    handler = call.handler
    try:
        response = await handler.fn(_deserialize(handler, request), call)
        payload = handler.response_serializer(response)
    except BaseException as exc:  # noqa: BLE001 - every outcome becomes a status
        _failed(call, exc)
        return
    if not _answer_now(call, payload):  # (the hot path: no coroutine for sending)
        await _send_unary_slowly(call, payload)


async def _run_stream_unary(call: ServerCall, request: bytes | None) -> None:
    handler = call.handler
    try:
        response = await handler.fn(call.requests(), call)
        payload = handler.response_serializer(response)
    except BaseException as exc:  # noqa: BLE001
        _failed(call, exc)
        return
    if not _answer_now(call, payload):
        await _send_unary_slowly(call, payload)


def _answer_now(call: ServerCall, payload: bytes) -> bool:
    """Headers, the one response and OK trailers in one step if the windows allow; False: send it slowly."""
    try:
        return call.send_unary_response(payload)
    except (asyncio.CancelledError, StreamReset, ConnectionClosed):
        call.on_reset()  # the client reset the stream or the connection went away meanwhile
        return True


async def _send_unary_slowly(call: ServerCall, payload: bytes) -> None:
    """The one response under flow control (the one-step answer could not be sent), then the status."""
    try:
        await call.send_message(payload)
        call.finish_normally()
    except (asyncio.CancelledError, StreamReset, ConnectionClosed):
        call.on_reset()


async def _run_unary_stream(call: ServerCall, request: bytes | None) -> None:
    handler = call.handler
    try:
        await _stream_responses(call, handler.fn(_deserialize(handler, request), call))
    except BaseException as exc:  # noqa: BLE001
        _failed(call, exc)


async def _run_stream_stream(call: ServerCall, request: bytes | None) -> None:
    try:
        await _stream_responses(call, call.handler.fn(call.requests(), call))
    except BaseException as exc:  # noqa: BLE001
        _failed(call, exc)


async def _stream_responses(call: ServerCall, produced: Any) -> None:
    """Send what an async generator yields (or await a coroutine that writes), then the status."""
    if inspect.isasyncgen(produced):
        try:
            serialize = call.handler.response_serializer
            async for response in produced:
                if call.finished:
                    return
                await call.send_message(serialize(response))
        finally:
            await produced.aclose()
    else:
        await produced
    call.finish_normally()


_RUNNERS = {
    Cardinality.UNARY_UNARY: _run_unary_unary,
    Cardinality.UNARY_STREAM: _run_unary_stream,
    Cardinality.STREAM_UNARY: _run_stream_unary,
    Cardinality.STREAM_STREAM: _run_stream_stream,
}


def _failed(call: ServerCall, exc: BaseException) -> None:
    """What ended a handler, as the call's status."""
    if isinstance(exc, RpcError):
        call.finish(exc.code, exc.details, exc.trailing_metadata or None)
    elif isinstance(exc, (asyncio.CancelledError, StreamReset, ConnectionClosed)):
        call.on_reset()
    elif isinstance(exc, Exception):
        log.exception("handler for %s raised", call.method, exc_info=exc)
        call.finish(StatusCode.UNKNOWN, f"Exception calling application: {type(exc).__name__}")
    else:
        call.on_reset()
        raise exc


def _deserialize(handler: MethodHandler, request: bytes | None) -> Any:
    """The request message as the handler takes it (INTERNAL if it does not parse)."""
    try:
        return handler.request_deserializer(request if request is not None else b"")
    except Exception as exc:
        raise RpcError(StatusCode.INTERNAL, f"could not parse the request message: {type(exc).__name__}") from exc
