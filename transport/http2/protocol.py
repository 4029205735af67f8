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
from h2.connection import ConnectionState
from h2.errors import ErrorCodes
from h2.events import Event
from h2.settings import SettingCodes

from transport.address import Address
from transport.http2.connection import GrpcH2Connection

log = logging.getLogger(__name__)

#: How much of the stream window a receiver grants (gRPC implementations use
#: large windows; 64 KiB is HTTP/2's default and the minimum we accept).
DEFAULT_WINDOW_SIZE = 1024 * 1024
DEFAULT_MAX_HEADER_LIST_SIZE = 16 * 1024


class ConnectionClosed(Exception):
    """The connection ended while a stream still wanted it."""


#: Bytes read from the socket at most per read: the size of each connection's receive buffer.
READ_BUFFER_SIZE = 64 * 1024


class H2Protocol(asyncio.BufferedProtocol):
    """Base of the server and client connection protocols.

    It reads into one preallocated buffer per connection (``BufferedProtocol``):
    a plain ``Protocol`` makes asyncio allocate a fresh 256 KiB ``bytes`` for
    every read, which costs more than a small gRPC call's whole read (see bench/).
    """

    client_side = False

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
        self.h2.local_settings = h2.settings.Settings(
            client=self.client_side,
            initial_values={
                SettingCodes.INITIAL_WINDOW_SIZE: window_size,
                SettingCodes.MAX_HEADER_LIST_SIZE: max_header_list_size,
                SettingCodes.ENABLE_PUSH: 0,
                **(
                    {SettingCodes.MAX_CONCURRENT_STREAMS: max_concurrent_streams}
                    if max_concurrent_streams is not None
                    else {}
                ),
            },
        )
        self.h2.decoder.max_header_list_size = max_header_list_size
        self._connection_window = max(window_size, 65535)
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        #: True while data_received dispatches events: it flushes once at its end.
        self._receiving = False
        self._write_paused = False
        self._writable: asyncio.Future[None] | None = None
        # Senders blocked on flow control, by stream id (0 = any).
        self._window_waiters: dict[int, asyncio.Future[None]] = {}
        self.closed = False
        #: We half-closed the socket (write_eof): nothing more is written.
        self.write_closed = False
        self.peer: str = ""
        self.local_address: Address | None = None
        self._read_buffer = memoryview(bytearray(READ_BUFFER_SIZE))
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
        return self._read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(self._read_buffer[:nbytes]))

    def data_received(self, data: bytes) -> None:
        """Bytes from the peer: feed h2 and dispatch its events."""
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self.on_protocol_error(exc)
            return
        # Whatever the handlers send is written once, below.
        self._receiving = True
        handlers = self._handlers
        for event in events:
            handler = handlers.get(type(event))
            if handler is not None:
                try:
                    handler(event)
                except h2.exceptions.ProtocolError as exc:
                    # One stream's answer met a stream the peer already closed (e.g.
                    # RST_STREAM in the same read): drop that answer, keep the connection.
                    log.debug("%s: event %s on a closed stream: %s", self.peer, type(event).__name__, exc)
        self._receiving = False
        self.flush()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        waiter, self._writable = self._writable, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        for waiter in self._window_waiters.values():
            if not waiter.done():
                waiter.set_exception(ConnectionClosed("connection closed"))
        self._window_waiters.clear()
        if self._writable is not None and not self._writable.done():
            self._writable.set_exception(ConnectionClosed("connection closed"))

    # --- writing ----------------------------------------------------------

    def flush(self) -> None:
        """Write whatever h2 has queued, in one ``transport.write``."""
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.closed and not self.write_closed:
            self.transport.write(data)

    def schedule_flush(self) -> None:
        """Write what is queued: at the end of the read being processed, else now.

        Writing at once (rather than batching into a later loop turn) lets the peer
        start on a response while we produce the next: on two cores that overlap
        doubles throughput and cuts latency (see bench/).
        """
        if not self._receiving:
            self.flush()

    def try_send_data(self, stream_id: int, data: bytes, end_stream: bool) -> bool:
        """Send ``data`` now if the windows allow it in one frame; the fast path."""
        h2c = self.h2
        if len(data) <= h2c.max_outbound_frame_size and len(data) <= h2c.local_flow_control_window(stream_id):
            h2c.send_data(stream_id, data, end_stream=end_stream)
            return True
        return False

    async def send_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        """Send ``data`` in chunks as the flow-control windows open."""
        h2c = self.h2
        view = memoryview(data)
        while True:
            if self.closed:
                raise ConnectionClosed("connection closed")
            if self._write_paused:
                await self._wait_writable()
                continue
            window = min(h2c.local_flow_control_window(stream_id), h2c.max_outbound_frame_size)
            if window <= 0 and len(view):
                await self._wait_window(stream_id)
                continue
            chunk, view = view[:window], view[window:]
            last = not len(view)
            h2c.send_data(stream_id, bytes(chunk), end_stream=end_stream and last)
            self.schedule_flush()
            if last:
                return

    async def _wait_writable(self) -> None:
        if self._writable is None:
            self._writable = self.loop.create_future()
        await self._writable

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
        log.debug("HTTP/2 protocol error from %s: %s", self.peer, exc)
        if self.h2.state_machine.state is not ConnectionState.CLOSED:
            # h2 queues its own GOAWAY for the errors it detects; add ours only otherwise.
            code = getattr(exc, "error_code", ErrorCodes.PROTOCOL_ERROR)
            with contextlib.suppress(Exception):  # we are closing anyway
                self.h2.send_goaway(self.h2.highest_inbound_stream_id, code, str(exc).encode()[:256])
        self.flush()
        self.close()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
