"""The client side of one HTTP/2 connection: one stream per call."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import h2.events
import h2.exceptions
from h2.errors import ErrorCodes

from transport.http2 import DEFAULT_WINDOW_SIZE, H2Protocol, HeaderListTooLarge
from transport.metadata import Metadata, decode_metadata
from transport.status import RpcError, StatusCode, status_from_http, status_from_rst
from transport.wire import (
    DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH,
    MessageDecoder,
    encode_message,
    encode_timeout,
    percent_decode,
)

USER_AGENT = b"rpcviz-python/0.1"


class StreamNotProcessed(RpcError):
    """UNAVAILABLE for a call the server never saw (GOAWAY above its last stream
    id, REFUSED_STREAM, or a connection gone before the stream was sent): safe
    to retry transparently on another connection."""

    def __init__(self, details: str) -> None:
        super().__init__(StatusCode.UNAVAILABLE, details)


class NotHttp2(ConnectionError):
    """The server's first bytes are not HTTP/2's server preface, a SETTINGS frame (RFC 9113 §3.4)."""

    def __init__(self, received: bytes) -> None:
        super().__init__(describe_not_http2(received))
        self.received = received


def describe_not_http2(received: bytes) -> str:
    """What a server that is not HTTP/2 sent, for an error line."""
    if received.startswith(b"HTTP/"):
        status_line = received.split(b"\n", 1)[0].rstrip(b"\r")[:60].decode("ascii", "replace")
        return f"does not speak HTTP/2 (got {status_line!r})"
    if received[:1] in (b"\x15", b"\x16") and received[1:2] == b"\x03":
        return "answered with TLS: it wants https, and this client speaks cleartext HTTP/2 (h2c) only"
    return f"sent bytes that are not HTTP/2 ({received[:16]!r})"


def _can_start_settings(head: bytes) -> bool:
    """Whether ``head`` (the server's first bytes, up to 9) can be the header of a SETTINGS frame
    on stream 0 without ACK: the only frame a server may send first."""
    return (
        (len(head) < 4 or head[3] == 0x04)
        and (len(head) < 5 or not head[4] & 0x01)
        and (len(head) < 9 or head[5:9] == b"\x00\x00\x00\x00")
    )


class RawResponse:
    """What came back on the stream, metadata decoded only when asked for."""

    __slots__ = ("_headers", "_trailers", "message")

    def __init__(self, message: bytes, headers: list[tuple[bytes, bytes]], trailers: list[tuple[bytes, bytes]]) -> None:
        self.message = message
        self._headers = headers
        self._trailers = trailers

    @property
    def initial_metadata(self) -> Metadata:
        return decode_metadata(self._headers)

    @property
    def trailing_metadata(self) -> Metadata:
        return decode_metadata(self._trailers)


_END = object()


class _Stream:
    """One call's receive side. A unary call ends in ``future``; a streaming
    call hands each message to ``queue`` and ends with a terminal item."""

    __slots__ = ("decoder", "future", "grpc", "headers", "messages", "queue", "trailers")

    def __init__(self, future: asyncio.Future[RawResponse], max_length: int, streaming: bool = False) -> None:
        self.future = future
        self.headers: list[tuple[bytes, bytes]] | None = None
        self.trailers: list[tuple[bytes, bytes]] | None = None
        self.decoder = MessageDecoder(max_length)
        self.messages: list[bytes] = []
        #: The response is gRPC (200, application/grpc): only then is its body parsed.
        self.grpc = False
        self.queue: asyncio.Queue[object] | None = asyncio.Queue() if streaming else None

    @property
    def done(self) -> bool:
        return self.future.done()

    def deliver(self, messages: list[bytes]) -> None:
        if self.queue is None:
            self.messages += messages
        else:
            for message in messages:
                self.queue.put_nowait(message)

    def fail(self, exc: RpcError) -> None:
        if not self.future.done():
            self.future.set_exception(exc)
            if self.queue is not None:
                self.future.exception()  # retrieved: the queue carries it to the reader
                self.queue.put_nowait(exc)

    def succeed(self, raw: RawResponse) -> None:
        if not self.future.done():
            self.future.set_result(raw)
            if self.queue is not None:
                self.queue.put_nowait(_END)


class ResponseStream:
    """The messages of a server-streaming call; iteration raises RpcError on a
    non-OK status. ``cancel()`` resets the stream."""

    def __init__(
        self, conn: ClientConnection, stream_id: int, stream: _Stream, timer: asyncio.TimerHandle | None
    ) -> None:
        self._conn = conn
        self._stream_id = stream_id
        self._stream = stream
        self._timer = timer

    def __aiter__(self) -> ResponseStream:
        return self

    async def __anext__(self) -> bytes:
        queue = self._stream.queue
        assert queue is not None
        try:
            item = await queue.get()
        except asyncio.CancelledError:
            self.cancel()
            raise
        if isinstance(item, bytes):
            return item
        self._done()
        if isinstance(item, RpcError):
            raise item
        raise StopAsyncIteration

    def cancel(self) -> None:
        self._done()
        if self._stream_id in self._conn.streams:
            self._stream.fail(RpcError(StatusCode.CANCELLED, "cancelled by the client"))
            self._conn._cancel(self._stream_id)

    def _done(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class ClientConnection(H2Protocol):
    """Owns one client socket; ``ready`` resolves when the server's SETTINGS arrive."""

    client_side = True

    def __init__(
        self,
        authority: str,
        *,
        max_receive_message_length: int = DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH,
        window_size: int = DEFAULT_WINDOW_SIZE,
        on_closed: Callable[[ClientConnection], None] | None = None,
    ) -> None:
        super().__init__(window_size=window_size)
        self.ready: asyncio.Future[None] = self.loop.create_future()
        self.streams: dict[int, _Stream] = {}
        self.goaway = False
        self._closing = False
        #: The server's first bytes until they are known to begin a SETTINGS frame (then None).
        self._preface: bytes | None = b""
        self._max_length = max_receive_message_length
        self._on_closed = on_closed
        self._slot_waiters: list[asyncio.Future[None]] = []
        self._base_headers = [
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":authority", authority.encode("ascii")),
        ]
        self._common_headers = [
            (b"te", b"trailers"),
            (b"content-type", b"application/grpc"),
            (b"user-agent", USER_AGENT),
        ]
        self._handlers.update(
            {
                h2.events.ResponseReceived: self._on_headers,
                h2.events.TrailersReceived: self._on_trailers,
                h2.events.DataReceived: self._on_data,
                h2.events.StreamEnded: self._on_stream_ended,
                h2.events.StreamReset: self._on_stream_reset,
                h2.events.ConnectionTerminated: self._on_goaway,
                HeaderListTooLarge: self._on_header_list_too_large,
            }
        )

    @property
    def usable(self) -> bool:
        """True while new calls may start here (not once the transport began closing: what is
        written then is dropped, and connection_lost is about to fail the calls)."""
        transport = self.transport
        return not (self.goaway or self._closing or self.closed or (transport is not None and transport.is_closing()))

    def data_received(self, data: bytes) -> None:
        if self._preface is not None and not self._check_server_preface(data):
            return
        super().data_received(data)

    def _check_server_preface(self, data: bytes) -> bool:
        """Fail ``ready`` at once, naming what arrived, if the server does not start with SETTINGS."""
        assert self._preface is not None
        head = self._preface = (self._preface + data)[:64]
        if _can_start_settings(head[:9]):
            if len(head) >= 9:
                self._preface = None
            return True
        if not self.ready.done():
            self.ready.set_exception(NotHttp2(head))
            self.ready.exception()  # retrieved: the connect attempt may be gone
        self.close()
        return False

    # --- calls ------------------------------------------------------------

    async def unary_unary(
        self,
        path: bytes,
        payload: bytes,
        metadata: list[tuple[bytes, bytes]],
        deadline: float | None,
    ) -> RawResponse:
        """Run one unary call on a new stream; raise RpcError with its status."""
        stream_id, stream, timer = await self._open_stream(path, payload, metadata, deadline, streaming=False)
        try:
            return await stream.future
        except asyncio.CancelledError:
            if stream_id in self.streams:  # the caller gave up: tell the server
                self._cancel(stream_id)
            raise
        finally:
            if timer is not None:
                timer.cancel()

    async def unary_stream(
        self,
        path: bytes,
        payload: bytes,
        metadata: list[tuple[bytes, bytes]],
        deadline: float | None,
    ) -> ResponseStream:
        """Start a server-streaming call; iterate the result for its messages."""
        stream_id, stream, timer = await self._open_stream(path, payload, metadata, deadline, streaming=True)
        return ResponseStream(self, stream_id, stream, timer)

    async def _open_stream(
        self,
        path: bytes,
        payload: bytes,
        metadata: list[tuple[bytes, bytes]],
        deadline: float | None,
        streaming: bool,
    ) -> tuple[int, _Stream, asyncio.TimerHandle | None]:
        """Wait for a stream slot, send headers and the request message, and arm the
        deadline timer (which resets the stream when it fires)."""
        h2c = self.h2
        loop = self.loop
        while True:
            if not self.usable:
                raise StreamNotProcessed("connection is closing")
            limit = h2c.remote_settings.max_concurrent_streams
            # open ≤ len(streams): below the limit, leave the O(streams) count (and its
            # clean-up of closed streams) to the send itself, which does it anyway.
            if len(h2c.streams) < limit or h2c.open_outbound_streams < limit:
                break
            await self._wait_stream_slot(deadline)
        headers = self._base_headers + [(b":path", path)] + self._common_headers
        if deadline is not None:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise RpcError(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded before the call started")
            headers.append((b"grpc-timeout", encode_timeout(remaining)))
        if metadata:
            headers += metadata
        stream_id = h2c.get_next_available_stream_id()
        stream = _Stream(loop.create_future(), self._max_length, streaming)
        self.streams[stream_id] = stream
        data = encode_message(payload)
        if not h2c.send_request(stream_id, headers, data):
            h2c.send_headers(stream_id, headers)
            if not self.try_send_data(stream_id, data, True):
                loop.create_task(self._send_body(stream_id, data))
        self.schedule_flush()
        timer = loop.call_at(deadline, self._expire, stream_id) if deadline is not None else None
        return stream_id, stream, timer

    async def _send_body(self, stream_id: int, data: bytes) -> None:
        try:
            await self.send_data(stream_id, data, True)
        except Exception as exc:  # noqa: BLE001 - the stream's future reports the failure
            stream = self.streams.pop(stream_id, None)
            if stream is not None:
                stream.fail(RpcError(StatusCode.UNAVAILABLE, f"could not send the request: {exc}"))

    def _expire(self, stream_id: int) -> None:
        stream = self.streams.get(stream_id)
        if stream is not None and not stream.done:
            stream.fail(RpcError(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"))
            self._cancel(stream_id)

    def _cancel(self, stream_id: int) -> None:
        """Reset our stream (a deadline or the caller gave up)."""
        self.streams.pop(stream_id, None)
        try:
            self.h2.reset_stream(stream_id, ErrorCodes.CANCEL)
        except h2.exceptions.ProtocolError:
            pass
        self.wake_sender(stream_id, asyncio.CancelledError())
        self.schedule_flush()
        self._stream_closed()

    # --- events -----------------------------------------------------------

    def _on_remote_settings(self, event: h2.events.RemoteSettingsChanged) -> None:
        super()._on_remote_settings(event)
        if not self.ready.done():
            self.ready.set_result(None)

    def _on_headers(self, event: h2.events.ResponseReceived) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            stream.headers = event.headers
            status = content_type = b""
            for name, value in event.headers:
                if name == b":status":
                    status = value
                elif name == b"content-type":
                    content_type = value
            stream.grpc = status == b"200" and content_type.startswith(b"application/grpc")

    def _on_trailers(self, event: h2.events.TrailersReceived) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            stream.trailers = event.headers

    def _on_header_list_too_large(self, event: HeaderListTooLarge) -> None:
        """Response headers or trailers over our SETTINGS_MAX_HEADER_LIST_SIZE: that call fails, not the connection."""
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            stream.fail(
                RpcError(
                    StatusCode.RESOURCE_EXHAUSTED,
                    f"response header list is {event.size} bytes, over the client's limit of {event.limit}",
                )
            )
            self._cancel(event.stream_id)

    def _on_data(self, event: h2.events.DataReceived) -> None:
        stream_id = event.stream_id
        if event.flow_controlled_length:
            try:
                self.h2.acknowledge_received_data(event.flow_controlled_length, stream_id)
            except h2.exceptions.ProtocolError:
                pass
        stream = self.streams.get(stream_id)
        if stream is None or not stream.grpc:
            return  # a non-gRPC body is dropped; its HTTP status becomes the call's status
        try:
            stream.deliver(stream.decoder.feed(event.data))
        except RpcError as exc:
            stream.fail(exc)
            self._cancel(stream_id)

    def _on_stream_ended(self, event: h2.events.StreamEnded) -> None:
        stream = self.streams.pop(event.stream_id, None)
        if stream is None:
            return
        self._stream_closed()
        if not stream.done:
            _finish(stream)

    def _on_stream_reset(self, event: h2.events.StreamReset) -> None:
        stream = self.streams.pop(event.stream_id, None)
        self.wake_sender(event.stream_id, asyncio.CancelledError())
        if stream is None:
            return
        self._stream_closed()
        if stream.done:
            return
        if event.error_code == ErrorCodes.REFUSED_STREAM:
            stream.fail(StreamNotProcessed("stream refused by the server (REFUSED_STREAM)"))
        elif event.error_code == ErrorCodes.NO_ERROR and stream.trailers is not None:
            _finish(stream)
        else:
            code = status_from_rst(event.error_code)
            stream.fail(RpcError(code, f"stream reset by the server with {_rst_name(event.error_code)}"))

    def _on_goaway(self, event: h2.events.ConnectionTerminated) -> None:
        self.goaway = True
        last = event.last_stream_id if event.last_stream_id is not None else 0
        for stream_id in [s for s in self.streams if s > last]:
            stream = self.streams.pop(stream_id)
            stream.fail(StreamNotProcessed("the server sent GOAWAY before processing the call"))
        self._wake_slot_waiters()
        if self._on_closed is not None:
            self._on_closed(self)
        if not self.streams:
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        streams, self.streams = self.streams, {}
        reason = f"connection to {self.peer or 'server'} lost"
        for stream in streams.values():
            stream.fail(RpcError(StatusCode.UNAVAILABLE, reason))
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(reason))
            self.ready.exception()  # retrieved: a connect attempt cancelled in create_connection never awaits it
        self._wake_slot_waiters()
        if self._on_closed is not None and not self.goaway:
            self._on_closed(self)

    def close_when_idle(self) -> None:
        """Take no new calls; close once the running ones have finished."""
        self._closing = True
        if not self.streams:
            self.close()

    # --- stream slots (SETTINGS_MAX_CONCURRENT_STREAMS) ---------------------

    async def _wait_stream_slot(self, deadline: float | None) -> None:
        waiter: asyncio.Future[None] = self.loop.create_future()
        self._slot_waiters.append(waiter)
        timeout = None if deadline is None else deadline - self.loop.time()
        try:
            async with asyncio.timeout(timeout):
                await waiter
        except TimeoutError:
            raise RpcError(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded while waiting for a stream slot") from None
        finally:
            if waiter in self._slot_waiters:
                self._slot_waiters.remove(waiter)

    def _stream_closed(self) -> None:
        while self._slot_waiters:
            waiter = self._slot_waiters.pop(0)
            if not waiter.done():
                waiter.set_result(None)
                break
        if (self.goaway or self._closing) and not self.streams:
            self.loop.call_soon(self.close)

    def _wake_slot_waiters(self) -> None:
        waiters, self._slot_waiters = self._slot_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


def _finish(stream: _Stream) -> None:
    """Turn a finished stream into a response or an RpcError (status from trailers,
    Trailers-Only headers, or synthesized from HTTP)."""
    headers = stream.headers or []
    http_status = b""
    content_type = b""
    for name, value in headers:
        if name == b":status":
            http_status = value
        elif name == b"content-type":
            content_type = value
    if http_status != b"200":
        code = status_from_http(int(http_status)) if http_status.isdigit() else StatusCode.UNKNOWN
        stream.fail(
            RpcError(code, f"server answered HTTP {http_status.decode('ascii', 'replace') or '(none)'}, not gRPC")
        )
        return
    if not content_type.startswith(b"application/grpc"):
        stream.fail(
            RpcError(
                StatusCode.UNKNOWN,
                f"server answered content-type {content_type.decode('ascii', 'replace')!r}, not gRPC",
            )
        )
        return
    trailers = stream.trailers if stream.trailers is not None else headers
    grpc_status = None
    grpc_message = b""
    for name, value in trailers:
        if name == b"grpc-status":
            grpc_status = value
        elif name == b"grpc-message":
            grpc_message = value
    if grpc_status is None:
        stream.fail(RpcError(StatusCode.UNKNOWN, "server sent no grpc-status"))
        return
    try:
        code = StatusCode(int(grpc_status))
    except ValueError:
        code = StatusCode.UNKNOWN
    if code is not StatusCode.OK:
        stream.fail(RpcError(code, percent_decode(grpc_message), decode_metadata(trailers), decode_metadata(headers)))
    elif stream.decoder.pending:
        stream.fail(RpcError(StatusCode.INTERNAL, "response ended in the middle of a message"))
    elif stream.queue is None and len(stream.messages) != 1:
        stream.fail(
            RpcError(StatusCode.INTERNAL, f"unary call got {len(stream.messages)} response messages, expected 1")
        )
    else:
        message = stream.messages[0] if stream.queue is None else b""
        stream.succeed(RawResponse(message, headers, trailers if stream.trailers is not None else []))


def _rst_name(code: int) -> str:
    try:
        return ErrorCodes(code).name
    except ValueError:
        return f"error code {code}"
