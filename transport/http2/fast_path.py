"""A unary exchange's frames in one step: h2's state transitions, our own frame bytes.

h2 builds each outgoing frame as an object (flags as a set, padding and
priority fields, a serializer), and runs the connection and stream state
machines once per frame, through generic code written for every kind of
HTTP/2 use. A unary gRPC call always sends the same shapes:

- the client: request HEADERS + one DATA frame with END_STREAM, on a new stream;
- the server: response HEADERS + one DATA frame + trailers with END_STREAM.

:func:`send_request` and :func:`send_response` send those shapes with what
h2's stream-state inputs would do (from the only state each starts in: a new
stream, or an ended request not yet answered; anything else is refused as h2
would refuse it, or left to h2), the same flow-control accounting and the same
HPACK encoder, but write the 9-byte frame headers themselves. The inputs of a
whole request or answer are applied in one step (:func:`request_sent`,
:func:`response_sent`), checked against h2's own in ``test_fast_path``; when the
connection's owner takes unary exchanges whole (:mod:`.unary_receive`), the
exchange is held as a record rather than an h2 stream. Each returns False, having changed nothing, when its preconditions do not hold
(connection not open, message larger than a frame or the window, too many
streams); the caller then takes h2's general path.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING

from h2.connection import AllowedStreamIDs, ConnectionInputs, ConnectionState
from h2.stream import H2StreamStateMachine, StreamClosedBy, StreamState
from h2.utilities import authority_from_headers, extract_method_header

if TYPE_CHECKING:
    from transport.http2.connection import GrpcH2Connection

Headers = list[tuple[bytes, bytes]]
#: A header block to send: a list, or a tuple its owner keeps unchanged (the encoder remembers it by identity).
Block = Sequence[tuple[bytes, bytes]]

#: Frame types and flags (RFC 9113 §6), for the frames our fast paths write and read.
DATA, HEADERS, CONTINUATION = 0x0, 0x1, 0x9
END_STREAM, END_HEADERS, PADDED, PRIORITY = 0x1, 0x4, 0x8, 0x20

# 24-bit length (as 16 + 8 bits), type, flags, 31-bit stream id.
FRAME_HEADER = struct.Struct(">HBBBL")

_CLIENT_CAN_OPEN = (ConnectionState.IDLE, ConnectionState.CLIENT_OPEN)


def request_sent(machine: H2StreamStateMachine) -> None:
    """What h2's inputs SEND_HEADERS, SEND_DATA, SEND_END_STREAM do to a new (IDLE) stream's machine, in one step:
    ``request_sent``'s flags (its event is internal), then HALF_CLOSED_LOCAL (the other two have no callback).
    ``test_fast_path`` checks it against h2's own inputs."""
    machine.client = True
    machine.headers_sent = True
    machine.state = StreamState.HALF_CLOSED_LOCAL


def response_sent(machine: H2StreamStateMachine) -> None:
    """What h2's SEND_HEADERS, SEND_DATA, SEND_HEADERS (trailers), SEND_END_STREAM do to a server stream's
    machine that is HALF_CLOSED_REMOTE with nothing sent yet: ``response_sent`` twice (headers, then
    trailers), ``send_end_stream``, then CLOSED. ``test_fast_path`` checks it against h2's own inputs."""
    machine.headers_sent = True
    machine.trailers_sent = True
    machine.stream_closed_by = StreamClosedBy.SEND_END_STREAM
    machine.state = StreamState.CLOSED


def frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    """One HTTP/2 frame, header and payload."""
    n = len(payload)
    return FRAME_HEADER.pack(n >> 8, n & 0xFF, kind, flags, stream_id) + payload


def header_frames(stream_id: int, block: bytes, end_stream: bool, max_frame_size: int) -> bytes:
    """A header block as HEADERS (+ CONTINUATION frames when it exceeds the peer's frame size)."""
    flags = END_STREAM if end_stream else 0
    if len(block) <= max_frame_size:
        return frame(HEADERS, flags | END_HEADERS, stream_id, block)
    parts = [block[i : i + max_frame_size] for i in range(0, len(block), max_frame_size)]
    out = [frame(HEADERS, flags, stream_id, parts[0])]
    out += [frame(CONTINUATION, 0, stream_id, part) for part in parts[1:-1]]
    out.append(frame(CONTINUATION, END_HEADERS, stream_id, parts[-1]))
    return b"".join(out)


def send_request(
    conn: GrpcH2Connection,
    stream_id: int,
    headers: Block,
    data: bytes,
    identity: tuple[bytes | None, bytes | None] | None = None,
) -> bool:
    """Open ``stream_id`` with request ``headers`` and end it with ``data`` (client side).

    ``identity`` is the request's ``(:authority, :method)`` when the caller knows them (its headers always
    begin with the same pseudo-headers); else they are read from ``headers`` as h2 reads them."""
    size = len(data)
    streams = conn._streams
    if len(streams) >= conn._prune_at:
        conn.prune_closed_streams()
    settings = conn.remote_settings
    limit = settings.max_streams
    window = settings.initial_window
    assert window is not None  # (always set: h2's default at least)
    if (
        conn.state_machine.state not in _CLIENT_CAN_OPEN
        or stream_id <= conn.highest_outbound_stream_id  # (so neither a stream nor a record yet)
        or stream_id % 2 == 0
        or size > conn.max_outbound_frame_size
        or size > conn.outbound_flow_control_window
        or size > window
        # Open streams ≤ streams and records held (a client holds only its own): count them only at the limit.
        or (len(streams) + len(conn._unanswered) >= limit and conn.open_outbound_streams + 1 > limit)
    ):
        return False
    if conn.state_machine.state is not ConnectionState.CLIENT_OPEN:  # (in CLIENT_OPEN the input changes nothing)
        conn.state_machine.process_input(ConnectionInputs.SEND_HEADERS)  # IDLE -> CLIENT_OPEN on the first stream
    authority, method = identity or _authority_and_method(headers)
    if conn.unary_exchanges:  # the answer will come whole (unary_receive.response): held as a record till then
        conn.hold_request_sent(stream_id, window - size, authority, method)
    else:
        stream = conn._begin_new_stream(stream_id, AllowedStreamIDs.ODD)
        request_sent(stream.state_machine)
        stream._authority, stream.request_method = authority, method
        stream.outbound_flow_control_window -= size
    block = conn.encoder.encode(headers)
    conn.outbound_flow_control_window -= size
    n = len(block)
    if n <= conn.max_outbound_frame_size:  # header_frames() + frame(), in one step for the usual shape
        pack = FRAME_HEADER.pack
        conn._data_to_send += (
            pack(n >> 8, n & 0xFF, HEADERS, END_HEADERS, stream_id)
            + block
            + pack(size >> 8, size & 0xFF, DATA, END_STREAM, stream_id)
            + data
        )
    else:
        conn._data_to_send += header_frames(stream_id, block, False, conn.max_outbound_frame_size) + frame(
            DATA, END_STREAM, stream_id, data
        )
    return True


def _authority_and_method(headers: Block) -> tuple[bytes | None, bytes | None]:
    """h2's ``authority_from_headers`` and ``extract_method_header`` in one pass, stopping once both are
    found (the first of each, as h2's); h2's own two for anything but bytes."""
    authority = method = None
    for name, value in headers:
        if type(name) is not bytes or type(value) is not bytes:
            return authority_from_headers(headers), extract_method_header(headers)
        if name == b":authority":
            if authority is None:
                authority = value
                if method is not None:
                    break
        elif name == b":method" and method is None:
            method = value
            if authority is not None:
                break
    return authority, method


def send_response(conn: GrpcH2Connection, stream_id: int, headers: Block, data: bytes, trailers: Block) -> bool:
    """Answer ``stream_id`` with response ``headers``, ``data`` and ``trailers`` (server side).

    The request must have ended (the stream is half-closed by the client) and
    no headers may have been sent on it yet; ``headers`` must not be a 1xx.
    """
    conn._stream_frames_sent = True  # (for the flood guard: pings after stream frames are never strikes)
    size = len(data)
    record = conn._unanswered.get(stream_id)  # a unary request held as a record (unary_receive): no h2 stream
    stream = None
    if record is not None:
        window = record[1]
    else:
        stream = conn._streams.get(stream_id)
        if stream is None:
            return False
        machine = stream.state_machine
        if machine.state is not StreamState.HALF_CLOSED_REMOTE or machine.headers_sent or machine.client is not False:
            return False
        window = stream.outbound_flow_control_window
    if (
        conn.state_machine.state is not ConnectionState.SERVER_OPEN
        or size > conn.max_outbound_frame_size
        or size > conn.outbound_flow_control_window
        or size > window
        or headers[0][0] != b":status"
        or headers[0][1].startswith(b"1")
    ):
        return False
    max_frame = conn.max_outbound_frame_size
    if stream is not None:
        response_sent(stream.state_machine)
    encode = conn.encoder.encode
    block, end = encode(headers), encode(trailers)
    n, m = len(block), len(end)
    if n <= max_frame and m <= max_frame:  # the header_frames() and frame() below, in one step
        pack = FRAME_HEADER.pack
        out = (
            pack(n >> 8, n & 0xFF, HEADERS, END_HEADERS, stream_id)
            + block
            + pack(size >> 8, size & 0xFF, DATA, 0, stream_id)
            + data
            + pack(m >> 8, m & 0xFF, HEADERS, END_HEADERS | END_STREAM, stream_id)
            + end
        )
    else:
        out = header_frames(stream_id, block, False, max_frame)
        out += frame(DATA, 0, stream_id, data)
        out += header_frames(stream_id, end, True, max_frame)
    conn.outbound_flow_control_window -= size
    conn._data_to_send += out
    if stream is None:  # the record: what response_sent and forget_if_closed leave of a stream, directly
        del conn._unanswered[stream_id]
        conn.closed_by(stream_id, StreamClosedBy.SEND_END_STREAM)
    else:
        stream.outbound_flow_control_window -= size
        conn.forget_if_closed(stream_id, stream)
    return True
