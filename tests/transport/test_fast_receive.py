"""The receive fast path yields exactly the events, answers and state h2's general path does.

Every case feeds the same bytes, from a stock h2 peer, to two of our connections:
one taking the common frames through :mod:`transport.http2.fast_receive` (and
reporting DATA mid-stream as ``StreamData``, as our connections do), one with
``fast_receive = False`` (h2's frame buffer and dispatch for every frame). The
bytes arrive whole, one byte at a time and in 7-byte pieces; the events, what
each connection queues to send, and the state left behind (stream states and
windows, the connection window, the HPACK table, which streams closed and how)
must be the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import h2.config
import h2.events
import pytest
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.settings import SettingCodes

from tests.helpers import REQUEST_HEADERS
from transport.http2 import GrpcH2Connection, MalformedRequest, StreamData, UnaryRequest, UnaryResponse
from transport.http2.compact_settings import CompactSettings
from transport.http2.connection import HeaderListTooLarge, StreamRefused
from transport.http2.fast_path import END_HEADERS, HEADERS, frame

RESPONSE_HEADERS = [(b":status", b"200"), (b"content-type", b"application/grpc")]
TRAILERS = [(b"grpc-status", b"0"), (b"grpc-message", b"")]
REQUEST = b"\x00\x00\x00\x00\x07\n\x05world"
REPLY = b"\x00\x00\x00\x00\x0f\n\rHello, world!"
SPLITS = {"whole": 0, "bytes": 1, "sevens": 7}


def _config(client_side: bool, validate: bool = True) -> h2.config.H2Configuration:
    return h2.config.H2Configuration(
        client_side=client_side,
        header_encoding=None,
        validate_outbound_headers=validate,
        normalize_outbound_headers=validate,
    )


def _ours(client_side: bool, fast: bool, max_streams: int | None = None) -> GrpcH2Connection:
    conn = GrpcH2Connection(_config(client_side))
    conn.fast_receive = conn.stream_data = conn.unary_exchanges = fast
    if max_streams is not None:
        conn.local_settings = CompactSettings(
            client=client_side, initial_values={SettingCodes.MAX_CONCURRENT_STREAMS: max_streams}
        )
    conn.initiate_connection()
    return conn


def _pieces(data: bytes, size: int) -> list[bytes]:
    return [data] if not size else [data[i : i + size] for i in range(0, len(data), size)]


def _describe(events: list[Any]) -> list[tuple[str, dict[str, str]]]:
    """Each event's kind and fields; a StreamData reads as the DataReceived (without an end) it stands for.

    (``taken``, the memo's record a header event was made from, is ours: h2's events have no such field.)
    """
    described = []
    for e in _h2_events(events):
        if isinstance(e, StreamData):
            fields = {"data": e.data, "flow_controlled_length": e.flow_controlled_length, "stream_ended": None}
            described.append(
                ("DataReceived", {k: repr(v) for k, v in sorted({**fields, "stream_id": e.stream_id}.items())})
            )
        else:
            fields = {k: repr(v) for k, v in sorted(vars(e).items()) if k != "taken"}
            described.append((type(e).__name__, fields))
    return described


def _h2_events(events: list[Any]) -> list[Any]:
    """``events`` with each whole unary request or response as the events h2 reports for its frames."""
    return [h for e in events for h in (e.h2_events() if isinstance(e, (UnaryRequest, UnaryResponse)) else [e])]


def _state(conn: GrpcH2Connection) -> tuple[object, ...]:
    streams = {
        sid: (
            s.state_machine.state,
            s.inbound_flow_control_window,
            s.outbound_flow_control_window,
            s.state_machine.headers_received,
            s.state_machine.trailers_received,
        )
        for sid, s in conn.streams.items()
        if not s.closed
    }
    closed = {sid: s.closed_by for sid, s in conn.streams.items() if s.closed} | dict(conn._closed_streams)
    return (
        conn.state_machine.state,
        conn.inbound_flow_control_window,
        conn.highest_inbound_stream_id,
        list(conn.decoder.header_table.dynamic_entries),
        streams,
        closed,
    )


def _feed_both(fast: GrpcH2Connection, general: GrpcH2Connection, data: bytes, split: int) -> list[Any]:
    """Feed ``data`` to both; assert the same events, answers and state; return the events.

    What each queued to send must be the same: :attr:`answer` keeps it for the peer."""
    fast_events: list[Any] = []
    general_events: list[Any] = []
    for piece in _pieces(data, split):
        outcomes = []
        for conn, events in ((fast, fast_events), (general, general_events)):
            try:
                events += conn.receive_data(piece)
                outcomes.append(None)
            except Exception as exc:  # noqa: BLE001 - a connection error is an outcome to compare
                outcomes.append((type(exc).__name__, str(exc)))
        assert outcomes[0] == outcomes[1]
        if outcomes[0] is not None:
            events_raised.append(outcomes[0])
            break
    assert _describe(fast_events) == _describe(general_events)
    answer = fast.data_to_send()
    assert answer == general.data_to_send()
    _answers_queued.append(answer)
    assert _state(fast) == _state(general)
    return fast_events


#: What the last :func:`_feed_both` made both connections queue (the same bytes).
_answers_queued: list[bytes] = []
#: The connection errors both raised alike (a case that ends the connection).
events_raised: list[tuple[str, str]] = []


def _handshake(fast: GrpcH2Connection, general: GrpcH2Connection) -> bytes:
    """Everything both queued since they began, checked equal: the last answer plus what is queued now."""
    data = b"".join(_answers_queued) + fast.data_to_send()
    _answers_queued.clear()
    assert data.endswith(general.data_to_send())
    return data


# --- the server side --------------------------------------------------------------------------------

Requests = Callable[[H2Connection], None]


def _unary_calls(peer: H2Connection) -> None:
    for _ in range(5):
        sid = peer.get_next_available_stream_id()
        peer.send_headers(sid, REQUEST_HEADERS)
        peer.send_data(sid, REQUEST, end_stream=True)


def _big_headers(peer: H2Connection) -> None:  # CONTINUATION frames
    peer.send_headers(1, [*REQUEST_HEADERS, (b"x-big", b"v" * 20_000)])
    peer.send_data(1, REQUEST, end_stream=True)
    peer.send_headers(3, REQUEST_HEADERS)
    peer.send_data(3, REQUEST, end_stream=True)


def _padded_and_priority(peer: H2Connection) -> None:
    peer.send_headers(1, REQUEST_HEADERS, priority_weight=200)
    peer.send_data(1, REQUEST, end_stream=True, pad_length=10)
    peer.send_headers(3, REQUEST_HEADERS, end_stream=False)
    peer.send_data(3, REQUEST, end_stream=True)


def _streaming_with_trailers(peer: H2Connection) -> None:
    peer.send_headers(1, REQUEST_HEADERS)
    for _ in range(4):
        peer.send_data(1, REQUEST)
    peer.send_headers(1, [(b"x-trailer", b"yes")], end_stream=True)
    peer.send_headers(3, REQUEST_HEADERS)
    peer.send_data(3, REQUEST)
    peer.send_data(3, b"", end_stream=True)
    peer.ping(b"12345678")
    peer.increment_flow_control_window(1000)


def _malformed(peer: H2Connection) -> None:
    peer.send_headers(1, [*REQUEST_HEADERS, (b"connection", b"close")])  # connection-specific: malformed
    peer.send_data(1, REQUEST, end_stream=True)
    peer.send_headers(3, REQUEST_HEADERS)
    peer.send_data(3, REQUEST, end_stream=True)


def _over_the_limit(peer: H2Connection) -> None:
    peer._open_streams = lambda remainder: 0  # type: ignore[method-assign]  # a client that ignores the limit
    for sid in (1, 3, 5, 7):
        peer.send_headers(sid, REQUEST_HEADERS)


def _reset_then_data(peer: H2Connection) -> None:
    peer.send_headers(1, REQUEST_HEADERS)
    peer.reset_stream(1, ErrorCodes.CANCEL)
    peer.send_headers(3, REQUEST_HEADERS)
    peer.send_data(3, REQUEST, end_stream=True)


def _content_length(peer: H2Connection) -> None:
    """A content-length the DATA keeps three times (the block is remembered), then one it breaks."""
    headers = [*REQUEST_HEADERS, (b"content-length", str(len(REQUEST)).encode())]
    for sid in (1, 3, 5):
        peer.send_headers(sid, headers)
        peer.send_data(sid, REQUEST, end_stream=True)
    peer.send_headers(7, headers)
    peer.send_data(7, REQUEST + b"extra", end_stream=True)


def _trailers_without_end(peer: H2Connection) -> None:
    for sid in (1, 3):
        peer.send_headers(sid, REQUEST_HEADERS)
        peer.send_data(sid, REQUEST)
        peer.send_headers(sid, [(b"x-trailer", b"1")], end_stream=True)
    peer.send_headers(5, REQUEST_HEADERS)
    peer.send_data(5, REQUEST)
    # Trailers must end the stream; a stock peer refuses to send these, so they are written by hand.
    block = peer.encoder.encode([(b"x-trailer", b"1")])
    peer._data_to_send += frame(HEADERS, END_HEADERS, 5, block)


SERVER_CASES: dict[str, Requests] = {
    "content-length": _content_length,
    "trailers-without-end-stream": _trailers_without_end,
    "unary": _unary_calls,
    "continuation": _big_headers,
    "padded-priority": _padded_and_priority,
    "streaming-trailers-ping": _streaming_with_trailers,
    "malformed": _malformed,
    "refused": _over_the_limit,
    "reset": _reset_then_data,
}


@pytest.mark.parametrize("split", SPLITS.values(), ids=SPLITS.keys())
@pytest.mark.parametrize("case", SERVER_CASES.keys())
def test_server_receives_as_h2_does(case: str, split: int) -> None:
    peer = H2Connection(_config(True, validate=case != "malformed"))
    peer.initiate_connection()
    max_streams = 2 if case == "refused" else None
    fast, general = _ours(False, True, max_streams), _ours(False, False, max_streams)
    _answers_queued.clear()
    _feed_both(fast, general, peer.data_to_send(), split)
    peer.receive_data(_handshake(fast, general))
    SERVER_CASES[case](peer)
    events_raised.clear()
    events = _feed_both(fast, general, peer.data_to_send(), split)
    if case == "content-length":
        assert events_raised, "the last request's DATA breaks its content-length: a connection error for both"
    kinds = {type(e) for e in events}
    assert h2.events.RequestReceived in kinds or events_raised  # (a read that fails returns no events)
    if case in ("malformed", "trailers-without-end-stream"):
        assert MalformedRequest in kinds
    if case == "refused":
        assert StreamRefused in kinds
    if case == "streaming-trailers-ping":
        assert sum(isinstance(e, StreamData) for e in events) == 5, "the messages before each stream's end"
    if case == "unary":  # each request whose header block was seen before (not the first two), as one event
        assert sum(isinstance(e, UnaryRequest) for e in events) == (3 if split == 0 else 0)


def test_server_finds_the_header_list_too_large_as_h2_does() -> None:
    peer = H2Connection(_config(True))
    peer.initiate_connection()
    fast, general = _ours(False, True), _ours(False, False)
    _answers_queued.clear()
    for conn in (fast, general):
        conn.decoder.max_header_list_size = 200
    _feed_both(fast, general, peer.data_to_send(), 0)
    peer.receive_data(_handshake(fast, general))
    peer.send_headers(1, [*REQUEST_HEADERS, (b"x-big", b"v" * 300)])
    peer.send_data(1, REQUEST, end_stream=True)
    events = _feed_both(fast, general, peer.data_to_send(), 0)
    assert HeaderListTooLarge in {type(e) for e in events}


# --- the client side --------------------------------------------------------------------------------


def _client_pair() -> tuple[H2Connection, GrpcH2Connection, GrpcH2Connection]:
    peer = H2Connection(_config(False))
    peer.initiate_connection()
    fast, general = _ours(True, True), _ours(True, False)
    _answers_queued.clear()
    peer.receive_data(_handshake(fast, general))
    _feed_both(fast, general, peer.data_to_send(), 0)
    peer.receive_data(_handshake(fast, general))
    return peer, fast, general


def _open(fast: GrpcH2Connection, general: GrpcH2Connection, peer: H2Connection, count: int) -> list[int]:
    sids = []
    for _ in range(count):
        sid = fast.get_next_available_stream_id()
        assert general.get_next_available_stream_id() == sid
        assert fast.send_request(sid, REQUEST_HEADERS, REQUEST)
        assert general.send_request(sid, REQUEST_HEADERS, REQUEST)
        sids.append(sid)
    peer.receive_data(_handshake(fast, general))
    return sids


Responses = Callable[[H2Connection, list[int]], None]


def _answers(peer: H2Connection, sids: list[int]) -> None:
    for sid in sids:
        peer.send_headers(sid, RESPONSE_HEADERS)
        peer.send_data(sid, REPLY)
        peer.send_headers(sid, TRAILERS, end_stream=True)


def _trailers_only_and_padded(peer: H2Connection, sids: list[int]) -> None:
    peer.send_headers(sids[0], [*RESPONSE_HEADERS, (b"grpc-status", b"5")], end_stream=True)
    peer.send_headers(sids[1], RESPONSE_HEADERS)
    peer.send_data(sids[1], REPLY, pad_length=3)
    peer.send_headers(sids[1], TRAILERS, end_stream=True)
    peer.send_headers(sids[2], RESPONSE_HEADERS)
    peer.send_data(sids[2], REPLY[:4])
    peer.send_data(sids[2], REPLY[4:], end_stream=True)


def _streamed_and_reset(peer: H2Connection, sids: list[int]) -> None:
    peer.send_headers(sids[0], RESPONSE_HEADERS)
    for _ in range(5):
        peer.send_data(sids[0], REPLY)
    peer.send_headers(sids[0], TRAILERS, end_stream=True)
    peer.reset_stream(sids[1], ErrorCodes.REFUSED_STREAM)
    peer.send_headers(sids[2], [(b":status", b"503")], end_stream=True)


CLIENT_CASES: dict[str, Responses] = {
    "unary": _answers,
    "trailers-only-padded-split": _trailers_only_and_padded,
    "streamed-reset-http-error": _streamed_and_reset,
}


@pytest.mark.parametrize("split", SPLITS.values(), ids=SPLITS.keys())
@pytest.mark.parametrize("case", CLIENT_CASES.keys())
def test_client_receives_as_h2_does(case: str, split: int) -> None:
    peer, fast, general = _client_pair()
    sids = _open(fast, general, peer, 3)
    CLIENT_CASES[case](peer, sids)
    events = _feed_both(fast, general, peer.data_to_send(), split)
    assert h2.events.ResponseReceived in {type(e) for e in events}
    if case == "streamed-reset-http-error":
        assert sum(isinstance(e, StreamData) for e in events) == 5, "the messages before the trailers"
    # The next calls on the same connection (the HPACK table moved on) still match.
    sids = _open(fast, general, peer, 3)
    _answers(peer, sids)
    events = _feed_both(fast, general, peer.data_to_send(), split)
    if split == 0:  # each response in one read whose blocks were seen before, as one event
        assert sum(isinstance(e, UnaryResponse) for e in events) == (3 if case == "unary" else 2)


def test_client_drops_frames_for_a_stream_it_reset_as_h2_does() -> None:
    peer, fast, general = _client_pair()
    sids = _open(fast, general, peer, 2)
    for conn in (fast, general):
        conn.reset_stream(sids[0], ErrorCodes.CANCEL)
    _handshake(fast, general)
    _answers(peer, sids)
    events = _feed_both(fast, general, peer.data_to_send(), 0)
    assert [e.stream_id for e in events if isinstance(e, h2.events.ResponseReceived)] == [sids[1]]


def test_closed_streams_leave_the_table_without_a_scan() -> None:
    """1,000 calls on one connection: the stream tables stay small on both sides (h2 alone keeps
    closed streams until it next counts open ones), and the count of open streams is never taken;
    each call is held as a record on both sides (no h2 stream at all) until it is answered."""
    client, server = _ours(True, True), _ours(False, True)
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    scans = 0
    for conn in (client, server):
        original = conn._open_streams

        def counting(remainder: int, original: Callable[[int], int] = original) -> int:
            nonlocal scans
            scans += 1
            return original(remainder)

        conn._open_streams = counting  # type: ignore[method-assign]
    largest = held = 0
    for _ in range(1000):
        sid = client.get_next_available_stream_id()
        assert client.send_request(sid, REQUEST_HEADERS, REQUEST)
        server.receive_data(client.data_to_send())
        held += sid in client._unanswered and sid in server._unanswered
        assert server.send_response(sid, RESPONSE_HEADERS, REPLY, TRAILERS)
        client.receive_data(server.data_to_send())
        assert not client._unanswered and not server._unanswered
        largest = max(largest, len(client.streams), len(server.streams))
    assert held >= 998, f"only {held} calls were held as records on both sides (all but the first two should)"
    assert largest <= 1, f"a stream table held {largest} streams"
    assert scans == 0, f"open streams were counted by a scan {scans} times"
