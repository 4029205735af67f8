"""The client side of one HTTP/2 connection: it opens one :class:`~transport.http2.stream.Stream` per call.

It owns the socket and feeds each stream what h2 reports for it; the calls
(:mod:`transport.client.call`) read and write through their streams. On GOAWAY
it takes no new streams and hands the ones above the last stream id back as
not processed (the call retries them elsewhere); when the connection is lost,
every stream it still has ends with that reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import h2.events
from h2.errors import ErrorCodes

from transport.http2 import DEFAULT_WINDOW_SIZE, H2Protocol, HeaderListTooLarge, StreamData, UnaryResponse
from transport.http2.fast_path import Block
from transport.http2.stream import Stream
from transport.status import RpcError, StatusCode
from transport.wire import DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH, encode_timeout, one_message

USER_AGENT = b"rpcviz-python/0.1"
#: Response headers a connection remembers its verdict on (cleared when full; the memo holds 256 blocks).
VERDICTS_HELD = 64

Headers = list[tuple[bytes, bytes]]
#: Method paths whose plain request block a connection keeps (cleared when full).
PLAIN_REQUESTS_HELD = 64


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
        self.streams: dict[int, Stream] = {}
        self.goaway = False
        #: The GOAWAY's debug data (e.g. b"max_age" from a server's MAX_CONNECTION_AGE), once received.
        self.goaway_debug = b""
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
        #: The header block of a call with no timeout and no metadata, by method path (:meth:`request_headers`).
        self._plain_requests: dict[bytes, Block] = {}
        #: Every request's (:authority, :method): its headers begin with these (metadata has no pseudo-headers).
        self._identity: tuple[bytes | None, bytes | None] = (authority.encode("ascii"), b"POST")
        self._common_headers = [
            (b"te", b"trailers"),
            (b"content-type", b"application/grpc"),
            (b"user-agent", USER_AGENT),
        ]
        #: Response headers judged before (gRPC or not), by the identity of the header memo's record of them.
        self._verdicts: dict[int, tuple[object, bool]] = {}
        self.h2.stream_data = self.h2.unary_exchanges = True
        self._handlers.update(
            {
                UnaryResponse: self._on_unary_response,
                h2.events.ResponseReceived: self._on_headers,
                h2.events.TrailersReceived: self._on_trailers,
                h2.events.DataReceived: self._on_data,
                StreamData: self._on_data,  # DATA mid-stream (h2.stream_data)
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

    def data_received(self, data: bytes | bytearray | memoryview) -> None:
        if self._preface is not None and not self._check_server_preface(data):
            return
        super().data_received(data)

    def _check_server_preface(self, data: bytes | bytearray | memoryview) -> bool:
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

    @property
    def has_stream_slot(self) -> bool:
        """A new stream stays within the server's SETTINGS_MAX_CONCURRENT_STREAMS."""
        h2c = self.h2
        limit = h2c.remote_settings.max_streams
        # open ≤ streams in h2's table + unary exchanges held as records: below the limit, leave the
        # O(streams) count (and its clean-up of closed streams) to the send itself, which does it anyway.
        return len(h2c._streams) + len(h2c._unanswered) < limit or h2c.open_outbound_streams < limit

    # --- streams ----------------------------------------------------------

    def request_headers(self, path: bytes, metadata: Headers, deadline: float | None) -> Block:
        """A request's header block: pseudo-headers, gRPC's own, the timeout, then custom metadata.

        Without the last two it is the same for every call of ``path``: a constant block (a tuple, kept per
        path), which the HPACK encoder knows by identity."""
        if deadline is None and not metadata:
            block = self._plain_requests.get(path)
            if block is None:
                if len(self._plain_requests) >= PLAIN_REQUESTS_HELD:
                    self._plain_requests.clear()
                block = self._plain_requests[path] = (*self._base_headers, (b":path", path), *self._common_headers)
            return block
        headers = self._base_headers + [(b":path", path)] + self._common_headers
        if deadline is not None:
            remaining = deadline - self.loop.time()
            if remaining <= 0:
                raise RpcError(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded before the call started")
            headers.append((b"grpc-timeout", encode_timeout(remaining)))
        if metadata:
            headers += metadata
        return headers

    def open_stream(self, headers: Block, request: bytes | None = None) -> Stream:
        """A new stream with request ``headers`` (as :meth:`request_headers` makes them); with ``request`` (a
        framed message) the request is sent whole and ended in the same step when the windows allow (the unary
        fast path), else the
        caller sends what the stream did not (check ``stream.local_ended``).

        Raises StreamNotProcessed when this connection takes no new stream.
        """
        if not self.usable:
            raise StreamNotProcessed("connection is closing")
        h2c = self.h2
        stream_id = h2c.get_next_available_stream_id()
        stream = Stream(self, stream_id, self._max_length)
        self.streams[stream_id] = stream
        if request is None or not stream.send_request(headers, request, self._identity):
            stream.send_headers(headers)
        return stream

    def forget(self, stream: Stream) -> None:
        """The call is done with ``stream``: free its slot (reset it first if either side is still open)."""
        if self.streams.pop(stream.stream_id, None) is not None or not stream.local_ended:
            if stream.error is None and not (stream.remote_ended and stream.local_ended):
                # Still open on one side: the server answered before we finished sending (NO_ERROR),
                # or the call ended before the server did (CANCEL). Either way h2 frees the stream.
                stream.reset(ErrorCodes.NO_ERROR if stream.remote_ended else ErrorCodes.CANCEL)
            self._stream_closed()

    # --- events -----------------------------------------------------------

    def _on_remote_settings(self, event: h2.events.RemoteSettingsChanged) -> None:
        super()._on_remote_settings(event)
        if not self.ready.done():
            self.ready.set_result(None)

    def _on_unary_response(self, event: UnaryResponse) -> None:
        """A whole unary response (:mod:`.unary_receive`): the stream ends with its headers, its message
        and its trailers in one step; anything else (a stream we forgot, an answer that is not gRPC, a
        message the decoder must judge) takes h2's events one by one."""
        stream_id = event.stream_id
        stream = self.streams.get(stream_id)
        if stream is not None and self._grpc_response(event):
            message = one_message(event.data, self._max_length)
            if message is not None:
                del self.streams[stream_id]
                self.acknowledge_connection_data(event.flow_controlled_length)
                stream.on_unary_response(event.headers, message, event.trailers)
                self._stream_closed()
                return
        handlers = self._handlers
        for h2_event in event.h2_events():
            handlers[type(h2_event)](h2_event)

    def _grpc_response(self, event: h2.events.ResponseReceived | UnaryResponse) -> bool:
        """HTTP 200 with a gRPC content type: only such a response's body is parsed (any other's HTTP status
        becomes the call's). Headers the header memo took are judged once (the same record, the same headers)."""
        taken = getattr(event, "taken", None)
        if taken is not None:
            known = self._verdicts.get(id(taken))
            if known is not None and known[0] is taken:
                return known[1]
        status = content_type = b""
        for name, value in event.headers:
            if name == b":status":
                status = value
            elif name == b"content-type":
                content_type = value
        verdict = status == b"200" and content_type.startswith(b"application/grpc")
        if taken is not None:
            if len(self._verdicts) >= VERDICTS_HELD:
                self._verdicts.clear()
            self._verdicts[id(taken)] = (taken, verdict)
        return verdict

    def _on_headers(self, event: h2.events.ResponseReceived) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            stream.discard_data = not self._grpc_response(event)
            stream.on_headers(event.headers)

    def _on_trailers(self, event: h2.events.TrailersReceived) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            stream.trailers = event.headers

    def _on_data(self, event: h2.events.DataReceived | StreamData) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is None:
            if event.flow_controlled_length:
                self.h2.acknowledge_connection_data(event.flow_controlled_length)
            return
        try:
            stream.on_data(event.data, event.flow_controlled_length)
        except RpcError as exc:  # a message over the receive limit, or compressed
            stream.reset(ErrorCodes.CANCEL, exc)
            self.forget(stream)

    def _on_stream_ended(self, event: h2.events.StreamEnded) -> None:
        stream = self.streams.pop(event.stream_id, None)
        if stream is not None:
            stream.on_end()
            self._stream_closed()

    def _on_stream_reset(self, event: h2.events.StreamReset) -> None:
        stream = self.streams.pop(event.stream_id, None)
        if stream is None:
            self.wake_sender(event.stream_id)
            return
        code = event.error_code
        stream.on_reset(
            code, f"stream reset by the server with {_rst_name(code)}", unprocessed=code == ErrorCodes.REFUSED_STREAM
        )
        self._stream_closed()

    def _on_header_list_too_large(self, event: HeaderListTooLarge) -> None:
        """Response headers or trailers over our SETTINGS_MAX_HEADER_LIST_SIZE: that call fails, not the connection."""
        stream = self.streams.get(event.stream_id)
        if stream is not None:
            status = RpcError(
                StatusCode.RESOURCE_EXHAUSTED,
                f"response header list is {event.size} bytes, over the client's limit of {event.limit}",
            )
            stream.reset(ErrorCodes.CANCEL, status)
            self.forget(stream)

    def _on_goaway(self, event: h2.events.ConnectionTerminated) -> None:
        self.goaway = True
        self.goaway_debug = event.additional_data or b""
        last = event.last_stream_id if event.last_stream_id is not None else 0
        for stream_id in [s for s in self.streams if s > last]:
            self.streams.pop(stream_id).on_reset(
                None, "the server sent GOAWAY before processing the call", unprocessed=True
            )
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
            stream.on_reset(None, reason)
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(reason))
            self.ready.exception()  # retrieved: the subchannel reports the loss
        self._wake_slot_waiters()
        if self._on_closed is not None and not self.goaway:
            self._on_closed(self)

    def close_when_idle(self) -> None:
        """Take no new calls; close once the running ones have finished."""
        self._closing = True
        if not self.streams:
            self.close()

    # --- stream slots (SETTINGS_MAX_CONCURRENT_STREAMS) ---------------------

    async def wait_stream_slot(self, deadline: float | None) -> None:
        """Wait until a stream may be opened (or the connection is no longer usable)."""
        while self.usable and not self.has_stream_slot:
            waiter: asyncio.Future[None] = self.loop.create_future()
            self._slot_waiters.append(waiter)
            timeout = None if deadline is None else deadline - self.loop.time()
            try:
                async with asyncio.timeout(timeout):
                    await waiter
            except TimeoutError:
                raise RpcError(
                    StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded while waiting for a stream slot"
                ) from None
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


def _rst_name(code: int) -> str:
    try:
        return ErrorCodes(code).name
    except ValueError:
        return f"error code {code}"
