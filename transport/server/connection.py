"""The server side of one HTTP/2 connection: requests in, calls out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import h2.events
import h2.exceptions
from h2.errors import ErrorCodes

from transport.http2 import (
    ConnectionClosed,
    EnhanceYourCalm,
    FloodGuard,
    H2Protocol,
    HeaderBlockStarted,
    HeaderBlockTimer,
    HeaderListTooLarge,
    MalformedRequest,
    StreamData,
    StreamRefused,
    UnaryRequest,
)
from transport.server.call import ServerCall, ok_headers
from transport.server.goaway import GracefulGoaway
from transport.server.handlers import Cardinality, MethodHandler
from transport.server.keepalive import ConnectionKeepalive
from transport.server.reset_guard import ResetGuard
from transport.status import RpcError, StatusCode
from transport.wire import decode_timeout, one_message, percent_encode

if TYPE_CHECKING:
    from transport.server.acceptor import Acceptor
    from transport.server.server import Server

_STATUS_BYTES = [str(int(code)).encode() for code in StatusCode]
_monotonic = time.monotonic
#: Seconds a connection we half-closed waits for the client to close before it is aborted.
LINGER = 5.0
#: The same wait after the grace period ran out (Server.stop): the calls are already answered.
ABORT_LINGER = 1.0
#: The same wait for an idle connection shed at the connection cap: others wait for its place.
SHED_LINGER = 0.5
#: Routes a connection remembers by the header memo's records (cleared when full; the memo holds 256 blocks).
ROUTES_HELD = 64
#: Methods that take exactly one request message: a second one is an error at once.
_ONE_REQUEST = frozenset({Cardinality.UNARY_UNARY, Cardinality.UNARY_STREAM})


class ServerConnection(H2Protocol):
    """Owns one accepted socket and its H2Connection; runs a ServerCall per stream."""

    client_side = False
    pause_reading_on_backpressure = True

    def __init__(self, server: Server) -> None:
        options = server.options
        super().__init__(
            window_size=options.window_size,
            max_concurrent_streams=options.max_concurrent_streams,
            max_header_list_size=options.max_header_list_size,
        )
        self.server = server
        #: The largest request message a call takes (the server's options are fixed when it is made).
        self.max_message_length: int = options.max_receive_message_length
        #: The accept loop that let this connection in (told when it closes).
        self.acceptor: Acceptor | None = server.acceptor
        self.calls: dict[int, ServerCall] = {}
        #: Request headers routed before, by the identity of the header memo's record of them (:meth:`_open_call`).
        self._routes: dict[int, _Route] = {}
        self.server_headers = server.response_headers
        #: The response headers of a call that adds no metadata (the server's are fixed when it is made).
        self.ok_headers = ok_headers(self.server_headers)
        #: The server's list itself: a hook added later applies here too.
        self.trailer_hooks = server.trailer_hooks
        #: A GOAWAY went out: the connection ends once its calls are done.
        self.draining = False
        #: Loop time since which no call has been outstanding.
        self.idle_since = _monotonic()
        self._goaway: GracefulGoaway | None = None
        #: Non-gRPC answers (415/405) still being sent under flow control.
        self._replies: set[asyncio.Task[None]] = set()
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._keepalive: ConnectionKeepalive | None = None
        self._reset_guard = ResetGuard(self.loop.time)
        #: We half-closed: input is read and dropped until the client closes too.
        self._half_closed = False
        self._peer_eof = False
        self._linger_timer: asyncio.TimerHandle | None = None
        #: How long the half-closed connection waits for the client (shorter after abort()).
        self._linger = LINGER
        self.h2.stream_data = self.h2.unary_exchanges = True
        self._handlers.update(
            {
                UnaryRequest: self._on_unary_request,
                h2.events.RequestReceived: self._on_request,
                h2.events.DataReceived: self._on_data,
                StreamData: self._on_data,  # DATA mid-stream (h2.stream_data)
                h2.events.StreamEnded: self._on_stream_ended,
                h2.events.StreamReset: self._on_stream_reset,
                h2.events.PingAckReceived: self._on_ping_ack,
                StreamRefused: self._on_stream_refused,
                MalformedRequest: self._on_malformed_request,
                HeaderListTooLarge: self._on_header_list_too_large,
                EnhanceYourCalm: self._on_enhance_your_calm,
                HeaderBlockStarted: self._on_header_block_started,
            }
        )
        self.h2.flood_guard = FloodGuard(
            self.loop.time,
            backlog=self._write_backlog,
            ping_min_time=options.keepalive_min_time,
            permit_pings_without_calls=options.keepalive_permit_without_calls,
        )
        self._header_block_timer = HeaderBlockTimer(
            self.loop, options.header_block_timeout, self.h2.header_block_pending, self._on_header_block_stalled
        )

    def connection_made(self, transport: object) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        options = self.server.options
        self._handshake_timer = self.loop.call_later(options.handshake_timeout, self._on_handshake_timeout)
        if options.max_connection_age is not None or options.max_connection_idle is not None:
            self._keepalive = ConnectionKeepalive(
                self.loop,
                max_connection_age=options.max_connection_age,
                max_connection_age_grace=options.max_connection_age_grace,
                max_connection_idle=options.max_connection_idle,
                go_away=self._keepalive_go_away,
                force_close=self.abort,
                rng=self.server.rng,
            )
        self.server.connection_opened(self)

    def data_received(self, data: bytes | bytearray | memoryview) -> None:
        if not self._half_closed:
            super().data_received(data)

    def eof_received(self) -> bool:
        """The client closed its side: close ours once nothing is left to answer."""
        self._peer_eof = True
        # True: keep the transport open to answer the calls first (_maybe_close closes it);
        # False: asyncio closes it now.
        return not self._half_closed and bool(self.calls or self._replies)

    def _on_remote_settings(self, event: h2.events.RemoteSettingsChanged) -> None:
        # The handshake is done when the client's SETTINGS arrive (not at its first byte).
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None
        super()._on_remote_settings(event)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        for timer in (self._handshake_timer, self._linger_timer):
            if timer is not None:
                timer.cancel()
        if self._goaway is not None:
            self._goaway.cancel()
        if self._keepalive is not None:
            self._keepalive.cancel()
        for call in list(self.calls.values()):
            call.on_reset()
        for task in list(self._replies):
            task.cancel()
        self.server.connection_closed(self, self.acceptor)

    def _on_handshake_timeout(self) -> None:
        self._handshake_timer = None
        self.close()

    @property
    def max_age(self) -> float | None:
        """This connection's MAX_CONNECTION_AGE after jitter, None when unlimited."""
        return self._keepalive.age if self._keepalive is not None else None

    def stream_failed(self, stream_id: int, reason: str) -> None:
        call = self.calls.get(stream_id)
        if call is not None:
            call.finish(StatusCode.INTERNAL, reason)
        else:
            super().stream_failed(stream_id, reason)

    # --- events -----------------------------------------------------------

    def _on_unary_request(self, event: UnaryRequest) -> None:
        """A whole unary request (:mod:`.unary_receive`): a handler that takes one message starts with it
        at once; anything else (a streaming handler, a message the decoder must judge, a request refused)
        takes the request's data and end as h2 reports them, one by one."""
        call = self._open_call(event)
        if call is not None and not call.handler.request_streaming:
            request = one_message(event.data, self.max_message_length)
            if request is not None:
                self.acknowledge_connection_data(event.flow_controlled_length)
                call.request_ended = True
                call.start(request)
                return
        _, received, ended = event.h2_events()
        self._on_data(received)  # type: ignore[arg-type]  # (h2_events: RequestReceived, DataReceived, StreamEnded)
        self._on_stream_ended(ended)  # type: ignore[arg-type]

    def _on_request(self, event: h2.events.RequestReceived) -> None:
        self._open_call(event)

    def _open_call(self, event: h2.events.RequestReceived | UnaryRequest) -> ServerCall | None:
        """A request's headers: the call they ask for, or None when they were answered with an error."""
        if self._half_closed:
            return None  # we are closing: the rest of this read is ignored
        stream_id = event.stream_id
        goaway = self._goaway
        if goaway is not None and goaway.last_stream_id is not None and stream_id > goaway.last_stream_id:
            # Sent after our final GOAWAY: not processed, so the client may retry it elsewhere.
            if self._stream_open(stream_id):
                self.h2.reset_stream(stream_id, ErrorCodes.REFUSED_STREAM)
            return None
        headers = event.headers
        # Headers the memo took (header_memo: the same record for the same headers) are routed once.
        taken = getattr(event, "taken", None)
        route = self._routes.get(id(taken)) if taken is not None else None
        if route is not None and route.taken is taken and self.server.methods.get(route.path) is route.handler:
            path, handler, timeout = route.path, route.handler, route.timeout
        else:
            routed = self._route(stream_id, headers)
            if routed is None:
                return None  # answered with the error
            path, handler, timeout, from_table = routed
            if taken is not None and from_table:  # (a generic handler may answer differently next time)
                if len(self._routes) >= ROUTES_HELD:
                    self._routes.clear()
                self._routes[id(taken)] = _Route(taken, path, handler, timeout)
        call = ServerCall(self, stream_id, path, handler, headers, timeout)
        if not self.calls and self._keepalive is not None:
            self._keepalive.set_busy(True)
        self.calls[stream_id] = call
        self.server.stats.call_started()
        self._reset_guard.stream_opened()
        if handler.request_streaming:
            call.start(None)  # reads its requests as they arrive
        return call

    def _route(
        self, stream_id: int, headers: Sequence[tuple[bytes, bytes]]
    ) -> tuple[str, MethodHandler, float | None, bool] | None:
        """The method a request's headers ask for: path, handler, timeout, and whether the handler is the
        server's own (not a generic one's); None, having answered with the error, when they do not make one."""
        pseudo: dict[bytes, bytes] = {}
        for name, value in headers:
            if name in _INTERESTING:
                pseudo[name] = value
        content_type = pseudo.get(b"content-type", b"")
        if not content_type.startswith(b"application/grpc"):
            self._respond_http(stream_id, 415, b"Unsupported Media Type: gRPC needs content-type application/grpc\n")
            return None
        if pseudo.get(b":method") != b"POST":
            self._respond_http(stream_id, 405, b"Method Not Allowed: gRPC uses POST\n")
            return None
        if pseudo.get(b"te") != b"trailers":
            self._trailers_only(stream_id, StatusCode.INTERNAL, "missing 'te: trailers' request header")
            return None
        path = pseudo.get(b":path", b"").decode("utf-8", "replace")
        handler = self.server.methods.get(path)
        from_table = handler is not None
        if handler is None:
            handler = self.server.lookup_generic(path)
        if handler is None:
            self._trailers_only(stream_id, StatusCode.UNIMPLEMENTED, f"Method not found: {path}")
            return None
        timeout = None
        raw_timeout = pseudo.get(b"grpc-timeout")
        if raw_timeout is not None:
            try:
                timeout = decode_timeout(raw_timeout)
            except ValueError as exc:
                self._trailers_only(stream_id, StatusCode.INTERNAL, str(exc))
                return None
        encoding = pseudo.get(b"grpc-encoding")
        if encoding is not None and encoding != b"identity":
            self._trailers_only(
                stream_id,
                StatusCode.UNIMPLEMENTED,
                f"grpc-encoding {encoding.decode('ascii', 'replace')!r} is not supported (only identity)",
            )
            return None
        return path, handler, timeout, from_table

    def _on_data(self, event: h2.events.DataReceived | StreamData) -> None:
        call = self.calls.get(event.stream_id)
        if call is None or call.finished:
            if event.flow_controlled_length:
                self.h2.acknowledge_connection_data(event.flow_controlled_length)
            return
        stream = call.stream
        try:
            stream.on_data(event.data, event.flow_controlled_length)
        except RpcError as exc:
            call.finish(exc.code, exc.details)
            return
        if stream.queued > 1 and call.handler.cardinality in _ONE_REQUEST:
            # grpc fails such a call at once rather than buffering what follows.
            call.finish(
                StatusCode.INTERNAL,
                f"{call.method} takes one request message, but the client sent more than one",
            )

    def _on_stream_ended(self, event: h2.events.StreamEnded) -> None:
        call = self.calls.get(event.stream_id)
        if call is None or call.finished:
            return
        stream = call.stream
        stream.on_end()
        if stream.pending:
            call.finish(StatusCode.INTERNAL, "request ended in the middle of a message")
        elif call.handler.cardinality in _ONE_REQUEST:
            request = stream.take_message()
            if request is None:
                call.finish(StatusCode.UNIMPLEMENTED, f"{call.method} expects exactly one request message, got 0")
            else:
                call.start(request)

    def _on_stream_reset(self, event: h2.events.StreamReset) -> None:
        call = self.calls.get(event.stream_id)
        if call is not None:
            call.stream.on_reset(event.error_code, "reset by the client")
            call.on_reset()
        else:
            self.wake_sender(event.stream_id)
        if self._reset_guard.reset() and not self._half_closed:
            self._calm_down(b"too many stream resets")

    def _on_ping_ack(self, event: h2.events.PingAckReceived) -> None:
        if self._goaway is not None:
            self._goaway.on_ping_ack(event.ping_data)

    def on_protocol_error(self, exc: h2.exceptions.ProtocolError) -> None:
        """A client broke HTTP/2: GOAWAY with the error, then half-close and linger (not close at once).

        Closing while the client's bytes are still unread (a large frame refused from its header, say) makes
        the kernel answer with RST, and the client may never read the GOAWAY that says why.
        """
        self.queue_error_goaway(exc)
        self.draining = True
        for call in list(self.calls.values()):
            call.on_reset()
        self._half_close(ABORT_LINGER)

    def _calm_down(self, reason: bytes) -> None:
        """Abuse (a rapid-reset flood, CVE-2023-44487, and the like): GOAWAY ENHANCE_YOUR_CALM and close."""
        self.server.stats.connections_calmed += 1
        self.draining = True
        self.h2.send_goaway(self.h2.highest_inbound_stream_id, ErrorCodes.ENHANCE_YOUR_CALM, reason)
        for call in list(self.calls.values()):
            call.on_reset()
        self._half_close(LINGER)

    def _on_header_list_too_large(self, event: HeaderListTooLarge) -> None:
        """Over SETTINGS_MAX_HEADER_LIST_SIZE: that call fails (grpcio does the same), the connection stays."""
        message = f"request header list is {event.size} bytes, over the server's limit of {event.limit}"
        call = self.calls.get(event.stream_id)
        if call is None:
            self._trailers_only(event.stream_id, StatusCode.RESOURCE_EXHAUSTED, message)
        elif not call.finished:  # the request's trailers were too large
            call.stream.on_reset(None, message)
            call.finish(StatusCode.RESOURCE_EXHAUSTED, message)

    def _on_enhance_your_calm(self, event: EnhanceYourCalm) -> None:
        if not self._half_closed:
            self._calm_down(event.debug)

    def _on_header_block_started(self, event: HeaderBlockStarted) -> None:
        self._header_block_timer.started(event.block)

    def _on_header_block_stalled(self) -> None:
        if not self._half_closed and not self.closed:
            self._calm_down(b"header block not finished in time")

    def _write_backlog(self) -> int:
        """Bytes we wrote that the peer has not yet taken (the flood guard's measure of a peer not reading)."""
        return self.transport.get_write_buffer_size() if self.transport is not None else 0

    def _on_stream_refused(self, event: StreamRefused) -> None:
        self.server.stats.streams_refused += 1

    def _on_malformed_request(self, event: MalformedRequest) -> None:
        self.server.stats.malformed_requests += 1

    # --- responses outside a call -----------------------------------------

    def _stream_open(self, stream_id: int) -> bool:
        stream = self.h2.streams.get(stream_id)
        return stream is not None and not stream.closed

    def _respond_http(self, stream_id: int, status: int, body: bytes) -> None:
        if not self._stream_open(stream_id):
            return
        self.h2.send_headers(
            stream_id,
            [
                (b":status", str(status).encode()),
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ],
        )
        self.server.stats.rejected_requests += 1
        if self.try_send_data(stream_id, body, True):
            self._end_unfinished_request(stream_id)
            return
        # The client's window is smaller than the body: send it as the window opens.
        task = self.loop.create_task(self._send_reply_body(stream_id, body))
        self._replies.add(task)
        task.add_done_callback(self._reply_sent)

    async def _send_reply_body(self, stream_id: int, body: bytes) -> None:
        try:
            await self.send_data(stream_id, body, True)
        except (ConnectionClosed, h2.exceptions.ProtocolError):
            return  # the client reset the stream or left
        self._end_unfinished_request(stream_id)
        self.schedule_flush()

    def _reply_sent(self, task: asyncio.Task[None]) -> None:
        self._replies.discard(task)
        self._maybe_close()

    def _trailers_only(self, stream_id: int, code: StatusCode, message: str) -> None:
        if not self._stream_open(stream_id):
            return
        self.h2.send_headers(
            stream_id,
            [
                (b":status", b"200"),
                (b"content-type", b"application/grpc"),
                *self.server_headers,
                (b"grpc-status", _STATUS_BYTES[code]),
                (b"grpc-message", percent_encode(message)),
            ],
            end_stream=True,
        )
        self._end_unfinished_request(stream_id)
        self.server.stats.count_status(code)

    def _end_unfinished_request(self, stream_id: int) -> None:
        stream = self.h2.streams.get(stream_id)
        if stream is not None and not stream.closed:
            self.h2.reset_stream(stream_id, ErrorCodes.NO_ERROR)

    # --- calls and shutdown -----------------------------------------------

    def call_finished(self, call: ServerCall, code: StatusCode) -> None:
        if self.calls.pop(call.stream_id, None) is not None:
            self.server.stats.call_finished(code, call.method)
        if not self.calls:
            self.idle_since = _monotonic()  # (what loop.time() reads, without its call: per call, often)
            if self._keepalive is not None:
                self._keepalive.set_busy(False)
            if self.draining or self._peer_eof:
                self._maybe_close()

    def go_away(self, debug: bytes = b"") -> None:
        """Send the connection away gracefully (:mod:`.goaway`): running calls and the
        ones already on their way finish, later ones are refused, then it closes."""
        if self.draining or self.closed:
            return
        self.draining = True
        self._goaway = GracefulGoaway(self.h2, self.loop, debug, self._on_final_goaway)
        self.schedule_flush()

    def shed(self) -> None:
        """Close an idle connection to make room (the server is at its connection cap):
        the final GOAWAY at once, without waiting for a PING, and a short linger."""
        if self.draining or self.closed or self.calls:
            return
        self._linger = SHED_LINGER
        self.go_away(b"max_idle")
        assert self._goaway is not None
        self._goaway.finalize()

    def _keepalive_go_away(self, debug: bytes) -> None:
        if not self.draining:
            if debug == b"max_age":
                self.server.stats.connections_aged += 1
            else:
                self.server.stats.connections_idled += 1
        self.go_away(debug)

    def _on_final_goaway(self, last_stream_id: int) -> None:
        self.schedule_flush()
        self._maybe_close()

    def _maybe_close(self) -> None:
        """Close once nothing is left to answer: after the final GOAWAY, or after the client's EOF."""
        if self.calls or self._replies or self._half_closed or self.closed:
            return
        if self._peer_eof:
            self.flush()
            self.close()
        elif self._goaway is not None and self._goaway.last_stream_id is not None:
            self._half_close(self._linger)

    def _half_close(self, linger: float) -> None:
        """Write what is queued, half-close, and let the client close (read and drop until then).

        Closing with unread input would make the kernel answer with RST, and the
        client could lose responses that were already written. If the client has
        not closed after ``linger`` seconds, the socket is aborted.
        """
        self.flush()
        self._half_closed = True
        transport = self.transport
        if self._peer_eof or transport is None or not transport.can_write_eof():
            self.close()
            return
        try:
            transport.write_eof()
        except OSError:  # the peer is already gone (ENOTCONN): nothing left to say
            transport.abort()
            return
        self.write_closed = True
        self._linger_timer = self.loop.call_later(linger, self._linger_over)

    def _linger_over(self) -> None:
        self._linger_timer = None
        if self.transport is not None:
            self.transport.abort()

    def abort(self) -> None:
        """The grace is over: end every call with UNAVAILABLE, send a final GOAWAY and close."""
        if self.closed or self._half_closed:
            return
        self._linger = ABORT_LINGER
        if self._goaway is None:
            self.draining = True
            self._goaway = GracefulGoaway(self.h2, self.loop, b"", self._on_final_goaway)
        for call in list(self.calls.values()):
            call.finish(StatusCode.UNAVAILABLE, "server shutting down")
        for task in list(self._replies):
            task.cancel()
        self._goaway.finalize()  # closes via _maybe_close once the replies' tasks are gone
        self._maybe_close()


class _Route(NamedTuple):
    """What a request's headers were routed to, for the header memo's record ``taken`` of them."""

    taken: object
    path: str
    handler: MethodHandler
    timeout: float | None


_INTERESTING = frozenset({b":method", b":path", b"content-type", b"te", b"grpc-timeout", b"grpc-encoding"})
