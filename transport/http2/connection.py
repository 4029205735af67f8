"""``GrpcH2Connection``: h2's state machine with the protocol behaviours gRPC needs and a memo for header work.

h2 stays the owner of HTTP/2 state; this subclass changes only what gRPC needs
differently (GOAWAY, REFUSED_STREAM, malformed requests and oversized header
lists as stream errors), bounds what a peer can make a connection hold
(:mod:`.frame_buffer`, :mod:`.flood_guard`), skips per-frame trace formatting,
and remembers header work (:mod:`.hpack_memo`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

import h2.config
import h2.exceptions
from h2.connection import ConnectionState, H2Connection, _decode_headers
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    Event,
    InformationalResponseReceived,
    RequestReceived,
    ResponseReceived,
    TrailersReceived,
)
from h2.exceptions import NoAvailableStreamIDError, ProtocolError, StreamClosedError, StreamIDTooLowError
from h2.stream import H2Stream, StreamClosedBy, StreamState
from h2.windows import LARGEST_FLOW_CONTROL_WINDOW, WindowManager
from hyperframe.exceptions import InvalidPaddingError
from hyperframe.frame import (
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from transport.http2 import fast_path, fast_receive, unary_receive
from transport.http2.compact_settings import CompactSettings
from transport.http2.flood_guard import FloodGuard
from transport.http2.frame_buffer import BoundedFrameBuffer, header_block_limit
from transport.http2.header_memo import BlockMemo
from transport.http2.hpack_memo import MemoDecoder, MemoEncoder, validated
from transport.http2.stream_machine import GrpcStreamStateMachine

_new_machine = object.__new__

#: Bytes of the control answers the flood guard counts (9-byte frame header + payload).
_PING_ACK_BYTES = 17
_SETTINGS_ACK_BYTES = 9
_RST_STREAM_BYTES = 13
#: The events a header block becomes: replaced by HeaderListTooLarge when the list is over the limit.
_HEADER_EVENTS = (RequestReceived, ResponseReceived, TrailersReceived, InformationalResponseReceived)
#: :meth:`GrpcH2Connection.prune_closed_streams` looks again once the table holds this many streams at least.
PRUNE_MIN = 64
#: A DATA payload this large is handed on as a view of the received bytes, not copied out of them: the
#: frame buffer starts afresh after that read (copying only the unparsed rest), and the message decoder
#: holds the views until the message is whole (:class:`.MessageDecoder`, one copy in all).
HELD_PAYLOAD = 32 * 1024


#: :class:`ClosedStreams` drops its oldest entries this many at a time.
CLOSED_TRIM_BATCH = 4096


class ClosedStreams(dict[int, "StreamClosedBy | None"]):
    """How the closed streams out of the table closed (h2's ``_closed_streams``, which h2 keeps as a
    ``SizeLimitDict``: an OrderedDict that drops its oldest entry on every insertion once full).

    A plain dict (insertion-ordered too) that keeps the newest ``limit`` at least, as h2's does, and drops
    the oldest in batches of :data:`CLOSED_TRIM_BATCH`: at h2's limit of 65,536 every call used to pay an
    OrderedDict insertion and a ``popitem``. h2's own code adds through ``__setitem__``, the fast paths
    through ``GrpcH2Connection.closed_by``; both trim once the dict holds :attr:`trim_at`.
    """

    __slots__ = ("limit", "trim_at")

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.trim_at = limit + CLOSED_TRIM_BATCH

    def __setitem__(self, stream_id: int, how: StreamClosedBy | None) -> None:
        _dict_set(self, stream_id, how)
        if len(self) > self.trim_at:
            self.trim()

    def trim(self) -> None:
        """Drop the oldest entries down to :attr:`limit`."""
        for stream_id in list(itertools.islice(self, len(self) - self.limit)):
            del self[stream_id]


_dict_set = dict.__setitem__


class StreamRefused(Event):
    """We refused a new stream over SETTINGS_MAX_CONCURRENT_STREAMS (RST_STREAM REFUSED_STREAM)."""

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id


class MalformedRequest(Event):
    """A request's headers broke HTTP/2's rules; we reset that stream (PROTOCOL_ERROR)."""

    def __init__(self, stream_id: int, reason: str) -> None:
        self.stream_id = stream_id
        self.reason = reason


class HeaderListTooLarge(Event):
    """A header block decoded to a list over our SETTINGS_MAX_HEADER_LIST_SIZE (RFC 7541 §4.1 size).

    It replaces the RequestReceived / ResponseReceived / TrailersReceived event:
    only that stream fails (the whole block was decoded, so HPACK stays in step).
    """

    def __init__(self, stream_id: int, size: int, limit: int) -> None:
        self.stream_id = stream_id
        self.size = size
        self.limit = limit


class EnhanceYourCalm(Event):
    """The peer crossed a flood bound (:mod:`.flood_guard`): answer GOAWAY ENHANCE_YOUR_CALM with ``debug``.

    Nothing after the offending frame was processed, and nothing more will be.
    """

    def __init__(self, debug: bytes) -> None:
        self.debug = debug


class HeaderBlockStarted(Event):
    """A HEADERS frame without END_HEADERS began header block number ``block``; bound it in time."""

    def __init__(self, block: int) -> None:
        self.block = block


class _Calm(Exception):
    """Raised inside frame processing when a flood bound is crossed; ends that ``receive_data``."""

    def __init__(self, debug: bytes) -> None:
        super().__init__(debug)
        self.debug = debug


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

    It bounds what a peer can make it hold: frames over SETTINGS_MAX_FRAME_SIZE
    are refused from their header and header blocks are bounded in size
    (:mod:`.frame_buffer`); a header list over the limit fails only its stream
    (:class:`HeaderListTooLarge`); and with a :attr:`flood_guard` installed
    (the server does), PING and SETTINGS floods and answers piling up unread
    end in :class:`EnhanceYourCalm`.

    And it is quicker at the two exchanges every unary call makes: it
    remembers header work it has done before (:mod:`.hpack_memo`; the same
    blocks recur on every call, and HPACK plus validation are most of h2's
    cost per call), and sends a whole request or response in one step
    (:meth:`send_request`, :meth:`send_response`, :mod:`.fast_path`).
    """

    decoder: MemoDecoder
    #: Take the common frames without frame objects (:mod:`.fast_receive`); False: h2's path for every frame.
    fast_receive = True
    #: Report a DATA frame in the middle of a stream as :class:`.StreamData`, not as h2's ``DataReceived``
    #: (:mod:`.fast_receive`): for owners that handle both (ours do).
    stream_data = False
    #: Report a unary request (server) or response (client) whose frames arrive together as one
    #: :class:`.UnaryRequest` / :class:`.UnaryResponse` (:mod:`.unary_receive`): for owners that handle
    #: them (ours do). Needs :attr:`stream_data`.
    unary_exchanges = False

    def __init__(self, config: h2.config.H2Configuration | None = None) -> None:
        #: Unary exchanges under way, held as small records instead of h2 streams (with :attr:`unary_exchanges`),
        #: by stream id. The server's: a request taken whole (:mod:`.unary_receive`) and not yet answered,
        #: (inbound window size, outbound window size, bytes received). The client's: a request sent whole
        #: (:mod:`.fast_path`) whose answer has not come, (inbound window size, outbound window left,
        #: :authority, :method). Reading :attr:`streams` turns them into streams first.
        self._unanswered: dict[int, tuple[Any, ...]] = {}
        super().__init__(config)
        self._closed_streams: ClosedStreams = ClosedStreams(self.MAX_CLOSED_STREAMS)
        #: ``config.client_side``, read per frame (the config's options are descriptors).
        self.client_side: bool = self.config.client_side
        # The same settings, held compactly, with the per-stream ones as plain attributes (:mod:`.compact_settings`).
        self.local_settings: CompactSettings = CompactSettings.of(self.local_settings)
        self.remote_settings: CompactSettings = CompactSettings.of(self.remote_settings)
        self.encoder = MemoEncoder()
        self.decoder = MemoDecoder()
        self.decoder.max_header_list_size = self.DEFAULT_MAX_HEADER_LIST_SIZE
        self._validation_memo: dict[Any, list[Any]] = {}
        self.incoming_buffer: BoundedFrameBuffer = BoundedFrameBuffer(
            server=not self.client_side,
            max_header_block=lambda: header_block_limit(self.decoder.max_header_list_size),
        )
        #: The server's limits on control frames (None: none, as on the client).
        self.flood_guard: FloodGuard | None = None
        #: We sent HEADERS or DATA since the last PING (gRFC A8: such pings are never strikes).
        self._stream_frames_sent = False
        #: A flood bound was crossed: all further input is dropped.
        self.calmed = False
        #: The connection state in which streams run (what the fast paths require).
        self.open_state = ConnectionState.CLIENT_OPEN if self.client_side else ConnectionState.SERVER_OPEN
        #: Header blocks received before and what h2 made of them (:mod:`.header_memo`).
        self.block_memo = BlockMemo()
        #: Streams held at which :meth:`prune_closed_streams` next looks for closed ones.
        self._prune_at = PRUNE_MIN

    @property
    def streams(self) -> dict[int, H2Stream]:
        """h2's stream table. The unary requests held as records (:attr:`_unanswered`) become streams here
        first, in exactly the state h2 would hold them in, so whatever reads the table (h2's own code, on
        any frame or call that is not a unary exchange's) sees every stream. The fast paths use the table
        itself (``_streams``) and the records."""
        if self._unanswered:
            self._streams_from_records()
        return self._streams

    @streams.setter
    def streams(self, table: dict[int, H2Stream]) -> None:
        self._streams = table

    def _streams_from_records(self) -> None:
        """Every held unary exchange as the ``H2Stream`` h2 would hold: on the server HALF_CLOSED_REMOTE (the
        request's headers and its ending DATA received, nothing sent), on the client HALF_CLOSED_LOCAL (the
        request sent, nothing received); their windows as h2 would have counted them."""
        records, self._unanswered = self._unanswered, {}
        if self.client_side:  # a request sent whole: HALF_CLOSED_LOCAL, nothing received
            for stream_id, (inbound, outbound, authority, method) in records.items():
                stream = self._new_stream(stream_id, inbound, outbound)
                fast_path.request_sent(stream.state_machine)
                stream._authority, stream.request_method = authority, method
            return
        for stream_id, (inbound, outbound, received) in records.items():
            stream = self._new_stream(stream_id, inbound, outbound)
            machine = stream.state_machine
            machine.client = False  # (h2's request_received)
            machine.headers_received = True
            machine.state = StreamState.HALF_CLOSED_REMOTE
            stream._inbound_window_manager.current_window_size -= received
            stream._actual_content_length = received

    def hold_request_received(self, stream_id: int, received: int) -> None:
        """A new unary request taken whole (its state inputs checked by the caller): held as a record, as
        ``_begin_new_stream`` and the inputs of its frames would leave an ``H2Stream``."""
        inbound, outbound = self.local_settings.initial_window, self.remote_settings.initial_window
        assert inbound is not None and outbound is not None  # (always set: h2's defaults at least)
        self._unanswered[stream_id] = (inbound, outbound, received)
        self.highest_inbound_stream_id = stream_id

    def hold_request_sent(self, stream_id: int, outbound_left: int, authority: Any, method: Any) -> None:
        """A unary request sent whole (client side; the caller applied the connection's inputs): held as a
        record, as ``_begin_new_stream`` and the request's state inputs would leave an ``H2Stream``."""
        inbound = self.local_settings.initial_window
        assert inbound is not None  # (always set: h2's default at least)
        self._unanswered[stream_id] = (inbound, outbound_left, authority, method)
        self.highest_outbound_stream_id = stream_id

    def header_block_pending(self, block: int) -> bool:
        """Header block number ``block`` has begun and is still unfinished."""
        buffer = self.incoming_buffer
        return buffer.header_block_pending and buffer.header_blocks_started == block

    def receive_data(self, data: Any) -> list[Event]:
        """h2's ``receive_data`` (4.4.1) without its per-read trace formatting, plus the flood bounds,
        and the common frames of a gRPC call taken without building frame objects (:mod:`.fast_receive`)."""
        if self.calmed:
            return []
        events: list[Event] = []
        buffer = self.incoming_buffer
        started = buffer.header_blocks_started
        buffer.add_data(data)
        buffer.max_frame_size = self.max_inbound_frame_size
        try:
            self._receive_frames(buffer, events)
        except InvalidPaddingError as e:
            self._terminate_connection(ErrorCodes.PROTOCOL_ERROR)
            msg = "Received frame with invalid padding."
            raise ProtocolError(msg) from e
        except ProtocolError as e:
            self._terminate_connection(e.error_code)
            raise
        except _Calm as e:
            self.calmed = True
            buffer.discard()
            events.append(EnhanceYourCalm(e.debug))
            return events
        if buffer.header_blocks_started != started and buffer.header_block_pending:
            events.append(HeaderBlockStarted(buffer.header_blocks_started))
        return events

    def _receive_frames(self, buffer: BoundedFrameBuffer, events: list[Event]) -> None:
        """Every whole frame buffered, in order: a unary request's or response's frames together in one step
        (:mod:`.unary_receive`), each other DATA or HEADERS frame the fast path takes (:mod:`.fast_receive`),
        any other through h2's frame buffer and dispatch, one at a time."""
        max_frame = buffer.max_frame_size
        data_frame, headers_frame = fast_receive.data_frame, fast_receive.headers_frame
        exchange = None  # a whole unary request or response in one step, when the owner takes them
        if self.unary_exchanges:
            exchange = unary_receive.response if self.client_side else unary_receive.request
        unpack_header = fast_path.FRAME_HEADER.unpack_from
        while True:
            data = buffer._data
            if self.fast_receive and not buffer._preamble_len and not buffer._headers_buffer:
                pos, n = 0, len(data)
                view = memoryview(data)
                held = False  # a payload went out as a view of ``data``: it must never change again
                try:
                    while n - pos >= 9:
                        high, low, kind, flags, stream_id = unpack_header(view, pos)
                        length = (high << 8) | low
                        end = pos + 9 + length
                        if end > n or length > max_frame:
                            break
                        stream_id &= 0x7FFFFFFF
                        if kind == fast_path.DATA:
                            if length >= HELD_PAYLOAD:
                                payload: bytes | memoryview = view[pos + 9 : end]
                                held = True
                            else:
                                payload = bytes(view[pos + 9 : end])
                            taken = data_frame(self, stream_id, flags, payload, events)
                        elif kind == fast_path.HEADERS:
                            if exchange is not None:
                                exchange_end = exchange(self, view, (pos, end, n, max_frame), stream_id, flags, events)
                                if exchange_end:
                                    pos = exchange_end
                                    continue
                            taken = headers_frame(self, stream_id, flags, bytes(view[pos + 9 : end]), events)
                        else:
                            taken = False
                        if not taken:
                            break
                        pos = end
                finally:
                    view.release()
                    if held:  # what is left goes on in a new buffer; the views keep the old one alive, unchanged
                        buffer._data = data[pos:]
                if pos and not held:
                    del data[:pos]
            try:
                frame = next(buffer)
            except StopIteration:
                return
            events.extend(self._receive_frame(frame))

    def send_headers(
        self,
        stream_id: int,
        headers: Iterable[Any],
        end_stream: bool = False,
        priority_weight: int | None = None,
        priority_depends_on: int | None = None,
        priority_exclusive: bool | None = None,
    ) -> None:
        self._stream_frames_sent = True
        super().send_headers(stream_id, headers, end_stream, priority_weight, priority_depends_on, priority_exclusive)

    def send_data(
        self, stream_id: int, data: bytes | memoryview, end_stream: bool = False, pad_length: Any = None
    ) -> None:
        self._stream_frames_sent = True
        super().send_data(stream_id, data, end_stream, pad_length)

    def _begin_new_stream(self, stream_id: int, allowed_ids: Any) -> H2Stream:
        """h2's ``_begin_new_stream`` (4.4.1), building our :class:`GrpcH2Stream` (h2 offers no factory)
        and without its three debug-log calls (their arguments were built for every stream)."""
        outbound = stream_id % 2 == int(self.client_side)
        highest_stream_id = self.highest_outbound_stream_id if outbound else self.highest_inbound_stream_id
        if stream_id <= highest_stream_id:
            raise StreamIDTooLowError(stream_id, highest_stream_id)
        if (stream_id % 2) != int(allowed_ids):
            msg = "Invalid stream ID for peer."
            raise ProtocolError(msg)
        stream = self._new_stream(
            stream_id,
            self.local_settings.initial_window,  # type: ignore[arg-type]  # (always set)
            self.remote_settings.initial_window,  # type: ignore[arg-type]
        )
        if outbound:
            self.highest_outbound_stream_id = stream_id
        else:
            self.highest_inbound_stream_id = stream_id
        return stream

    def _new_stream(self, stream_id: int, inbound_window_size: int, outbound_window_size: int) -> GrpcH2Stream:
        """A new IDLE stream in the table, as h2's ``_begin_new_stream`` makes it."""
        stream = GrpcH2Stream(
            stream_id,
            config=self.config,
            inbound_window_size=inbound_window_size,
            outbound_window_size=outbound_window_size,
        )
        stream.validation_memo = self._validation_memo
        stream.max_outbound_frame_size = self.max_outbound_frame_size
        self._streams[stream_id] = stream
        return stream

    def get_next_available_stream_id(self) -> int:
        """h2's (4.4.1) without its debug-log call per stream."""
        highest = self.highest_outbound_stream_id
        next_stream_id = highest + 2 if highest else 1 if self.client_side else 2
        if next_stream_id > self.HIGHEST_ALLOWED_STREAM_ID:
            msg = "Exhausted allowed stream IDs"
            raise NoAvailableStreamIDError(msg)
        return next_stream_id

    #: ``send_request(stream_id, headers, data)``: open a stream with ``headers`` and end it with ``data`` in one
    #: step; False, with nothing changed, when only h2's general path can (:func:`.fast_path.send_request`).
    send_request = fast_path.send_request
    #: ``send_response(stream_id, headers, data, trailers)``: answer an ended request in one step; False, with
    #: nothing changed, when only h2's general path can (:func:`.fast_path.send_response`).
    send_response = fast_path.send_response

    def send_goaway(self, last_stream_id: int, error_code: int = ErrorCodes.NO_ERROR, debug: bytes = b"") -> None:
        """Queue a GOAWAY without closing the streams at or below ``last_stream_id``."""
        frame = GoAwayFrame(0, last_stream_id=last_stream_id, error_code=error_code, additional_data=debug)
        self._prepare_for_sending([frame])

    def acknowledge_connection_data(self, size: int) -> None:
        """Give ``size`` received bytes back to the connection window (on arrival)."""
        increment = self._inbound_flow_control_window_manager.process_bytes(size)
        if increment:
            self._prepare_for_sending([WindowUpdateFrame(0, window_increment=increment)])

    def acknowledge_stream_data(self, stream_id: int, size: int) -> None:
        """Give ``size`` received bytes back to ``stream_id``'s window (when its consumer took them)."""
        stream = self.streams.get(stream_id)
        if stream is not None and stream.open:
            self._prepare_for_sending(stream.acknowledge_received_data(size))

    # --- the stream table ---------------------------------------------------

    def prune_closed_streams(self) -> None:
        """Drop closed streams from the table, as h2's open-stream count does, but amortized.

        h2 counts open streams by scanning them all (and drops the closed ones as
        it goes) whenever one opens: O(streams) per call. The fast paths drop a
        stream as soon as it closes (:meth:`forget_if_closed`) and count without
        a scan while the table is below the concurrency limit; a stream closed
        any other way (a reset) waits here, and this scan runs only once the table
        has doubled since the last one, so the table stays within twice the open
        streams (plus :data:`PRUNE_MIN`) at O(1) a stream.
        """
        if len(self._streams) >= self._prune_at:
            self._open_streams(0)
            self._prune_at = 2 * len(self._streams) + PRUNE_MIN

    def forget_if_closed(self, stream_id: int, stream: H2Stream) -> None:
        """``stream`` just ended on one side: if it is closed, move it out of the table as h2's scan would."""
        machine = stream.state_machine
        if machine.state is StreamState.CLOSED:  # (stream.closed, stream.closed_by: h2's properties, inlined)
            del self._streams[stream_id]
            self.closed_by(stream_id, machine.stream_closed_by)

    def closed_by(self, stream_id: int, how: StreamClosedBy | None) -> None:
        """Remember how a stream out of the table closed, as h2 does (for the frames that may still come)."""
        closed = self._closed_streams
        _dict_set(closed, stream_id, how)  # (ClosedStreams.__setitem__ without its Python call)
        if len(closed) > closed.trim_at:
            closed.trim()

    # --- header blocks ----------------------------------------------------

    def receive_request_headers(self, stream: H2Stream, headers: Any, end_stream: bool) -> list[Event]:
        """A new stream's request headers into h2's stream state machine; a malformed request
        is a stream error (RFC 9113 §8.1.1): that stream is reset (:class:`MalformedRequest`)."""
        try:
            _, events = stream.receive_headers(headers, end_stream, self.config.header_encoding)
        except h2.exceptions.ProtocolError as exc:
            return [self._malformed_request(stream, exc)]
        return events

    def _malformed_request(self, stream: H2Stream | None, exc: h2.exceptions.ProtocolError) -> MalformedRequest:
        """A request's headers broke HTTP/2's rules: a stream error (RFC 9113 §8.1.1), that stream reset;
        re-raises ``exc`` when it is a connection error (the HPACK state or the stream table is not trustworthy)."""
        if (
            self.config.client_side
            or stream is None
            or stream.closed
            or isinstance(exc, h2.exceptions.DenialOfServiceError)
            or str(exc).startswith("Error decoding header block")
        ):
            raise exc
        self.reset_stream(stream.stream_id, ErrorCodes.PROTOCOL_ERROR)
        return MalformedRequest(stream.stream_id, str(exc))

    def check_header_list_size(self, stream_id: int, events: list[Event]) -> list[Event]:
        """``events`` of the header block decoded last, its header event replaced by
        :class:`HeaderListTooLarge` when the list is over our limit."""
        decoder = self.decoder
        if decoder.header_list_size > decoder.max_header_list_size:
            too_large = HeaderListTooLarge(stream_id, decoder.header_list_size, decoder.max_header_list_size)
            return [too_large if isinstance(e, _HEADER_EVENTS) else e for e in events]
        return events

    def _receive_frame(self, frame: Frame) -> list[Event]:
        # h2's own version formats repr(frame) for a trace log on every frame, even
        # with logging off; this is the same logic without it (h2 4.4.1).
        events: list[Event]
        try:
            frames, events = self._frame_dispatch_table[frame.__class__](frame)
        except StreamClosedError as e:
            if self._closed_streams.get(e.stream_id) is StreamClosedBy.SEND_RST_STREAM:
                # We reset it: frames the peer sent before it saw our RST_STREAM are ignored
                # (RFC 9113 §5.4.2). h2 answers each with RST_STREAM(STREAM_CLOSED), which a
                # grpc peer that already has our trailers reports as an INTERNAL error.
                events = e._events
            elif self._stream_is_closed_by_reset(e.stream_id):
                self._control_answer(_RST_STREAM_BYTES)
                f = RstStreamFrame(e.stream_id)
                f.error_code = e.error_code
                self._prepare_for_sending([f])
                events = e._events
            else:
                raise
        except StreamIDTooLowError as e:
            if self._stream_is_closed_by_reset(e.stream_id):
                self._control_answer(_RST_STREAM_BYTES)
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

    def _control_answer(self, nbytes: int) -> None:
        """We are about to queue a control answer: raise _Calm if the peer lets them pile up."""
        guard = self.flood_guard
        if guard is not None:
            debug = guard.control_answer(nbytes)
            if debug is not None:
                raise _Calm(debug)

    def _count_active_streams(self) -> int:
        return self.open_inbound_streams

    def _receive_ping_frame(self, frame: PingFrame) -> tuple[list[Frame], list[Event]]:
        guard = self.flood_guard
        if guard is not None and "ACK" not in frame.flags:
            sent, self._stream_frames_sent = self._stream_frames_sent, False
            debug = guard.ping(sent, self._count_active_streams)
            if debug is not None:
                raise _Calm(debug)
            self._control_answer(_PING_ACK_BYTES)
        result: tuple[list[Frame], list[Event]] = super()._receive_ping_frame(frame)
        return result

    def _receive_settings_frame(self, frame: SettingsFrame) -> tuple[list[Frame], list[Event]]:
        guard = self.flood_guard
        if guard is not None and "ACK" not in frame.flags:
            debug = guard.settings()
            if debug is not None:
                raise _Calm(debug)
            self._control_answer(_SETTINGS_ACK_BYTES)
        result: tuple[list[Frame], list[Event]] = super()._receive_settings_frame(frame)
        return result

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
            self._control_answer(_RST_STREAM_BYTES)
            self.highest_inbound_stream_id = frame.stream_id
            self._closed_streams[frame.stream_id] = StreamClosedBy.SEND_RST_STREAM
            rst = RstStreamFrame(frame.stream_id)
            rst.error_code = ErrorCodes.REFUSED_STREAM
            return [rst], [StreamRefused(frame.stream_id)]
        try:
            frames, events = super()._receive_headers_frame(frame)
        except h2.exceptions.ProtocolError as exc:
            return [], [self._malformed_request(self.streams.get(frame.stream_id), exc)]
        return frames, self.check_header_list_size(frame.stream_id, events)


class GrpcH2Stream(H2Stream):
    """``H2Stream`` whose inbound header validation is remembered per connection, on the quicker
    state machine (:mod:`.stream_machine`)."""

    validation_memo: dict[Any, list[Any]]

    def __init__(
        self, stream_id: int, config: h2.config.H2Configuration, inbound_window_size: int, outbound_window_size: int
    ) -> None:
        # h2's H2Stream.__init__ and H2StreamStateMachine.__init__ (4.4.1, pinned), inlined: the same attributes
        # with the same values (``test_stream_machine`` compares them), on the quicker state machine.
        machine = self.state_machine = _new_machine(GrpcStreamStateMachine)
        machine.state = StreamState.IDLE
        machine.stream_id = stream_id
        machine.client = machine.headers_sent = machine.trailers_sent = None
        machine.headers_received = machine.trailers_received = machine.stream_closed_by = None
        self.stream_id = stream_id
        self.max_outbound_frame_size = None
        self.request_method = None
        self.outbound_flow_control_window = outbound_window_size
        # h2's WindowManager(inbound_window_size), inlined likewise.
        assert inbound_window_size <= LARGEST_FLOW_CONTROL_WINDOW
        window = self._inbound_window_manager = _new_machine(WindowManager)
        window.max_window_size = window.current_window_size = inbound_window_size
        window._bytes_processed = 0
        self._expected_content_length = None
        self._actual_content_length = 0
        self._authority = None
        self.config = config

    def _process_received_headers(self, headers: Any, header_validation_flags: Any, header_encoding: Any) -> Any:
        process = super()._process_received_headers
        return validated(
            self.validation_memo,
            headers,
            (header_validation_flags, header_encoding),
            lambda hs: process(hs, header_validation_flags, header_encoding),
        )
