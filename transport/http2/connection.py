"""``GrpcH2Connection``: h2's state machine with the protocol behaviours gRPC needs and a memo for header work.

h2 stays the owner of HTTP/2 state; this subclass changes only what gRPC needs
differently (GOAWAY, REFUSED_STREAM, malformed requests as stream errors), skips
per-frame trace formatting, and remembers header work (:mod:`.hpack_memo`).
"""

from __future__ import annotations

from typing import Any, cast

import h2.config
import h2.exceptions
from h2.connection import H2Connection, _decode_headers
from h2.errors import ErrorCodes
from h2.events import ConnectionTerminated, Event
from h2.exceptions import StreamClosedError, StreamIDTooLowError
from h2.stream import H2Stream, StreamClosedBy
from hyperframe.frame import Frame, GoAwayFrame, HeadersFrame, RstStreamFrame

from transport.http2 import fast_path
from transport.http2.hpack_memo import MemoDecoder, MemoEncoder, validated


class StreamRefused(Event):
    """We refused a new stream over SETTINGS_MAX_CONCURRENT_STREAMS (RST_STREAM REFUSED_STREAM)."""

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id


class MalformedRequest(Event):
    """A request's headers broke HTTP/2's rules; we reset that stream (PROTOCOL_ERROR)."""

    def __init__(self, stream_id: int, reason: str) -> None:
        self.stream_id = stream_id
        self.reason = reason


class GrpcH2Connection(H2Connection):
    """``H2Connection`` with two protocol behaviours gRPC needs and h2 lacks.

    - GOAWAY does not end the streams already running (RFC 9113 §6.8): h2
      moves its whole connection to CLOSED on sending or receiving GOAWAY and
      then refuses every frame, so streams at or below the last-stream-id
      could not finish. Here the connection stays open; the owner stops
      opening streams instead.
    - A stream over SETTINGS_MAX_CONCURRENT_STREAMS is a *stream* error
      (RST_STREAM REFUSED_STREAM, RFC 9113 §5.1.2), which the client may
      retry elsewhere; h2 raises a connection error and drops every stream.

    And it is quicker at the two exchanges every unary call makes: it
    remembers header work it has done before (:mod:`.hpack_memo`; the same
    blocks recur on every call, and HPACK plus validation are most of h2's
    cost per call), and sends a whole request or response in one step
    (:meth:`send_request`, :meth:`send_response`, :mod:`.fast_path`).
    """

    def __init__(self, config: h2.config.H2Configuration | None = None) -> None:
        super().__init__(config)
        self.encoder = MemoEncoder()
        self.decoder = MemoDecoder()
        self.decoder.max_header_list_size = self.DEFAULT_MAX_HEADER_LIST_SIZE
        self._validation_memo: dict[Any, list[Any]] = {}

    def _begin_new_stream(self, stream_id: int, allowed_ids: Any) -> H2Stream:
        stream = super()._begin_new_stream(stream_id, allowed_ids)
        # Same object, one more method: h2 builds H2Stream itself and offers no factory.
        stream.__class__ = GrpcH2Stream
        cast(GrpcH2Stream, stream).validation_memo = self._validation_memo
        return stream

    def send_request(self, stream_id: int, headers: list[tuple[bytes, bytes]], data: bytes) -> bool:
        """Open a stream with ``headers`` and end it with ``data`` in one step (:mod:`.fast_path`);
        False, with nothing changed, when only h2's general path can."""
        return fast_path.send_request(self, stream_id, headers, data)

    def send_response(
        self, stream_id: int, headers: list[tuple[bytes, bytes]], data: bytes, trailers: list[tuple[bytes, bytes]]
    ) -> bool:
        """Answer an ended request with ``headers``, ``data`` and ``trailers`` in one step (:mod:`.fast_path`);
        False, with nothing changed, when only h2's general path can."""
        return fast_path.send_response(self, stream_id, headers, data, trailers)

    def send_goaway(self, last_stream_id: int, error_code: int = ErrorCodes.NO_ERROR, debug: bytes = b"") -> None:
        """Queue a GOAWAY without closing the streams at or below ``last_stream_id``."""
        frame = GoAwayFrame(0, last_stream_id=last_stream_id, error_code=error_code, additional_data=debug)
        self._prepare_for_sending([frame])

    def _receive_frame(self, frame: Frame) -> list[Event]:
        # h2's own version formats repr(frame) for a trace log on every frame, even
        # with logging off; this is the same logic without it (h2 4.4.1).
        events: list[Event]
        try:
            frames, events = self._frame_dispatch_table[frame.__class__](frame)
        except StreamClosedError as e:
            if self._stream_is_closed_by_reset(e.stream_id):
                f = RstStreamFrame(e.stream_id)
                f.error_code = e.error_code
                self._prepare_for_sending([f])
                events = e._events
            else:
                raise
        except StreamIDTooLowError as e:
            if self._stream_is_closed_by_reset(e.stream_id):
                f = RstStreamFrame(e.stream_id)
                f.error_code = ErrorCodes.STREAM_CLOSED
                self._prepare_for_sending([f])
                events = []
            elif self._stream_is_closed_by_end(e.stream_id):
                raise StreamClosedError(e.stream_id) from e
            else:
                raise
        else:
            self._prepare_for_sending(frames)
        return events

    def _receive_goaway_frame(self, frame: GoAwayFrame) -> tuple[list[Frame], list[Event]]:
        event = ConnectionTerminated()
        try:
            event.error_code = ErrorCodes(frame.error_code)
        except ValueError:
            event.error_code = frame.error_code
        event.last_stream_id = frame.last_stream_id
        event.additional_data = frame.additional_data or None
        return [], [event]

    def _receive_headers_frame(self, frame: HeadersFrame) -> tuple[list[Frame], list[Event]]:
        if (
            not self.config.client_side
            and frame.stream_id not in self.streams
            and frame.stream_id > self.highest_inbound_stream_id
            and frame.stream_id % 2 == 1
            # open ≤ len(streams): skip the O(streams) count while the table is smaller than the limit
            and len(self.streams) >= self.local_settings.max_concurrent_streams
            and self.open_inbound_streams >= self.local_settings.max_concurrent_streams
        ):
            _decode_headers(self.decoder, frame.data)  # keeps the HPACK table in step
            self.highest_inbound_stream_id = frame.stream_id
            self._closed_streams[frame.stream_id] = StreamClosedBy.SEND_RST_STREAM
            rst = RstStreamFrame(frame.stream_id)
            rst.error_code = ErrorCodes.REFUSED_STREAM
            return [rst], [StreamRefused(frame.stream_id)]
        try:
            result: tuple[list[Frame], list[Event]] = super()._receive_headers_frame(frame)
        except h2.exceptions.ProtocolError as exc:
            stream = self.streams.get(frame.stream_id)
            if (
                self.config.client_side
                or stream is None
                or stream.closed
                or isinstance(exc, h2.exceptions.DenialOfServiceError)
                or str(exc).startswith("Error decoding header block")
            ):
                raise  # a connection error: the HPACK state or the stream table is not trustworthy
            # A malformed request is a stream error (RFC 9113 §8.1.1): reset that stream only.
            self.reset_stream(frame.stream_id, ErrorCodes.PROTOCOL_ERROR)
            return [], [MalformedRequest(frame.stream_id, str(exc))]
        return result


class GrpcH2Stream(H2Stream):
    """``H2Stream`` whose inbound header validation is remembered per connection."""

    validation_memo: dict[Any, list[Any]]

    def _process_received_headers(self, headers: Any, header_validation_flags: Any, header_encoding: Any) -> Any:
        process = super()._process_received_headers
        return validated(
            self.validation_memo,
            headers,
            (header_validation_flags, header_encoding),
            lambda hs: process(hs, header_validation_flags, header_encoding),
        )
