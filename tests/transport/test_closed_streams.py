"""The record of closed streams keeps at least h2's newest 65,536, in bounded memory, trimmed in batches."""

from __future__ import annotations

from h2.stream import StreamClosedBy

from tests.helpers import REQUEST_HEADERS
from tests.transport.test_fast_receive import REPLY, REQUEST, RESPONSE_HEADERS, TRAILERS, _ours
from transport.http2.connection import CLOSED_TRIM_BATCH, ClosedStreams


def test_the_newest_limit_are_kept_and_the_rest_go_in_batches() -> None:
    closed = ClosedStreams(limit=10)
    for stream_id in range(1, 10 + CLOSED_TRIM_BATCH + 1):  # h2's own writes (__setitem__)
        closed[stream_id] = StreamClosedBy.SEND_END_STREAM
    assert len(closed) == 10 + CLOSED_TRIM_BATCH, "not trimmed before the batch is full"
    closed[10 + CLOSED_TRIM_BATCH + 1] = StreamClosedBy.SEND_RST_STREAM
    assert list(closed) == list(range(CLOSED_TRIM_BATCH + 2, CLOSED_TRIM_BATCH + 12)), "the newest 10, in order"
    assert closed.get(CLOSED_TRIM_BATCH + 11) is StreamClosedBy.SEND_RST_STREAM


def test_a_connection_s_record_stays_bounded_over_many_calls() -> None:
    """Calls through the fast paths (and records) add to the same bounded record as h2's own path."""
    client, server = _ours(True, True), _ours(False, True)  # (fast paths, records, h2's handshake)
    for conn in (client, server):
        conn._closed_streams = ClosedStreams(limit=50)
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    for _ in range(CLOSED_TRIM_BATCH + 200):
        sid = client.get_next_available_stream_id()
        assert client.send_request(sid, REQUEST_HEADERS, REQUEST)
        server.receive_data(client.data_to_send())
        server.acknowledge_connection_data(len(REQUEST))  # (what our protocol does: the windows stay open)
        assert server.send_response(sid, RESPONSE_HEADERS, REPLY, TRAILERS)
        client.receive_data(server.data_to_send())
        client.acknowledge_connection_data(len(REPLY))
    for conn in (client, server):
        assert 50 <= len(conn._closed_streams) <= 50 + CLOSED_TRIM_BATCH
        assert max(conn._closed_streams) == sid, "the newest stream is remembered"
