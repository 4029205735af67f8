"""The server side of one HTTP/2 connection: requests in, calls out."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import h2.events
from h2.errors import ErrorCodes

from transport.http2 import (
    EnhanceYourCalm,
    FloodGuard,
    H2Protocol,
    HeaderBlockStarted,
    HeaderBlockTimer,
    HeaderListTooLarge,
    MalformedRequest,
    StreamRefused,
)
from transport.server.call import ServerCall
from transport.server.reset_guard import ResetGuard
from transport.status import RpcError, StatusCode
from transport.wire import decode_timeout, percent_encode

if TYPE_CHECKING:
    from transport.server.server import Server

_STATUS_BYTES = [str(int(code)).encode() for code in StatusCode]
#: Seconds a connection we told to go away keeps draining input before it closes.
LINGER = 5.0


class ServerConnection(H2Protocol):
    """Owns one accepted socket and its H2Connection; runs a ServerCall per stream."""

    client_side = False

    def __init__(self, server: Server) -> None:
        options = server.options
        super().__init__(
            window_size=options.window_size,
            max_concurrent_streams=options.max_concurrent_streams,
            max_header_list_size=options.max_header_list_size,
        )
        self.server = server
        self.calls: dict[int, ServerCall] = {}
        self.server_headers = server.response_headers
        self.draining = False
        self._goaway_stream_id = 0
        self._idle_timer: asyncio.TimerHandle | None = None
        self._reset_guard = ResetGuard(self.loop.time)
        self._calmed = False
        self._handlers.update(
            {
                h2.events.RequestReceived: self._on_request,
                h2.events.DataReceived: self._on_data,
                h2.events.StreamEnded: self._on_stream_ended,
                h2.events.StreamReset: self._on_stream_reset,
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
        self.server.connection_opened(self)
        self._idle_timer = self.loop.call_later(self.server.options.handshake_timeout, self._on_handshake_timeout)

    def data_received(self, data: bytes) -> None:
        if not self._calmed:
            super().data_received(data)

    def _on_remote_settings(self, event: h2.events.RemoteSettingsChanged) -> None:
        # The handshake is done when the client's SETTINGS arrive (not at its first byte).
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        super()._on_remote_settings(event)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        for call in list(self.calls.values()):
            call.on_reset()
        self.server.connection_closed(self)

    def _on_handshake_timeout(self) -> None:
        self._idle_timer = None
        self.close()

    # --- events -----------------------------------------------------------

    def _on_request(self, event: h2.events.RequestReceived) -> None:
        if self._calmed:
            return  # told to go away: the rest of this read is ignored
        stream_id = event.stream_id
        if self.draining and stream_id > self._goaway_stream_id:
            if self._stream_open(stream_id):
                self.h2.reset_stream(stream_id, ErrorCodes.REFUSED_STREAM)
            return
        headers = event.headers
        pseudo: dict[bytes, bytes] = {}
        for name, value in headers:
            if name in _INTERESTING:
                pseudo[name] = value
        content_type = pseudo.get(b"content-type", b"")
        if not content_type.startswith(b"application/grpc"):
            self._respond_http(stream_id, 415, b"Unsupported Media Type: gRPC needs content-type application/grpc\n")
            return
        if pseudo.get(b":method") != b"POST":
            self._respond_http(stream_id, 405, b"Method Not Allowed: gRPC uses POST\n")
            return
        if pseudo.get(b"te") != b"trailers":
            self._trailers_only(stream_id, StatusCode.INTERNAL, "missing 'te: trailers' request header")
            return
        path = pseudo.get(b":path", b"").decode("utf-8", "replace")
        handler = self.server.methods.get(path)
        if handler is None:
            self._trailers_only(stream_id, StatusCode.UNIMPLEMENTED, f"Method not found: {path}")
            return
        timeout = None
        raw_timeout = pseudo.get(b"grpc-timeout")
        if raw_timeout is not None:
            try:
                timeout = decode_timeout(raw_timeout)
            except ValueError as exc:
                self._trailers_only(stream_id, StatusCode.INTERNAL, str(exc))
                return
        encoding = pseudo.get(b"grpc-encoding")
        if encoding is not None and encoding != b"identity":
            self._trailers_only(
                stream_id,
                StatusCode.UNIMPLEMENTED,
                f"grpc-encoding {encoding.decode('ascii', 'replace')!r} is not supported (only identity)",
            )
            return
        call = ServerCall(
            self,
            stream_id,
            path,
            handler,
            headers,
            timeout,
            self.server.options.max_receive_message_length,
            None,
        )
        self.calls[stream_id] = call
        self.server.stats.call_started()
        self._reset_guard.stream_opened()

    def _on_data(self, event: h2.events.DataReceived) -> None:
        stream_id = event.stream_id
        if event.flow_controlled_length:
            # A closed stream raises; h2 has credited the connection window already.
            with contextlib.suppress(Exception):
                self.h2.acknowledge_received_data(event.flow_controlled_length, stream_id)
        call = self.calls.get(stream_id)
        if call is None or call.finished:
            return
        try:
            call.requests += call.decoder.feed(event.data)
        except RpcError as exc:
            call.finish(exc.code, exc.details)

    def _on_stream_ended(self, event: h2.events.StreamEnded) -> None:
        call = self.calls.get(event.stream_id)
        if call is None:
            return
        call.request_ended = True
        if call.finished:
            return
        if call.decoder.pending:
            call.finish(StatusCode.INTERNAL, "request ended in the middle of a message")
            return
        call.start()

    def _on_stream_reset(self, event: h2.events.StreamReset) -> None:
        call = self.calls.get(event.stream_id)
        if call is not None:
            call.on_reset()
        self.wake_sender(event.stream_id)
        if self._reset_guard.reset() and not self._calmed:
            self._calm_down()

    def _calm_down(self, debug: bytes = b"too many stream resets") -> None:
        """A flood (rapid reset CVE-2023-44487, or a flood_guard bound): GOAWAY ENHANCE_YOUR_CALM and close."""
        self.server.stats.connections_calmed += 1
        self.h2.send_goaway(self.h2.highest_inbound_stream_id, ErrorCodes.ENHANCE_YOUR_CALM, debug)
        self.flush()
        for call in list(self.calls.values()):
            call.on_reset()
        # Half-close after the GOAWAY and keep reading (discarding) until the client
        # closes too, or LINGER passes: closing now, with its flood still arriving,
        # would send a RST that can destroy the GOAWAY before the client reads it.
        self._calmed = True
        if self.transport is not None and self.transport.can_write_eof():
            self.transport.write_eof()
            self.write_closed = True
        self.loop.call_later(LINGER, self.close)

    def _on_header_list_too_large(self, event: HeaderListTooLarge) -> None:
        """Over SETTINGS_MAX_HEADER_LIST_SIZE: that call fails (grpcio does the same), the connection stays."""
        message = f"request header list is {event.size} bytes, over the server's limit of {event.limit}"
        call = self.calls.get(event.stream_id)
        if call is None:
            self._trailers_only(event.stream_id, StatusCode.RESOURCE_EXHAUSTED, message)
        elif not call.finished:  # the request's trailers were too large
            if call.task is not None:
                call.task.cancel()
            call.finish(StatusCode.RESOURCE_EXHAUSTED, message)

    def _on_enhance_your_calm(self, event: EnhanceYourCalm) -> None:
        if not self._calmed:
            self._calm_down(event.debug)

    def _on_header_block_started(self, event: HeaderBlockStarted) -> None:
        self._header_block_timer.started(event.block)

    def _on_header_block_stalled(self) -> None:
        if not self._calmed and not self.closed:
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
        self.h2.send_data(stream_id, body, end_stream=True)
        self._end_unfinished_request(stream_id)
        self.server.stats.rejected_requests += 1

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
        if self.draining and not self.calls:
            self.schedule_flush()
            self.loop.call_soon(self.close)

    def drain(self) -> None:
        """Send GOAWAY: running calls finish, newer streams are refused, then close."""
        if self.draining:
            return
        self.draining = True
        self._goaway_stream_id = self.h2.highest_inbound_stream_id
        self.h2.send_goaway(self._goaway_stream_id)
        self.flush()
        if not self.calls:
            self.loop.call_soon(self.close)

    def abort(self) -> None:
        """Cancel every call and close now."""
        for call in list(self.calls.values()):
            call.finish(StatusCode.UNAVAILABLE, "server shutting down")
        self.flush()
        self.close()


_INTERESTING = frozenset({b":method", b":path", b"content-type", b"te", b"grpc-timeout", b"grpc-encoding"})
