"""One server-side RPC: one HTTP/2 stream, from request headers to trailers.

:class:`ServerCall` is also the handler's context (grpcio calls it the
``ServicerContext``): request metadata, the deadline, response metadata and
``abort``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, NoReturn

import h2.exceptions
from h2.errors import ErrorCodes

from transport.eager import start_eagerly
from transport.http2 import ConnectionClosed
from transport.metadata import Metadata, decode_metadata, encode_metadata
from transport.server.handlers import Cardinality, MethodHandler
from transport.status import RpcError, StatusCode
from transport.wire import MessageDecoder, encode_message, percent_encode

if TYPE_CHECKING:
    from transport.server.connection import ServerConnection
    from transport.server.streaming import RequestStream

log = logging.getLogger(__name__)

_RESPONSE_HEADERS = [(b":status", b"200"), (b"content-type", b"application/grpc")]
_STATUS_BYTES = [str(int(code)).encode() for code in StatusCode]
_OK_STATUS = (b"grpc-status", b"0")


class ServerCall:
    """The state of one call and the context its handler sees."""

    __slots__ = (
        "_conn",
        "_deadline",
        "_deadline_timer",
        "_headers",
        "_headers_sent",
        "_initial_metadata",
        "_metadata",
        "_trailing_metadata",
        "decoder",
        "finished",
        "handler",
        "inbox",
        "method",
        "request_ended",
        "requests",
        "stream_id",
        "task",
    )

    def __init__(
        self,
        conn: ServerConnection,
        stream_id: int,
        method: str,
        handler: MethodHandler,
        headers: list[tuple[bytes, bytes]],
        timeout: float | None,
        max_receive_message_length: int,
        compression: str | None,
    ) -> None:
        self._conn = conn
        self.stream_id = stream_id
        self.method = method
        self.handler = handler
        self._headers = headers
        self._metadata: Metadata | None = None
        self.decoder = MessageDecoder(max_receive_message_length, compression)
        self.requests: list[bytes] = []
        self.task: asyncio.Task[None] | None = None
        self._headers_sent = False
        self._initial_metadata: list[tuple[bytes, bytes]] = conn.server_headers
        self._trailing_metadata: list[tuple[bytes, bytes]] = []
        self.finished = False
        self.request_ended = False
        #: STREAM_STREAM only: the running handler's request messages (streaming.py).
        self.inbox: RequestStream | None = None
        if timeout is not None:
            loop = conn.loop
            self._deadline: float | None = loop.time() + timeout
            self._deadline_timer: asyncio.TimerHandle | None = loop.call_at(self._deadline, self._on_deadline)
        else:
            self._deadline = None
            self._deadline_timer = None

    # --- the handler's context --------------------------------------------

    def invocation_metadata(self) -> Metadata:
        """The request's custom metadata (decoded from the headers on first use)."""
        if self._metadata is None:
            self._metadata = decode_metadata(self._headers)
        return self._metadata

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
        if self._headers_sent:
            raise RuntimeError("initial metadata was already sent")
        self._initial_metadata = self._initial_metadata + encode_metadata(metadata)
        self._send_headers()
        self._conn.schedule_flush()

    def set_trailing_metadata(self, metadata: Metadata) -> None:
        self._trailing_metadata = encode_metadata(metadata)

    def abort(self, code: StatusCode, details: str = "") -> NoReturn:
        """End the call with ``code``: raises the RpcError that carries it."""
        raise RpcError(code, details)

    # --- running the handler ----------------------------------------------

    def start(self) -> None:
        """The request is complete: run the handler."""
        if self.inbox is not None:  # STREAM_STREAM: its handler runs already; end its requests
            self.inbox.end()
            return
        if len(self.requests) != 1:
            self.finish(
                StatusCode.INTERNAL if self.requests else StatusCode.UNIMPLEMENTED,
                f"{self.method} expects exactly one request message, got {len(self.requests)}",
            )
            return
        runner = _run_unary if self.handler.cardinality is Cardinality.UNARY_UNARY else _run_unary_stream
        self.task = start_eagerly(runner(self, self.requests.pop()))

    async def send_message(self, payload: bytes) -> None:
        """Send one response message, waiting for flow control when needed."""
        conn = self._conn
        if not self._headers_sent:
            self._send_headers()
        data = encode_message(payload)
        if not conn.try_send_data(self.stream_id, data, False):
            await conn.send_data(self.stream_id, data, False)
        conn.schedule_flush()

    def send_unary_response(self, payload: bytes) -> bool:
        """Headers, message and OK trailers in one go if the window allows (the fast path)."""
        if self.finished:
            return True
        conn = self._conn
        data = encode_message(payload)
        h2c = conn.h2
        if conn.write_paused:
            return False  # the peer is not reading: wait in send_message, hold nothing more
        if (
            not self._headers_sent
            and self.request_ended
            and h2c.send_response(
                self.stream_id,
                _RESPONSE_HEADERS + self._initial_metadata,
                data,
                [_OK_STATUS, *self._trailing_metadata],
            )
        ):
            self._headers_sent = True
            conn.schedule_flush()
            self._close(StatusCode.OK)
            return True
        if len(data) > h2c.max_outbound_frame_size or len(data) > h2c.local_flow_control_window(self.stream_id):
            return False
        if not self._headers_sent:
            self._send_headers()
        h2c.send_data(self.stream_id, data)
        self.finish(StatusCode.OK)
        return True

    def _send_headers(self) -> None:
        self._headers_sent = True
        self._conn.h2.send_headers(self.stream_id, _RESPONSE_HEADERS + self._initial_metadata)

    def finish(self, code: StatusCode, details: str = "", metadata: Metadata | None = None) -> None:
        """Send the status (in trailers, or Trailers-Only) and close the call."""
        if self.finished:
            return
        trailers = [(b"grpc-status", _STATUS_BYTES[code])]
        if details:
            trailers.append((b"grpc-message", percent_encode(details)))
        trailers += encode_metadata(metadata) if metadata else self._trailing_metadata
        conn = self._conn
        h2c = conn.h2
        try:
            if self._headers_sent:
                h2c.send_headers(self.stream_id, trailers, end_stream=True)
            else:
                self._headers_sent = True
                h2c.send_headers(self.stream_id, _RESPONSE_HEADERS + self._initial_metadata + trailers, end_stream=True)
            if not self.request_ended:
                # We answered before the client finished sending: tell it to stop.
                h2c.reset_stream(self.stream_id, ErrorCodes.NO_ERROR)
        except Exception as exc:  # noqa: BLE001 - the stream is gone; account and move on
            log.debug("could not send status on stream %d: %s", self.stream_id, exc)
        conn.schedule_flush()
        self._close(code)

    def on_reset(self) -> None:
        """The client reset the stream (cancelled) or the connection died."""
        if self.finished:
            return
        if self.task is not None:
            self.task.cancel()
        self._close(StatusCode.CANCELLED)

    def _on_deadline(self) -> None:
        self._deadline_timer = None
        if self.finished:
            return
        if self.task is not None:
            self.task.cancel()
        self.finish(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")

    def _close(self, code: StatusCode) -> None:
        self.finished = True
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
            self._deadline_timer = None
        if self.inbox is not None:  # STREAM_STREAM: stop a handler that may be waiting for requests
            self.inbox.close(self.task)
        self._conn.call_finished(self, code)


async def _run_unary(call: ServerCall, request: bytes) -> None:
    handler = call.handler
    try:
        message = _deserialize(handler, request)
        response = await handler.fn(message, call)
        payload = handler.response_serializer(response)
    except RpcError as exc:
        call.finish(exc.code, exc.details, exc.trailing_metadata or None)
        return
    except asyncio.CancelledError:
        call.on_reset()
        return
    except Exception as exc:  # noqa: BLE001 - a handler bug must not reach the peer as a traceback
        _handler_failed(call, exc)
        return
    try:
        if not call.send_unary_response(payload):
            await call.send_message(payload)
            call.finish(StatusCode.OK)
    except (asyncio.CancelledError, h2.exceptions.ProtocolError, ConnectionClosed):
        call.on_reset()  # the client reset the stream or the connection went away meanwhile


async def _run_unary_stream(call: ServerCall, request: bytes) -> None:
    handler = call.handler
    try:
        message = _deserialize(handler, request)
        async for response in handler.fn(message, call):
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
    except Exception as exc:  # noqa: BLE001
        _handler_failed(call, exc)


def _deserialize(handler: MethodHandler, request: bytes) -> Any:
    try:
        return handler.request_deserializer(request)
    except Exception as exc:
        raise RpcError(StatusCode.INTERNAL, f"could not parse the request message: {type(exc).__name__}") from exc


def _handler_failed(call: ServerCall, exc: Exception) -> None:
    log.exception("handler for %s raised", call.method, exc_info=exc)
    call.finish(StatusCode.UNKNOWN, f"Exception calling application: {type(exc).__name__}")
