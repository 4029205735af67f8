"""A unary exchange's incoming frames as one event: a whole request, or a whole response, in one step.

:mod:`.fast_receive` takes each common frame without h2's frame objects, but
still makes h2's events, one to three per frame, each dispatched to its own
handler: a unary request is ``RequestReceived``, ``DataReceived`` and
``StreamEnded``; a unary response ``ResponseReceived``, a ``StreamData``,
``TrailersReceived`` and ``StreamEnded``. Their frames nearly always arrive
together in one read, because the peer wrote them together. When they do, and
each header block is one the connection has seen before (:mod:`.header_memo`),
the whole exchange is taken here in one step and reported as one event:

- :func:`request` (server): HEADERS (END_HEADERS) opening a stream, then one
  DATA frame with END_STREAM: a :class:`UnaryRequest`;
- :func:`response` (client): response HEADERS, one DATA frame, trailers
  HEADERS (END_STREAM): a :class:`UnaryResponse`.

While a unary exchange runs it needs no h2 stream at all: the server holds a
request taken whole as a small record until :func:`.fast_path.send_response`
answers it, and the client holds a request :func:`.fast_path.send_request` sent
whole as a record until :func:`response` takes its answer. Whatever reads the
stream table (``GrpcH2Connection.streams``: h2's own code, for any other frame
or call on the connection) first turns the records into the ``H2Stream`` objects
h2 would hold, so nothing else sees a difference.

The state left behind is exactly what those frames leave through
:mod:`.fast_receive` and h2 (stream states, windows, content length, header
list size, the closed-streams record), and each event's :meth:`h2_events` are
the events h2 would have reported: an owner that wants them one by one (an
unusual call) dispatches those. ``test_fast_receive`` compares both with h2's
general path. Anything else (a block not remembered, padding, a frame split
across reads, a window or limit crossed, a content-length) returns 0 with
nothing changed, and the frames go one by one as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from h2.connection import ConnectionInputs, ConnectionState
from h2.events import DataReceived, Event, RequestReceived, ResponseReceived, StreamEnded, TrailersReceived
from h2.stream import StreamClosedBy, StreamState

from transport.http2.fast_path import DATA, END_HEADERS, END_STREAM, FRAME_HEADER, HEADERS
from transport.http2.fast_receive import StreamData

if TYPE_CHECKING:
    from transport.http2.connection import GrpcH2Connection

#: Where a HEADERS frame is in the read: its start, its end, the read's length, and the largest frame allowed.
Frame = tuple[int, int, int, int]

_unpack_header = FRAME_HEADER.unpack_from
_TRAILERS_FLAGS = END_HEADERS | END_STREAM
_HALF_CLOSED_LOCAL = StreamState.HALF_CLOSED_LOCAL
_RECV_END_STREAM = StreamClosedBy.RECV_END_STREAM
#: A DATA payload at least this large goes on as a view (``HELD_PAYLOAD``): left to the frame-by-frame path.
_VIEW_PAYLOAD = 32 * 1024


class UnaryRequest(Event):
    """A whole unary request: its headers opened the stream, and one DATA frame ended it (:func:`request`).

    ``headers`` as in ``RequestReceived`` but a tuple (the memo's own: read, never changed); ``taken`` is the
    header memo's record they came from (the same record for the same headers, for the owner to key its
    routing by); ``data`` the DATA payload (bytes).
    """

    __slots__ = ("data", "flow_controlled_length", "headers", "stream_id", "taken")

    def __init__(self, stream_id: int, headers: tuple[Any, ...], taken: Any, data: bytes) -> None:
        self.stream_id = stream_id
        self.headers = headers
        self.taken = taken
        self.data = data
        self.flow_controlled_length = len(data)

    def h2_events(self) -> list[Event]:
        """``RequestReceived``, ``DataReceived`` (ending the stream) and ``StreamEnded``: what h2 reports."""
        stream_id = self.stream_id
        request = RequestReceived(stream_id=stream_id)
        request.headers = list(self.headers)
        request.taken = self.taken  # type: ignore[attr-defined]  # (as header_memo.apply sets it)
        received = DataReceived(stream_id=stream_id)
        received.data, received.flow_controlled_length = self.data, self.flow_controlled_length
        received.stream_ended = ended = StreamEnded(stream_id=stream_id)
        return [request, received, ended]


class UnaryResponse(Event):
    """A whole unary response: headers, one DATA frame, trailers ending the stream (:func:`response`).

    ``headers`` and ``trailers`` as in ``ResponseReceived`` / ``TrailersReceived``; ``taken`` the header
    memo's record of the headers; ``data`` the DATA payload (bytes).
    """

    __slots__ = ("data", "flow_controlled_length", "headers", "stream_id", "taken", "trailers")

    def __init__(self, stream_id: int, headers: list[Any], taken: Any, data: bytes, trailers: list[Any]) -> None:
        self.stream_id = stream_id
        self.headers = headers
        self.taken = taken
        self.data = data
        self.flow_controlled_length = len(data)
        self.trailers = trailers

    def h2_events(self) -> list[Event]:
        """``ResponseReceived``, a ``StreamData`` (the connection's ``stream_data``), ``TrailersReceived``
        (ending the stream) and ``StreamEnded``: what the frame-by-frame path reports."""
        stream_id = self.stream_id
        response = ResponseReceived(stream_id=stream_id)
        response.headers = self.headers
        response.taken = self.taken  # type: ignore[attr-defined]
        trailers = TrailersReceived(stream_id=stream_id)
        trailers.headers = self.trailers
        trailers.stream_ended = ended = StreamEnded(stream_id=stream_id)
        return [response, StreamData(stream_id, self.data, self.flow_controlled_length), trailers, ended]


def _data_frame_after(view: memoryview, at: int, n: int, stream_id: int, flags: int, max_frame: int) -> int:
    """Where the DATA frame at ``at`` ends, if it is whole, unpadded, on ``stream_id``, with exactly ``flags``
    and small (no view held); else 0."""
    if n - at < 9:
        return 0
    high, low, kind, data_flags, data_id = _unpack_header(view, at)
    size = (high << 8) | low
    end: int = at + 9 + size
    if kind != DATA or data_flags != flags or data_id & 0x7FFFFFFF != stream_id or end > n:
        return 0
    if size > max_frame or size >= _VIEW_PAYLOAD:
        return 0
    return end


def request(
    conn: GrpcH2Connection, view: memoryview, at: Frame, stream_id: int, flags: int, events: list[Event]
) -> int:
    """The HEADERS frame ``at`` and the DATA frame after it, as one :class:`UnaryRequest` (server side);
    where they end, or 0 with nothing changed."""
    pos, end, n, max_frame = at
    if flags != END_HEADERS:
        return 0
    data_end = _data_frame_after(view, end, n, stream_id, END_STREAM, max_frame)
    if not data_end:
        return 0
    state = conn.state_machine.state
    if state is not conn.open_state and state is not ConnectionState.IDLE:
        return 0
    if stream_id % 2 == 0 or stream_id <= conn.highest_inbound_stream_id:  # (so neither a stream nor a record)
        return 0
    streams = conn._streams
    if len(streams) >= conn._prune_at:
        conn.prune_closed_streams()  # (changes no state h2 keeps: the closed streams it would drop anyway)
    local = conn.local_settings
    if len(streams) + len(conn._unanswered) >= local.max_streams:  # (open streams ≤ streams and records held)
        return 0
    hit = conn.block_memo.lookup(conn, (bytes(view[pos + 9 : end]), False, False, False))
    decoder = conn.decoder
    size = data_end - end - 9
    window = conn._inbound_flow_control_window_manager
    if (
        hit is None
        or hit.event is not RequestReceived
        or hit.content_length is not None
        or hit.list_size > decoder.max_header_list_size
        or size > window.current_window_size
        or size > local.initial_window  # type: ignore[operator]  # (always set)
    ):
        return 0
    # Committed: h2's inputs for both frames (header_memo.apply, fast_receive.data_frame), in one step. The
    # stream is held as a record until it is answered (fast_path.send_response) or anything reads the table.
    decoder.header_list_size = hit.list_size
    if state is ConnectionState.IDLE:
        conn.state_machine.process_input(ConnectionInputs.RECV_HEADERS)  # the first request: IDLE -> SERVER_OPEN
    conn.hold_request_received(stream_id, size)
    window.current_window_size -= size
    events.append(UnaryRequest(stream_id, hit.headers, hit, bytes(view[end + 9 : data_end])))
    return data_end


def response(
    conn: GrpcH2Connection, view: memoryview, at: Frame, stream_id: int, flags: int, events: list[Event]
) -> int:
    """The response HEADERS frame ``at``, the DATA frame and the trailers after it, as one
    :class:`UnaryResponse` (client side); where they end, or 0 with nothing changed."""
    pos, end, n, max_frame = at
    if flags != END_HEADERS:
        return 0
    data_end = _data_frame_after(view, end, n, stream_id, 0, max_frame)
    if not data_end or n - data_end < 9:
        return 0
    high, low, kind, trailer_flags, trailer_id = _unpack_header(view, data_end)
    trailers_end: int = data_end + 9 + ((high << 8) | low)
    if kind != HEADERS or trailer_flags != _TRAILERS_FLAGS or trailer_id & 0x7FFFFFFF != stream_id:
        return 0
    if trailers_end > n or trailers_end - data_end - 9 > max_frame:
        return 0
    if conn.state_machine.state is not conn.open_state or not conn.stream_data:
        return 0
    record = conn._unanswered.get(stream_id)  # a request sent whole, held as a record (fast_path.send_request)
    stream = None
    if record is not None:
        inbound, method = record[0], record[3]
    else:
        stream = conn._streams.get(stream_id)
        if stream is None:
            return 0
        machine = stream.state_machine
        if machine.state is not _HALF_CLOSED_LOCAL or machine.headers_received or machine.client is not True:
            return 0
        inbound, method = stream._inbound_window_manager.current_window_size, stream.request_method
    head = method == b"HEAD"
    memo, decoder = conn.block_memo, conn.decoder
    first = memo.lookup(conn, (bytes(view[pos + 9 : end]), False, False, head))
    if first is None or first.event is not ResponseReceived or first.content_length is not None:
        return 0
    last = memo.lookup(conn, (bytes(view[data_end + 9 : trailers_end]), True, True, head))
    size = data_end - end - 9
    window = conn._inbound_flow_control_window_manager
    limit = decoder.max_header_list_size
    if (
        last is None
        or last.event is not TrailersReceived
        or last.content_length is not None
        or first.list_size > limit
        or last.list_size > limit
        or size > window.current_window_size
        or size > inbound
    ):
        return 0
    # Committed: the inputs of all three frames in one step (RECV_HEADERS, RECV_DATA, RECV_HEADERS,
    # RECV_END_STREAM from HALF_CLOSED_LOCAL: h2's response_received, trailers_received, stream_ended).
    decoder.header_list_size = last.list_size
    window.current_window_size -= size
    if stream is None:  # the record: what those inputs and forget_if_closed leave of a stream, directly
        del conn._unanswered[stream_id]
        conn.closed_by(stream_id, _RECV_END_STREAM)
    else:
        machine.headers_received = machine.trailers_received = True
        machine.stream_closed_by = _RECV_END_STREAM
        machine.state = StreamState.CLOSED
        stream._inbound_window_manager.current_window_size -= size
        stream._actual_content_length += size
        conn.forget_if_closed(stream_id, stream)
    data = bytes(view[end + 9 : data_end])
    events.append(UnaryResponse(stream_id, list(first.headers), first, data, list(last.headers)))
    return trailers_end
