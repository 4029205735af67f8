"""A unary exchange's incoming frames in one step: our frame parsing, h2's state transitions.

The receive-side twin of :mod:`.fast_path`. For every frame h2 builds a
hyperframe object (a flag *set*, padding and priority fields, a copied body),
runs it through its frame buffer and a dispatch table, and counts the open
streams by scanning all of them when one opens. A gRPC call receives the same
few shapes every time:

- the server: request HEADERS (END_HEADERS) opening a stream, then DATA (END_STREAM);
- the client: response HEADERS, DATA, then trailers HEADERS (END_STREAM).

:func:`data_frame` and :func:`headers_frame` take such a frame straight from the
received bytes and apply what h2 would: the connection's and the stream's state
machine inputs (``H2Stream.receive_data`` / ``receive_headers``, so events,
header validation and content-length checks are h2's own), the same
flow-control accounting and the same HPACK decoder. Each returns False, having
changed nothing, when the frame is not one of those shapes in the state it
expects (padding, priority, CONTINUATION, an unknown or closed stream, a
connection not yet open, a new stream at the concurrency limit); h2's general
path then takes that frame.

With :attr:`.GrpcH2Connection.stream_data` set (our client and server set it), a
DATA frame in the middle of a stream is reported as a :class:`.StreamData`
instead of h2's ``DataReceived``: the same accounting, in the same place among
the events, without the stream state machine input and h2's event that every
streamed message paid for. A stream's last DATA frame makes h2's events, its
state inputs applied in one step (``GrpcStreamStateMachine.end_received``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from h2.connection import AllowedStreamIDs, ConnectionInputs, ConnectionState, _decode_headers
from h2.events import DataReceived, Event
from h2.exceptions import FlowControlError
from h2.stream import StreamState

from transport.http2.fast_path import END_HEADERS, END_STREAM, PADDED, PRIORITY

if TYPE_CHECKING:
    from transport.http2.connection import GrpcH2Connection


class StreamData(Event):
    """A DATA frame in the middle of a stream, as this module reports it (:attr:`.GrpcH2Connection.stream_data`).

    What h2's ``DataReceived`` says of such a frame, made without running h2's stream state machine for it.
    ``data`` is bytes, or for a large frame a view of the received bytes that nothing changes again.
    """

    __slots__ = ("data", "flow_controlled_length", "stream_id")

    def __init__(self, stream_id: int, data: bytes | memoryview, flow_controlled_length: int) -> None:
        self.stream_id = stream_id
        self.data = data
        self.flow_controlled_length = flow_controlled_length


#: h2's message when a window goes below 0.
_SHRUNK = "Flow control window shrunk below 0"
#: Stream states in which the peer may still send (RECV_DATA / RECV_HEADERS are valid).
_PEER_SENDING = (StreamState.OPEN, StreamState.HALF_CLOSED_LOCAL)


def data_frame(
    conn: GrpcH2Connection, stream_id: int, flags: int, payload: bytes | memoryview, events: list[Event]
) -> bool:
    """An unpadded DATA frame on an open stream: h2's ``_receive_data_frame`` without the frame object.

    ``payload`` is bytes, or a view of received bytes that nothing changes again (a large frame's)."""
    if flags & PADDED:
        return False
    stream = conn._streams.get(stream_id)
    if stream is None and stream_id in conn._unanswered:
        stream = conn.streams.get(stream_id)  # (a unary exchange held as a record: a stream from here on)
    if stream is None or stream.state_machine.state not in _PEER_SENDING:
        return False
    if conn.state_machine.state is not conn.open_state:
        return False
    # (OPEN, RECV_DATA) leaves the connection's state as it is, with no event: nothing to apply.
    size = len(payload)
    window = conn._inbound_flow_control_window_manager  # (its window_consumed, inlined: the same error)
    window.current_window_size -= size
    if window.current_window_size < 0:
        raise FlowControlError(_SHRUNK)
    machine = stream.state_machine
    end_stream = bool(flags & END_STREAM)
    if not machine.headers_received or not (conn.stream_data or end_stream):
        # h2's own (it refuses data before headers; a DataReceived mid-stream for owners that want one).
        # (h2 only measures the payload: a view goes into its DataReceived as it is, for our handlers.)
        _, stream_events = stream.receive_data(payload, end_stream, size)  # type: ignore[arg-type]
        events += stream_events
        if end_stream:
            conn.forget_if_closed(stream_id, stream)
        return True
    # h2's H2Stream.receive_data, in one step: (OPEN or HALF_CLOSED_LOCAL, RECV_DATA) keeps the state and
    # makes only the event; then the windows, the body length (h2's check), and END_STREAM's input.
    window = stream._inbound_window_manager
    window.current_window_size -= size
    if window.current_window_size < 0:
        raise FlowControlError(_SHRUNK)
    stream._actual_content_length += size  # h2's _track_content_length: the count, and its check if a length was set
    if stream._expected_content_length is not None:
        stream._track_content_length(0, end_stream)
    if not end_stream:
        events.append(StreamData(stream_id, payload, size))
        return True
    received = DataReceived(stream_id=stream_id)
    received.data, received.flow_controlled_length = payload, size  # type: ignore[assignment]
    received.stream_ended = ended = machine.end_received()  # type: ignore[attr-defined]  # GrpcStreamStateMachine
    events += (received, ended)
    conn.forget_if_closed(stream_id, stream)
    return True


def headers_frame(conn: GrpcH2Connection, stream_id: int, flags: int, block: bytes, events: list[Event]) -> bool:
    """A whole header block (END_HEADERS, no padding or priority): a new request on the server,
    response headers or trailers on the client; h2's ``_receive_headers_frame`` without the frame object."""
    if flags & (PADDED | PRIORITY) or not flags & END_HEADERS:
        return False
    state = conn.state_machine.state
    stream = conn._streams.get(stream_id)
    if stream is None and stream_id in conn._unanswered:
        stream = conn.streams.get(stream_id)  # (a unary exchange held as a record: a stream from here on)
    if conn.client_side:
        if state is not conn.open_state or stream is None or stream.state_machine.state not in _PEER_SENDING:
            return False
    else:
        opens = state is conn.open_state or state is ConnectionState.IDLE
        if not opens or stream is not None or stream_id % 2 == 0 or stream_id <= conn.highest_inbound_stream_id:
            return False
        if len(conn._streams) >= conn._prune_at:
            conn.prune_closed_streams()
        # Open streams ≤ streams and records held: below the limit no count is needed (at it, h2's path counts
        # and refuses).
        if len(conn._streams) + len(conn._unanswered) >= conn.local_settings.max_streams:
            return False
    # Committed: from here on this is the frame's only processing (the HPACK table moves on decoding).
    end_stream = bool(flags & END_STREAM)
    memo = conn.block_memo
    if stream is None:
        key = (block, end_stream, False, False)
    else:
        key = (block, end_stream, bool(stream.state_machine.headers_received), stream.request_method == b"HEAD")
    hit = memo.lookup(conn, key)
    version = conn.decoder.header_table.version
    headers = _decode_headers(conn.decoder, block) if hit is None else None  # as h2: before the stream opens
    if state is ConnectionState.IDLE:
        conn.state_machine.process_input(ConnectionInputs.RECV_HEADERS)  # the first request: IDLE -> SERVER_OPEN
    # (OPEN, RECV_HEADERS) leaves the connection's state as it is, with no event: nothing to apply.
    if stream is None:
        stream = conn._begin_new_stream(stream_id, AllowedStreamIDs.ODD)
    if hit is not None:
        stream_events = memo.apply(conn, stream, hit, end_stream)
    else:
        assert headers is not None
        if conn.client_side:
            _, stream_events = stream.receive_headers(headers, end_stream, conn.config.header_encoding)
        else:
            stream_events = conn.receive_request_headers(stream, headers, end_stream)
        memo.remember(conn, key, version, stream, stream_events)
    decoder = conn.decoder
    if decoder.header_list_size > decoder.max_header_list_size:  # (check_header_list_size's test, inlined)
        stream_events = conn.check_header_list_size(stream_id, stream_events)
    events += stream_events
    if end_stream:
        conn.forget_if_closed(stream_id, stream)
    return True
