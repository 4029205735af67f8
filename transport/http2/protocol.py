"""The one owner of each HTTP/2 connection: bytes in, h2 events out, one write per read.

:class:`H2Protocol` is the asyncio protocol shared by the server and client
connections. It owns the ``GrpcH2Connection`` and the socket, reads into one
preallocated buffer, dispatches h2 events through a table of handlers, writes
everything answered while handling a read in one ``transport.write`` (and what
is sent outside a read at once), and implements flow-controlled sending (waking
senders on WINDOW_UPDATE and SETTINGS, honouring ``pause_writing``/``resume_writing``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, cast

import h2.config
import h2.events
import h2.exceptions
import h2.stream
from h2.connection import ConnectionInputs, ConnectionState, H2ConnectionStateMachine
from h2.errors import ErrorCodes
from h2.events import Event
from h2.settings import SettingCodes
from h2.stream import H2Stream, StreamInputs, StreamState

from transport.address import Address
from transport.http2.compact_settings import CompactSettings
from transport.http2.connection import HELD_PAYLOAD, GrpcH2Connection
from transport.http2.fast_path import DATA, END_STREAM, FRAME_HEADER
from transport.http2.frame_buffer import LargeFrame
from transport.http2.read_buffer import shared_read_buffer

log = logging.getLogger(__name__)

#: How much of the stream window a receiver grants (gRPC implementations use
#: large windows; 64 KiB is HTTP/2's default and the minimum we accept).
DEFAULT_WINDOW_SIZE = 1024 * 1024
DEFAULT_MAX_HEADER_LIST_SIZE = 16 * 1024
#: The largest frame we accept (SETTINGS_MAX_FRAME_SIZE; HTTP/2's default is 16 KiB, grpcio's 4 MiB). A large
#: message then arrives in one frame per MiB rather than 64 (or 4 at 256 KiB), each of which costs Python work and
#: reads and writes on both sides (bench/ANALYSIS.md); it also bounds the one partial frame a connection buffers.
DEFAULT_MAX_FRAME_SIZE = 1024 * 1024


class ConnectionClosed(Exception):
    """The connection ended while a stream still wanted it."""


#: Output queued while handling one read is written once it reaches this size.
FLUSH_THRESHOLD = 64 * 1024


class H2Protocol(asyncio.BufferedProtocol):
    """Base of the server and client connection protocols.

    It reads into a preallocated buffer (``BufferedProtocol``), the one every
    connection on its event loop shares (:mod:`.read_buffer`): a plain ``Protocol``
    makes asyncio allocate a fresh 256 KiB ``bytes`` for every read, which costs
    more than a small gRPC call's whole read (see bench/).
    """

    client_side = False
    #: Stop reading while the peer does not read what we write (see :meth:`_dispatch`).
    pause_reading_on_backpressure = False

    def __init__(
        self,
        *,
        window_size: int = DEFAULT_WINDOW_SIZE,
        max_concurrent_streams: int | None = None,
        max_header_list_size: int = DEFAULT_MAX_HEADER_LIST_SIZE,
    ) -> None:
        config = h2.config.H2Configuration(
            client_side=self.client_side,
            header_encoding=None,
            # Our own headers are built correctly once; validating them on
            # every call costs time. What peers send is always validated.
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
            validate_inbound_headers=True,
            normalize_inbound_headers=True,
        )
        self.h2 = GrpcH2Connection(config=config)
        # CompactSettings: h2's own Settings hold ≈ 5 KB of deques each (see compact_settings).
        self.h2.remote_settings = CompactSettings(client=not self.client_side)
        self.h2.local_settings = CompactSettings(
            client=self.client_side,
            initial_values={
                SettingCodes.INITIAL_WINDOW_SIZE: window_size,
                SettingCodes.MAX_HEADER_LIST_SIZE: max_header_list_size,
                SettingCodes.ENABLE_PUSH: 0,
                SettingCodes.MAX_FRAME_SIZE: DEFAULT_MAX_FRAME_SIZE,
                **(
                    {SettingCodes.MAX_CONCURRENT_STREAMS: max_concurrent_streams}
                    if max_concurrent_streams is not None
                    else {}
                ),
            },
        )
        self.h2.decoder.max_header_list_size = max_header_list_size
        # h2 took its inbound frame limit from the settings it made; ours apply from the start (as sent in
        # the preface), and only changes would wait for the peer's ACK.
        self.h2.max_inbound_frame_size = self.h2.local_settings.max_frame_size
        self._connection_window = max(window_size, 65535)
        #: A stream gives back the window of the messages taken once they add up to this (:class:`.Stream`).
        self.ack_batch = max(1, window_size // 16)
        #: Connection window received during the read being dispatched, given back once at its end.
        self._connection_acks = 0
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        #: True while data_received dispatches events: it flushes once at its end.
        self._receiving = False
        #: We wrote outside a read in this loop turn; more output waits for the turn's end (:meth:`schedule_flush`).
        self._wrote_this_turn = False
        self._flush_at_turn_end = False
        self._write_paused = False
        self._reading_paused = False
        #: Events of a read left to handle once the peer reads again (backpressure).
        self._deferred_events: list[Event] = []
        #: Senders waiting for the socket to drain (resume_writing), one future each.
        self._writable_waiters: list[asyncio.Future[None]] = []
        # Senders blocked on flow control, by stream id (0 = any).
        self._window_waiters: dict[int, asyncio.Future[None]] = {}
        self.closed = False
        #: We half-closed the socket (write_eof): nothing more is written.
        self.write_closed = False
        self.peer: str = ""
        self.local_address: Address | None = None
        self._read_buffer = shared_read_buffer(self.loop)
        #: A large frame being read straight into a buffer of its own, and the part of it still to fill.
        self._large_frame: LargeFrame | None = None
        self._frame_rest: memoryview | None = None
        self._handlers: dict[type[Event], Callable[[Any], None]] = {
            h2.events.WindowUpdated: self._on_window_updated,
            h2.events.RemoteSettingsChanged: self._on_remote_settings,
        }

    # --- asyncio.BufferedProtocol -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = str(Address(peer[0], peer[1]))
        local = transport.get_extra_info("sockname")
        if local:
            self.local_address = Address(local[0], local[1])
        self.h2.initiate_connection()
        extra = self._connection_window - 65535
        if extra > 0:
            self.h2.increment_flow_control_window(extra)
        self.flush()

    def get_buffer(self, sizehint: int) -> memoryview:
        rest = self._frame_rest
        return self._read_buffer if rest is None else rest

    def buffer_updated(self, nbytes: int) -> None:
        rest = self._frame_rest
        if rest is None:
            with self._read_buffer[:nbytes] as data:
                self.data_received(data)
        elif nbytes < len(rest):
            self._frame_rest = rest[nbytes:]  # more of the large frame to come
            return
        else:
            frame = self._large_frame
            assert frame is not None
            self._large_frame = self._frame_rest = None
            self.data_received(frame)  # (the frame buffer adopts it: see LargeFrame)
        if not self.closed:
            self._read_large_frame()

    def _read_large_frame(self) -> None:
        """If the read left the beginning of a large DATA frame, read the rest of it into its own buffer.

        The default read buffer is 64 KiB; a 1 MiB frame would come in sixteen reads, each copied into the
        frame buffer, which regrows (and copies) as it does. Read into a buffer of the frame's size, its
        bytes are copied once, by the kernel, and its payload goes on as a view (``HELD_PAYLOAD``).
        """
        partial = self.h2.incoming_buffer.take_partial_frame(HELD_PAYLOAD)
        if partial is not None:
            frame, filled = partial
            self._large_frame, self._frame_rest = frame, memoryview(frame)[filled:]

    def data_received(self, data: bytes | bytearray | memoryview) -> None:
        """Bytes from the peer: feed h2 and dispatch its events.

        ``data`` may be a view of the loop's shared read buffer (:mod:`.read_buffer`), valid only during
        this call: h2's frame buffer copies it in first, and nothing may keep it. (A :class:`.LargeFrame`,
        read into a buffer of its own, is adopted instead.)
        """
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self.on_protocol_error(exc)
            return
        if self._deferred_events:  # a read that was under way when reading paused
            self._deferred_events += events
            return
        self._dispatch(events)

    def _dispatch(self, events: list[Event]) -> None:
        """Handle ``events`` in order; whatever the handlers send is written once, at the end.

        With ``pause_reading_on_backpressure`` (the server), dispatching stops as soon
        as the socket's write buffer is over its high-water mark: the rest of the
        events wait, and reading is paused, until the peer has read what we wrote.
        A peer that sends requests but does not read the answers then holds at most
        one read of ours, not every answer it asked for.
        """
        self._receiving = True
        handlers = self._handlers
        defer = self.pause_reading_on_backpressure
        for index, event in enumerate(events):
            handler = handlers.get(type(event))
            if handler is not None:
                try:
                    handler(event)
                except h2.exceptions.ProtocolError as exc:
                    # One stream's answer met a stream the peer already closed (e.g.
                    # RST_STREAM in the same read): drop that answer, keep the connection.
                    log.debug("%s: event %s on a closed stream: %s", self.peer, type(event).__name__, exc)
                except Exception as exc:  # noqa: BLE001 - one stream's failure must not end the connection
                    self._event_failed(event, exc)
            if defer and self._write_paused and index + 1 < len(events):
                self._deferred_events = events[index + 1 :]
                break
        self._receiving = False
        if self._connection_acks:
            acks, self._connection_acks = self._connection_acks, 0
            self.h2.acknowledge_connection_data(acks)
        self.flush()

    def acknowledge_connection_data(self, size: int) -> None:
        """Give ``size`` received bytes back to the connection window: once per read for the whole read
        (h2 sends WINDOW_UPDATE only after half the window anyway), at once outside one."""
        if self._receiving:
            self._connection_acks += size
        else:
            self.h2.acknowledge_connection_data(size)

    def _event_failed(self, event: Event, exc: Exception) -> None:
        """A handler raised (a bug of ours): fail that stream only, never the connection."""
        stream_id = getattr(event, "stream_id", 0)
        log.error("%s: handling %s on stream %s failed: %r", self.peer, type(event).__name__, stream_id, exc)
        if stream_id:
            self.stream_failed(stream_id, f"internal error handling {type(event).__name__}: {type(exc).__name__}")

    def stream_failed(self, stream_id: int, reason: str) -> None:
        """End ``stream_id`` after an internal error (RST_STREAM INTERNAL_ERROR); subclasses also fail its call."""
        with contextlib.suppress(Exception):
            self.h2.reset_stream(stream_id, ErrorCodes.INTERNAL_ERROR)

    @property
    def write_paused(self) -> bool:
        """The socket's write buffer is over its high-water mark: the peer is not reading."""
        return self._write_paused

    def pause_writing(self) -> None:
        self._write_paused = True
        if self.pause_reading_on_backpressure and self.transport is not None and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        waiters, self._writable_waiters = self._writable_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        if self._deferred_events and not self.closed:
            events, self._deferred_events = self._deferred_events, []
            self._dispatch(events)
        if self._reading_paused and not self._write_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._large_frame = self._frame_rest = None
        self._deferred_events = []
        for waiter in self._window_waiters.values():
            if not waiter.done():
                waiter.set_exception(ConnectionClosed("connection closed"))
        self._window_waiters.clear()
        waiters, self._writable_waiters = self._writable_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(ConnectionClosed("connection closed"))

    # --- writing ----------------------------------------------------------

    def flush(self) -> None:
        """Write whatever h2 has queued, in one ``transport.write``."""
        data = self.h2.data_to_send()
        transport = self.transport
        if data and transport is not None and not self.closed and not self.write_closed and not transport.is_closing():
            transport.write(data)

    def schedule_flush(self) -> None:
        """Write what is queued: the first write of a loop turn at once, the rest at the turn's end.

        Writing at once (rather than batching into a later loop turn) lets the peer
        start on a response while we produce the next: on two cores that overlap
        doubles throughput and cuts latency (see bench/). But many senders woken in
        one turn (the calls one read answered, a handler streaming messages) would
        each make a ``send()``: after the turn's first write, what they queue goes
        out in one write when the turn ends. Within a read everything is written
        once at its end (:meth:`_dispatch`); output is written as soon as it reaches
        ``FLUSH_THRESHOLD``, so that the socket's backpressure (``pause_writing``) is
        seen before answers pile up.
        """
        if len(self.h2._data_to_send) >= FLUSH_THRESHOLD:
            self.flush()
        elif self._receiving:
            return
        elif self._wrote_this_turn:
            self._flush_at_turn_end = True
        elif self.h2._data_to_send:  # (nothing queued: no write, and the turn's first write is still to come)
            self.flush()
            self._wrote_this_turn = True
            self.loop.call_soon(self._end_turn)

    def _end_turn(self) -> None:
        self._wrote_this_turn = False
        if self._flush_at_turn_end:
            self._flush_at_turn_end = False
            self.flush()

    def try_send_data(self, stream_id: int, data: bytes | memoryview, end_stream: bool, head: bytes = b"") -> bool:
        """Send ``head`` + ``data`` now if the windows allow it in one frame and the socket is not backed up;
        the fast path."""
        h2c = self.h2
        size = len(head) + len(data)
        if self._write_paused or size > h2c.max_outbound_frame_size:
            return False
        stream = h2c._get_stream_by_id(stream_id)  # raises as h2's send_data does for a closed stream
        if size > min(stream.outbound_flow_control_window, h2c.outbound_flow_control_window):
            return False
        self._send_frame(stream, head, data, end_stream)
        return True

    def _send_frame(self, stream: H2Stream, head: bytes, body: bytes | memoryview, end: bool) -> None:
        """One DATA frame: into h2's buffer (:func:`send_data_frame`); or, for a body of ``FLUSH_THRESHOLD`` or
        more (peers such as grpcio allow frames of up to 4 MiB), straight to the socket after what h2 holds, so
        that the body is not copied into h2's buffer and out of it again (the socket takes it from the view)."""
        transport = self.transport
        if (
            len(body) < FLUSH_THRESHOLD
            or transport is None
            or self.closed
            or self.write_closed
            or transport.is_closing()
        ):
            send_data_frame(self.h2, stream, head, body, end)
            return
        header = data_frame_header(self.h2, stream, len(head) + len(body), end)
        self.flush()
        transport.write(header + head)
        transport.write(body)

    async def send_data(self, stream_id: int, data: bytes | memoryview, end_stream: bool, head: bytes = b"") -> None:
        """Send ``head`` + ``data`` in frames as the flow-control windows open.

        The frames carry views of ``data`` (:meth:`_send_frame`: copied once, into h2's output buffer, or
        not at all for large frames); what is queued is written once it reaches ``FLUSH_THRESHOLD``, before
        waiting, and at the end.
        """
        h2c = self.h2
        view = memoryview(data)
        while True:
            if self.closed:
                raise ConnectionClosed("connection closed")
            if self._write_paused:
                self.schedule_flush()
                await self.wait_writable()
                continue
            stream = h2c._get_stream_by_id(stream_id)
            window = min(
                stream.outbound_flow_control_window, h2c.outbound_flow_control_window, h2c.max_outbound_frame_size
            )
            left = len(head) + len(view)
            if window <= 0 and left:
                self.schedule_flush()
                await self._wait_window(stream_id)
                continue
            n = min(window, left)
            first, head = head[:n], head[n:]
            body, view = view[: n - len(first)], view[n - len(first) :]
            last = not head and not len(view)
            self._send_frame(stream, first, body, end_stream and last)
            if last or len(h2c._data_to_send) >= FLUSH_THRESHOLD:
                self.schedule_flush()
            if last:
                return

    async def wait_writable(self) -> None:
        """Wait until the socket's write buffer drains below its low-water mark.

        Each waiter has its own future: a sender cancelled while waiting (its
        deadline, a reset) must not cancel the wait of the others.
        """
        if self.closed:
            raise ConnectionClosed("connection closed")
        if not self._write_paused:
            return
        waiter = self.loop.create_future()
        self._writable_waiters.append(waiter)
        try:
            await waiter
        finally:
            if not waiter.done() and waiter in self._writable_waiters:
                self._writable_waiters.remove(waiter)

    async def _wait_window(self, stream_id: int) -> None:
        waiter = self._window_waiters.get(stream_id)
        if waiter is None:
            waiter = self._window_waiters[stream_id] = self.loop.create_future()
        try:
            await waiter
        finally:
            if self._window_waiters.get(stream_id) is waiter:
                del self._window_waiters[stream_id]

    def wake_sender(self, stream_id: int, exc: BaseException | None = None) -> None:
        """Wake a sender blocked on ``stream_id`` (with ``exc`` when the stream ended)."""
        waiter = self._window_waiters.pop(stream_id, None)
        if waiter is not None and not waiter.done():
            if exc is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(exc)

    def _wake_all_senders(self) -> None:
        waiters, self._window_waiters = self._window_waiters, {}
        for waiter in waiters.values():
            if not waiter.done():
                waiter.set_result(None)

    def _on_window_updated(self, event: h2.events.WindowUpdated) -> None:
        if event.stream_id:
            self.wake_sender(event.stream_id)
        else:
            self._wake_all_senders()

    def _on_remote_settings(self, event: h2.events.RemoteSettingsChanged) -> None:
        self._wake_all_senders()

    # --- errors -----------------------------------------------------------

    def on_protocol_error(self, exc: h2.exceptions.ProtocolError) -> None:
        """A peer broke HTTP/2: send GOAWAY with the error and close."""
        self.queue_error_goaway(exc)
        self.flush()
        self.close()

    def queue_error_goaway(self, exc: h2.exceptions.ProtocolError) -> None:
        """Queue the GOAWAY that answers a connection error (h2 queues its own for the errors it detects)."""
        log.debug("HTTP/2 protocol error from %s: %s", self.peer, exc)
        if self.h2.state_machine.state is not ConnectionState.CLOSED:
            code = getattr(exc, "error_code", ErrorCodes.PROTOCOL_ERROR)
            with contextlib.suppress(Exception):  # we are closing anyway
                self.h2.send_goaway(self.h2.highest_inbound_stream_id, code, str(exc).encode()[:256])

    def close(self) -> None:
        """Close the socket, after writing what is still queued (a write held to the turn's end)."""
        if self.transport is not None and not self.transport.is_closing():
            self.flush()
            self.transport.close()


#: A frame header: 24-bit length (as 16 + 8 bits), type, flags, 31-bit stream id.


def _unchanged_by_data(transitions: Any, state: Any, data_input: Any) -> Any:
    """``state`` if h2's table makes sending DATA in it a no-op (no callback, same state), else None;
    so that :func:`send_data_frame` skips only the lookups that this h2 says change nothing."""
    return state if transitions.get((state, data_input)) == (None, state) else None


_CLIENT_OPEN, _SERVER_OPEN = (
    _unchanged_by_data(H2ConnectionStateMachine._transitions, state, ConnectionInputs.SEND_DATA)
    for state in (ConnectionState.CLIENT_OPEN, ConnectionState.SERVER_OPEN)
)
_OPEN, _HALF_CLOSED_REMOTE = (
    _unchanged_by_data(h2.stream._transitions, state, StreamInputs.SEND_DATA)
    for state in (StreamState.OPEN, StreamState.HALF_CLOSED_REMOTE)
)


def send_data_frame(h2c: GrpcH2Connection, stream: H2Stream, head: bytes, body: bytes | memoryview, end: bool) -> None:
    """Queue one DATA frame of ``head`` + ``body`` on ``stream``: what ``h2c.send_data(stream_id, head + body,
    end)`` queues, with the same connection and stream state inputs and flow-control accounting, but no
    frame object and no copy but the one into h2's output buffer (h2's own path makes three more, and needs
    ``bytes``, so a memoryview was copied once before it too).

    The caller has checked that it fits the frame size and both windows.
    """
    out = h2c._data_to_send
    out += data_frame_header(h2c, stream, len(head) + len(body), end)
    if head:
        out += head
    out += body


def data_frame_header(h2c: GrpcH2Connection, stream: H2Stream, size: int, end: bool) -> bytes:
    """Account for a DATA frame of ``size`` bytes on ``stream`` as h2's ``send_data`` does, and return its
    9-byte header; the frame's bytes must follow it on the wire before anything else h2 queues.

    The state inputs that h2's tables make no-ops (DATA on an open connection and stream) are skipped.
    """
    conn_machine = h2c.state_machine
    conn_state = conn_machine.state
    if conn_state is not _SERVER_OPEN and conn_state is not _CLIENT_OPEN:
        conn_machine.process_input(ConnectionInputs.SEND_DATA)
    machine = stream.state_machine
    state = machine.state
    if state is not _OPEN and state is not _HALF_CLOSED_REMOTE:
        machine.process_input(StreamInputs.SEND_DATA)
    if end:
        machine.process_input(StreamInputs.SEND_END_STREAM)
    stream.outbound_flow_control_window -= size
    h2c.outbound_flow_control_window -= size
    h2c._stream_frames_sent = True
    return FRAME_HEADER.pack(size >> 8, size & 0xFF, DATA, END_STREAM if end else 0, stream.stream_id)
