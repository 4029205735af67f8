"""The memoized HPACK and validation layer answers exactly what h2 and hpack would, only faster.

Each memo is checked against the plain library on the same input sequence: the
same bytes out, the same headers out, the same table state, the same errors.
"""

from __future__ import annotations

import os

import h2.config
import h2.events
import pytest
from h2.connection import H2Connection
from hpack import Decoder, Encoder, NeverIndexedHeaderTuple, OversizedHeaderListError
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import REQUEST_HEADERS as REQUEST
from transport.http2 import GrpcH2Connection, MalformedRequest
from transport.http2.hpack_memo import MEMO_MAX_BYTES, MEMO_SIZE, MemoDecoder, MemoEncoder

NAMES = [b"content-type", b"grpc-timeout", b"x-user", b"te", b"user-agent", b"grpc-status"]
VALUES = [b"application/grpc", b"1S", b"ada", b"trailers", b"0", b"x" * 40, b"y" * 200]

header = st.tuples(st.sampled_from(NAMES), st.sampled_from(VALUES))
header_list = st.lists(header, min_size=1, max_size=6)
# A short alphabet of lists, so that lists (and blocks) repeat as they do on a connection.
block_sequence = st.lists(st.integers(0, 5), min_size=1, max_size=40)


def _table(coder: Encoder | Decoder) -> list[tuple[bytes, bytes]]:
    return list(coder.header_table.dynamic_entries)


@settings(max_examples=150, deadline=None)
@given(st.lists(header_list, min_size=6, max_size=6), block_sequence, st.sampled_from([None, 100, 4096]))
def test_memo_encoder_writes_the_same_bytes_as_hpack(lists, order, resize) -> None:  # type: ignore[no-untyped-def]
    """Same header lists in the same order: byte-identical blocks and tables, across insertions and resizes;
    the odd lists are given as constant tuples (the same object each time: remembered by identity)."""
    plain, memo = Encoder(), MemoEncoder()
    constants = [tuple(headers) for headers in lists]
    for step, index in enumerate(order):
        if resize is not None and step == len(order) // 2:
            plain.header_table_size = memo.header_table_size = resize
        given_as = constants[index] if index % 2 else list(lists[index])
        assert memo.encode(given_as) == plain.encode(list(lists[index]))
        assert _table(memo) == _table(plain)


def test_memo_encoder_keeps_never_indexed_fields_apart() -> None:
    """A NeverIndexedHeaderTuple equals a plain tuple, yet hpack encodes it differently: so does the memo."""
    plain, memo = Encoder(), MemoEncoder()
    secret = NeverIndexedHeaderTuple(b"authorization", b"secret")
    for headers in ([secret], [(b"authorization", b"secret")], [secret], [(b"authorization", b"secret")], [secret]):
        assert memo.encode(list(headers)) == plain.encode(list(headers))
    assert Decoder().decode(MemoEncoder().encode([secret]), raw=True)[0].indexable is False


@settings(max_examples=150, deadline=None)
@given(st.lists(header_list, min_size=6, max_size=6), block_sequence)
def test_memo_decoder_reads_what_hpack_reads(lists, order) -> None:  # type: ignore[no-untyped-def]
    """Blocks from a real encoder (some repeating, some inserting): same headers and tables as hpack's decoder."""
    encoder, plain, memo = Encoder(), Decoder(), MemoDecoder()
    for index in order:
        block = encoder.encode(list(lists[index]))
        assert memo.decode(block, raw=True) == plain.decode(block, raw=True)
        assert _table(memo) == _table(plain)


def test_memo_decoder_replays_a_block_that_inserts() -> None:
    """A block with incremental indexing changes the table each time it arrives: it is decoded each time."""
    block = Encoder().encode([(b"x-user", b"ada")])  # literal with incremental indexing
    memo = MemoDecoder()
    for expected_entries in (1, 2, 3):
        assert memo.decode(block, raw=True) == [(b"x-user", b"ada")]
        assert len(memo.header_table.dynamic_entries) == expected_entries


def test_memo_decoder_enforces_the_header_list_limit_after_a_hit() -> None:
    """Lowering the header list limit applies to a block already remembered: a hit reports the list's size
    (RFC 7541 §4.1), judged against the new limit (that stream's error), and past the hard limit (4x) the
    block still raises (the connection's error), leaving the limit as it was."""
    encoder, memo = Encoder(), MemoDecoder()
    fields = [(b"x-user", b"y" * 200)]
    size = 6 + 200 + 32
    encoder.encode(fields)  # puts the field in the encoder's table
    block = encoder.encode(fields)  # one indexed byte: no insertion, remembered
    memo.decode(Encoder().encode(fields), raw=True)  # same table on the decoder side
    assert memo.decode(block, raw=True) == fields
    assert memo.header_list_size == size
    memo.max_header_list_size = 100
    for _ in range(2):  # a miss under the new limit, then a hit
        assert memo.decode(block, raw=True) == fields  # decoded whole: the table stays in step
        assert memo.header_list_size == size > memo.max_header_list_size
    assert memo._memo[block][1] == 100  # remembered under the new limit: the second decode was a hit
    memo.max_header_list_size = 50
    with pytest.raises(OversizedHeaderListError, match="larger than 200"):
        memo.decode(block, raw=True)
    assert memo.max_header_list_size == 50


def _pair() -> tuple[H2Connection, GrpcH2Connection]:
    client = H2Connection(
        h2.config.H2Configuration(client_side=True, validate_outbound_headers=False, normalize_outbound_headers=False)
    )
    server = GrpcH2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
    client.initiate_connection()
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())  # the client's SETTINGS ack
    return client, server


def test_a_remembered_request_is_still_validated_per_stream() -> None:
    """The same good request twice is accepted twice; the same bad one (a connection-specific field) is refused every time."""
    client, server = _pair()
    bad = [*REQUEST, (b"connection", b"close")]
    outcomes = []
    for headers in (REQUEST, REQUEST, bad, bad, REQUEST):
        stream_id = client.get_next_available_stream_id()
        client.send_headers(stream_id, headers, end_stream=True)
        events = server.receive_data(client.data_to_send())
        outcomes.append(type(events[0]).__name__)
    assert outcomes == ["RequestReceived", "RequestReceived", "MalformedRequest", "MalformedRequest", "RequestReceived"]
    assert isinstance(events[0], h2.events.RequestReceived)
    assert events[0].headers == REQUEST


def test_trailers_are_validated_as_trailers_even_when_the_block_was_seen_as_headers() -> None:
    """Validation is remembered per role: a pseudo-header is fine in a request and refused in trailers."""
    client, server = _pair()
    stream_id = client.get_next_available_stream_id()
    client.send_headers(stream_id, REQUEST)
    server.receive_data(client.data_to_send())
    client.send_headers(stream_id, REQUEST, end_stream=True)  # the same fields again, now as trailers
    events = server.receive_data(client.data_to_send())
    assert [type(e) for e in events] == [MalformedRequest]
    assert "pseudo-header in trailer" in events[0].reason


def test_what_a_peer_can_make_the_memo_hold_is_bounded() -> None:
    """Distinct blocks never grow a memo past MEMO_SIZE entries, and large blocks are not kept at all."""
    memo, encoder = MemoDecoder(), Encoder()
    for i in range(3 * MEMO_SIZE):  # small, distinct, table-neutral (never-indexed literals)
        memo.decode(encoder.encode([NeverIndexedHeaderTuple(b"x-n", str(i).encode())]), raw=True)
        assert len(memo._memo) <= MEMO_SIZE
    memo._memo.clear()
    for i in range(10):
        big = NeverIndexedHeaderTuple(b"x-big", os.urandom(MEMO_MAX_BYTES).hex().encode())  # > 1 KiB after Huffman
        assert memo.decode(encoder.encode([big]), raw=True) == [big]
    assert memo._memo == {}
