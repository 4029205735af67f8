"""One HTTP/2 stream of one call: the only thing that touches the h2 connection on that call's behalf.

Both sides use it. The connection that owns the socket (:class:`.H2Protocol`)
feeds it what h2 reports for its stream id (headers, data, trailers, the end,
a reset); the call reads messages from it and writes through it:

- sending: :meth:`send_headers`, :meth:`send_message` (under flow control and
  the socket's backpressure), :meth:`send_trailers`, :meth:`end`, :meth:`reset`;
  and the unary fast paths :meth:`send_request` / :meth:`send_response`, which
  put a whole request or answer on the wire in one step when the windows allow
  (:mod:`.fast_path`), else return False and the caller takes the general path;
- receiving: :meth:`recv_message` (also ``async for``) yields whole messages,
  however the DATA frames split them.

Received bytes are acknowledged to the peer's stream window **when the consumer
takes the message** they belong to, so a stream never holds more than its
window plus one partial message (bounded by the receive limit) however slowly
its consumer reads. The connection window is acknowledged on arrival (as
grpc-go does), so one slow stream does not stall the others.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import h2.exceptions
from h2.errors import ErrorCodes

from transport.http2.fast_path import Block
from transport.status import RpcError
from transport.wire import PREFIX_SIZE, MessageDecoder, message_prefix

if TYPE_CHECKING:
    from transport.http2.protocol import H2Protocol

Headers = list[tuple[bytes, bytes]]


class StreamReset(Exception):
    """The stream ended abnormally: RST_STREAM (either side), or the connection ended under it."""

    def __init__(
        self, error_code: int | None, reason: str, *, status: RpcError | None = None, unprocessed: bool = False
    ) -> None:
        super().__init__(reason)
        #: The RST_STREAM code; None when the connection was lost or went away.
        self.error_code = error_code
        self.reason = reason
        #: The status the call should report, when the side that reset it knows it (a deadline, a bad message).
        self.status = status
        #: The server never processed the stream (REFUSED_STREAM, above a GOAWAY's last id): safe to retry.
        self.unprocessed = unprocessed


class Stream:
    """One call's HTTP/2 stream. Created by the connection, fed by it, used by the call."""

    __slots__ = (
        "_ack_due",
        "_decoder",
        "_max_length",
        "_messages",
        "_unacked",
        "_waiters",
        "conn",
        "discard_data",
        "error",
        "headers",
        "headers_sent",
        "local_ended",
        "remote_ended",
        "stream_id",
        "trailers",
    )

    def __init__(self, conn: H2Protocol, stream_id: int, max_message_length: int) -> None:
        self.conn = conn
        self.stream_id = stream_id
        #: The peer's first header block (request or response headers), and its trailers.
        self.headers: Headers | None = None
        self.trailers: Headers | None = None
        self.headers_sent = False
        #: We sent END_STREAM / the peer did.
        self.local_ended = False
        self.remote_ended = False
        #: Set when the stream was reset or its connection lost; reading raises it.
        self.error: StreamReset | None = None
        #: The peer's body is not gRPC (a plain HTTP answer): acknowledge it, decode nothing.
        self.discard_data = False
        #: Made on the first DATA (a unary call's whole request or answer never needs one: ``on_unary_response``).
        self._decoder: MessageDecoder | None = None
        self._max_length = max_message_length
        self._messages: deque[bytes] = deque()
        #: Flow-controlled bytes received on this stream and not yet acknowledged.
        self._unacked = 0
        #: Of those, the bytes of messages already taken: acknowledged once they reach the connection's
        #: ``ack_batch`` (h2 sends WINDOW_UPDATE only after half the window anyway).
        self._ack_due = 0
        #: Whoever waits for something to arrive (a reader, someone waiting for the headers).
        self._waiters: list[asyncio.Future[None]] = []

    def __repr__(self) -> str:
        return f"<Stream {self.stream_id} {'ended' if self.remote_ended else 'open'}>"

    # --- fed by the connection ------------------------------------------------

    def on_data(self, data: bytes | memoryview, flow_controlled_length: int) -> None:
        """A DATA frame: decode its messages; RpcError if they break the receive limit or encoding.

        ``data`` is bytes, or a view of received bytes that nothing changes again (the connection's large
        frames: see ``HELD_PAYLOAD``), which the decoder may hold without a copy.
        """
        if flow_controlled_length:
            self.conn.acknowledge_connection_data(flow_controlled_length)
            self._unacked += flow_controlled_length
        if self.discard_data:
            self._ack(self._unacked)
            return
        decoder = self._decoder
        if decoder is None:
            decoder = self._decoder = MessageDecoder(self._max_length)
        messages = decoder.feed(data, stable=True)
        if messages:
            self._messages.extend(messages)
            if self._waiters:
                self._wake()
        elif not self._messages and self._unacked:
            # Only part of a message is held (bounded by the receive limit): let the
            # peer send the rest, or a message larger than the window never arrives.
            self._ack(self._unacked)

    def on_headers(self, headers: Headers) -> None:
        """The peer's first header block."""
        self.headers = headers
        if self._waiters:
            self._wake()

    def on_unary_response(self, headers: Headers, message: bytes, trailers: Headers) -> None:
        """A unary call's whole answer at once: its headers, its one message (already decoded), its
        trailers and END_STREAM (:class:`.UnaryResponse`); the connection gave its window back."""
        self.headers, self.trailers = headers, trailers
        self._messages.append(message)
        self.remote_ended = True
        self._wake()

    def on_end(self) -> None:
        """END_STREAM from the peer."""
        self.remote_ended = True
        self._wake()

    def on_reset(self, error_code: int | None, reason: str, *, unprocessed: bool = False) -> None:
        """RST_STREAM from the peer (``error_code``), or the connection is gone (None)."""
        if self.error is None:
            self.error = StreamReset(error_code, reason, unprocessed=unprocessed)
        self.conn.wake_sender(self.stream_id, self.error)
        self._wake()

    def _wake(self) -> None:
        waiters = self._waiters
        if waiters:
            self._waiters = []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    # --- receiving --------------------------------------------------------

    @property
    def pending(self) -> int:
        """Bytes of a message begun and not finished."""
        return self._decoder.pending if self._decoder is not None else 0

    @property
    def queued(self) -> int:
        """Whole messages received and not yet taken."""
        return len(self._messages)

    def take_message(self) -> bytes | None:
        """The next whole message if one has arrived, else None (never waits)."""
        if not self._messages:
            return None
        message = self._messages.popleft()
        if self._unacked and not self.remote_ended:
            # This message's share of the window is due back; all of it once nothing is queued.
            held = self._unacked - self._ack_due
            self._ack_due += held if not self._messages else min(held, len(message) + PREFIX_SIZE)
            if self._ack_due >= self.conn.ack_batch:
                self._ack(self._ack_due)
        return message

    def take_only_message(self) -> bytes | None:
        """The one whole message received, taken, when exactly one is and the peer ended the stream (a unary
        answer; nothing is due back to a window the peer will not use again); else None, nothing taken."""
        messages = self._messages
        if len(messages) != 1 or not self.remote_ended:
            return None
        return messages.popleft()

    async def recv_message(self) -> bytes | None:
        """The next message; None once the peer ended the stream; StreamReset if it was reset."""
        while True:
            if self._messages:
                return self.take_message()
            if self.error is not None:
                raise self.error
            if self.remote_ended:
                return None
            waiter = self.conn.loop.create_future()  # (wait_for_data, without a coroutine per message)
            self._waiters.append(waiter)
            await waiter

    async def wait_for_data(self) -> None:
        """Wait until headers, a message, the end or a reset arrive."""
        await self.arrival()

    def arrival(self) -> asyncio.Future[None]:
        """A future done when headers, a message, the end or a reset arrive (:meth:`wait_for_data` without
        its coroutine, for the hot paths: ``await stream.arrival()``)."""
        waiter = self.conn.loop.create_future()
        self._waiters.append(waiter)
        return waiter

    @property
    def closed(self) -> bool:
        """The peer ended the stream, or it was reset."""
        return self.remote_ended or self.error is not None

    async def wait_closed(self) -> None:
        """Wait for the end of the stream (END_STREAM from the peer, or a reset)."""
        while not (self.remote_ended or self.error is not None):
            waiter = self.conn.loop.create_future()  # (wait_for_data, without its coroutine)
            self._waiters.append(waiter)
            await waiter

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while (message := await self.recv_message()) is not None:
            yield message

    def _ack(self, n: int) -> None:
        self._unacked -= n
        self._ack_due = max(0, self._ack_due - n)
        self.conn.h2.acknowledge_stream_data(self.stream_id, n)
        self.conn.schedule_flush()

    # --- sending ----------------------------------------------------------

    def send_headers(self, headers: Block, *, end_stream: bool = False) -> None:
        self.headers_sent = True
        self.conn.h2.send_headers(self.stream_id, headers, end_stream=end_stream)
        if end_stream:
            self.local_ended = True
        self.conn.schedule_flush()

    async def send_message(self, payload: bytes) -> None:
        """Send one message, waiting for the windows and the socket as needed; StreamReset if the stream ends.

        The 5-byte prefix goes ahead of ``payload`` into the first frame: the body is never copied
        into a framed message (for 1 MiB, a fresh 1 MiB allocation and copy per message). The callers on
        the per-message path try :meth:`try_send_message` first, and come here when it could not send.
        """
        await self.send_data(payload, head=message_prefix(len(payload)))

    def try_send_message(self, payload: bytes) -> bool:
        """Send one message now if the windows and the socket allow it in one frame, else False, with
        nothing sent (then :meth:`send_message` waits); StreamReset if the stream ended.

        A streamed message's common case, without a coroutine per layer: the callers try this first.
        """
        if self.error is not None:
            raise self.error
        conn = self.conn
        try:
            if not conn.try_send_data(self.stream_id, payload, False, message_prefix(len(payload))):
                return False
        except h2.exceptions.ProtocolError as exc:  # the stream closed meanwhile
            raise self.error or StreamReset(None, f"stream closed: {exc}") from None
        conn.schedule_flush()
        return True

    async def send_data(self, data: bytes, *, end_stream: bool = False, head: bytes = b"") -> None:
        """Send raw DATA bytes (``head`` then ``data``) under flow control."""
        conn = self.conn
        if self.error is not None:
            raise self.error
        try:
            if not conn.try_send_data(self.stream_id, data, end_stream, head):
                await conn.send_data(self.stream_id, data, end_stream, head)
        except h2.exceptions.ProtocolError as exc:  # the stream closed meanwhile
            raise self.error or StreamReset(None, f"stream closed: {exc}") from None
        if end_stream:
            self.local_ended = True
        conn.schedule_flush()

    def send_trailers(self, trailers: Headers) -> None:
        """The final header block, ending our side."""
        self.send_headers(trailers, end_stream=True)

    def end(self) -> None:
        """End our side without more data (the client's half-close)."""
        if not self.local_ended:
            self.local_ended = True
            self.conn.h2.end_stream(self.stream_id)
            self.conn.schedule_flush()

    def reset(self, code: int = ErrorCodes.CANCEL, status: RpcError | None = None) -> None:
        """RST_STREAM ``code``, if the stream is still open; wakes whoever waits on it.

        ``status`` is what the call should report (e.g. DEADLINE_EXCEEDED).
        """
        conn = self.conn
        try:
            conn.h2.reset_stream(self.stream_id, code)
        except h2.exceptions.ProtocolError:
            pass  # already closed
        self.local_ended = True
        if self.error is None:
            self.error = StreamReset(code, "stream reset", status=status)
        conn.wake_sender(self.stream_id, self.error)
        self._wake()
        conn.schedule_flush()

    # --- the unary fast paths (fast_path.py) ---------------------------------

    def send_request(
        self, headers: Block, data: bytes, identity: tuple[bytes | None, bytes | None] | None = None
    ) -> bool:
        """Open the stream with request ``headers`` and end it with ``data`` (a framed message) in one step
        (``identity``: their ``:authority`` and ``:method``, when known: :func:`.fast_path.send_request`)."""
        if self.conn._write_paused or not self.conn.h2.send_request(self.stream_id, headers, data, identity):
            return False
        self.headers_sent = self.local_ended = True
        self.conn.schedule_flush()
        return True

    def send_response(self, headers: Block, data: bytes, trailers: Block) -> bool:
        """Answer an ended request with ``headers``, ``data`` (a framed message) and ``trailers`` in one step."""
        if (
            self.headers_sent
            or self.conn._write_paused
            or not self.conn.h2.send_response(self.stream_id, headers, data, trailers)
        ):
            return False
        self.headers_sent = self.local_ended = True
        self.conn.schedule_flush()
        return True
