"""The one-step unary sends write exactly what h2's general path writes, and step aside when they cannot.

Every check runs two identical connection pairs side by side, one sending
through ``send_request``/``send_response`` and one through h2's
``send_headers``/``send_data``, and compares the bytes on the wire and the
state left behind (stream states, flow-control windows, HPACK tables).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import h2.config
import h2.events
import pytest
from h2.connection import H2Connection
from h2.stream import H2StreamStateMachine, StreamInputs
from h2.utilities import authority_from_headers, extract_method_header
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import REQUEST_HEADERS
from transport.http2 import GrpcH2Connection, fast_path
from transport.http2.fast_path import request_sent, response_sent
from transport.http2.stream_machine import GrpcStreamStateMachine

RESPONSE_HEADERS = [(b":status", b"200"), (b"content-type", b"application/grpc")]
TRAILERS = [(b"grpc-status", b"0")]
REQUEST = b"\x00\x00\x00\x00\x07\n\x05world"
REPLY = b"\x00\x00\x00\x00\x0f\n\rHello, world!"


def _config(client_side: bool) -> h2.config.H2Configuration:
    return h2.config.H2Configuration(
        client_side=client_side,
        header_encoding=None,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
    )


def _pair() -> tuple[GrpcH2Connection, GrpcH2Connection]:
    client, server = GrpcH2Connection(_config(True)), GrpcH2Connection(_config(False))
    client.initiate_connection()
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    return client, server


def _state(conn: GrpcH2Connection) -> tuple[object, ...]:
    """What a connection holds. A closed stream counts as closed whether it is still in the table
    or already moved out (h2 moves it at its next count of open streams, the fast paths at once)."""
    streams = {
        sid: (vars(s.state_machine), s.outbound_flow_control_window, s._authority, s.request_method)
        for sid, s in conn.streams.items()
        if not s.closed
    }
    closed = {sid: s.closed_by for sid, s in conn.streams.items() if s.closed} | dict(conn._closed_streams)
    return (
        conn.state_machine.state,
        conn.outbound_flow_control_window,
        list(conn.encoder.header_table.dynamic_entries),
        streams,
        closed,
    )


def _request_general(client: GrpcH2Connection, sid: int, headers: list[tuple[bytes, bytes]], data: bytes) -> None:
    client.send_headers(sid, headers)
    client.send_data(sid, data, end_stream=True)


def _response_general(server: GrpcH2Connection, sid: int, headers: list[tuple[bytes, bytes]], data: bytes) -> None:
    server.send_headers(sid, headers)
    server.send_data(sid, data)
    server.send_headers(sid, TRAILERS, end_stream=True)


@pytest.mark.parametrize("extra", [[], [(b"x-big", b"v" * 20_000)]], ids=["one-frame", "continuation"])
def test_same_bytes_and_state_as_h2s_general_path(extra: list[tuple[bytes, bytes]]) -> None:
    """Five calls each way (the first fills the HPACK table, the rest hit the memo): identical wire and state.
    The fast server takes each request it has seen before whole, and holds it as a record until it answers;
    the fast client holds each request it sent as a record, which reading its state turns into a stream."""
    fast_client, fast_server = _pair()
    for conn in (fast_client, fast_server):
        conn.stream_data = conn.unary_exchanges = True
    slow_client, slow_server = _pair()
    records = 0
    for _ in range(5):
        sid = fast_client.get_next_available_stream_id()
        assert fast_client.send_request(sid, REQUEST_HEADERS + extra, REQUEST)
        assert sid in fast_client._unanswered, "a request sent whole is held as a record (read as a stream below)"
        _request_general(slow_client, sid, REQUEST_HEADERS + extra, REQUEST)
        wire = fast_client.data_to_send()
        assert wire == slow_client.data_to_send()
        assert _state(fast_client) == _state(slow_client)

        fast_server.receive_data(wire)
        slow_server.receive_data(wire)
        records += sid in fast_server._unanswered
        assert fast_server.send_response(sid, RESPONSE_HEADERS + extra, REPLY, TRAILERS)
        _response_general(slow_server, sid, RESPONSE_HEADERS + extra, REPLY)
        wire = fast_server.data_to_send()
        assert wire == slow_server.data_to_send()
        assert _state(fast_server) == _state(slow_server)
        fast_client.receive_data(wire)
        slow_client.receive_data(wire)
    assert records == (3 if not extra else 0), "requests answered from a record (not the first two, not CONTINUATION)"


def _held_requests(count: int) -> tuple[GrpcH2Connection, GrpcH2Connection, list[int]]:
    """A client that sent ``count`` unary requests, and a server holding the last ones as records."""
    client, server = _pair()
    server.stream_data = server.unary_exchanges = True
    sids = []
    for _ in range(count):
        sid = client.get_next_available_stream_id()
        assert client.send_request(sid, REQUEST_HEADERS, REQUEST)
        sids.append(sid)
    server.receive_data(client.data_to_send())
    assert server._unanswered, "the requests whose headers were seen before are held as records"
    return client, server, sids


@pytest.mark.parametrize("what", ["reset", "trailers-only", "window-settings", "frame-size-settings"])
def test_a_held_request_becomes_the_stream_h2_would_hold(what: str) -> None:
    """Whatever reads the stream table sees the held requests as h2's own streams: the same bytes and state
    after a reset, a Trailers-Only answer, or a change of the client's settings that every stream takes."""
    general_client, general = _pair()
    _, held, sids = _held_requests(5)
    for _ in sids:
        sid = general_client.get_next_available_stream_id()
        assert general_client.send_request(sid, REQUEST_HEADERS, REQUEST)
    general.receive_data(general_client.data_to_send())
    last = sids[-1]
    for server in (held, general):
        if what == "reset":
            server.reset_stream(last, h2.errors.ErrorCodes.CANCEL)
        elif what == "trailers-only":
            server.send_headers(last, RESPONSE_HEADERS + TRAILERS, end_stream=True)
        else:
            peer = GrpcH2Connection(_config(True))
            peer.initiate_connection()
            peer.data_to_send()
            code = "INITIAL_WINDOW_SIZE" if what == "window-settings" else "MAX_FRAME_SIZE"
            peer.update_settings({getattr(h2.settings.SettingCodes, code): 100_000 if code == "MAX_FRAME_SIZE" else 1})
            server.receive_data(peer.data_to_send())
    assert held.data_to_send() == general.data_to_send()
    assert not held._unanswered
    assert _state(held) == _state(general)
    assert {sid: vars(s._inbound_window_manager) for sid, s in held.streams.items()} == {
        sid: vars(s._inbound_window_manager) for sid, s in general.streams.items()
    }
    assert {sid: s.max_outbound_frame_size for sid, s in held.streams.items()} == {
        sid: s.max_outbound_frame_size for sid, s in general.streams.items()
    }


@pytest.mark.parametrize(
    ("script", "start", "inputs"),
    [
        (request_sent, None, ["SEND_HEADERS", "SEND_DATA", "SEND_END_STREAM"]),
        (
            response_sent,
            ["RECV_HEADERS", "RECV_END_STREAM"],
            ["SEND_HEADERS", "SEND_DATA", "SEND_HEADERS", "SEND_END_STREAM"],
        ),
    ],
    ids=["request", "response"],
)
def test_one_step_state_scripts_do_what_h2s_inputs_do(
    script: Callable[[H2StreamStateMachine], None], start: list[str] | None, inputs: list[str]
) -> None:
    """The state a whole request or answer leaves is set in one step: exactly what h2's inputs set."""
    machines = [GrpcStreamStateMachine(7), GrpcStreamStateMachine(7)]
    for machine in machines:
        for name in start or []:
            machine.process_input(StreamInputs[name])
    for name in inputs:
        machines[0].process_input(StreamInputs[name])
    script(machines[1])
    assert vars(machines[1]) == vars(machines[0])


def test_a_plain_h2_peer_reads_the_exchange() -> None:
    """Stock h2 on the other end sees a well-formed request and response, with the right events."""
    client = GrpcH2Connection(_config(True))
    server = H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
    client.initiate_connection()
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    assert client.send_request(1, REQUEST_HEADERS, REQUEST)
    events = server.receive_data(client.data_to_send())
    kinds = [type(e) for e in events]
    assert h2.events.RequestReceived in kinds and h2.events.StreamEnded in kinds
    received = next(e for e in events if isinstance(e, h2.events.DataReceived))
    assert received.data == REQUEST

    peer_client = H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    fast_server = GrpcH2Connection(_config(False))
    peer_client.initiate_connection()
    fast_server.initiate_connection()
    fast_server.receive_data(peer_client.data_to_send())
    peer_client.receive_data(fast_server.data_to_send())
    peer_client.send_headers(1, REQUEST_HEADERS)
    peer_client.send_data(1, REQUEST, end_stream=True)
    fast_server.receive_data(peer_client.data_to_send())
    assert fast_server.send_response(1, RESPONSE_HEADERS, REPLY, TRAILERS)
    events = peer_client.receive_data(fast_server.data_to_send())
    assert [type(e) for e in events if not isinstance(e, h2.events.SettingsAcknowledged)] == [
        h2.events.ResponseReceived,
        h2.events.DataReceived,
        h2.events.TrailersReceived,
        h2.events.StreamEnded,
    ]
    assert events[-2].headers == TRAILERS


def test_steps_aside_when_the_message_does_not_fit() -> None:
    """Bigger than a frame or the window: False, nothing sent, nothing changed."""
    client, server = _pair()
    before = _state(client)
    assert not client.send_request(1, REQUEST_HEADERS, b"x" * 70_000)
    assert client.data_to_send() == b"" and _state(client) == before

    assert client.send_request(1, REQUEST_HEADERS, REQUEST)
    server.receive_data(client.data_to_send())
    before = _state(server)
    assert not server.send_response(1, RESPONSE_HEADERS, b"x" * 70_000, TRAILERS)
    assert server.data_to_send() == b"" and _state(server) == before


def test_steps_aside_for_a_stream_it_cannot_answer_in_one_step() -> None:
    """Headers already sent, the request still open, or the stream reset: h2's general path decides."""
    client, server = _pair()
    client.send_headers(1, REQUEST_HEADERS)  # request not ended yet
    server.receive_data(client.data_to_send())
    assert not server.send_response(1, RESPONSE_HEADERS, REPLY, TRAILERS)

    assert client.send_request(3, REQUEST_HEADERS, REQUEST)
    server.receive_data(client.data_to_send())
    server.send_headers(3, RESPONSE_HEADERS)  # initial metadata went first
    assert not server.send_response(3, RESPONSE_HEADERS, REPLY, TRAILERS)

    assert client.send_request(5, REQUEST_HEADERS, REQUEST)
    server.receive_data(client.data_to_send())
    server.reset_stream(5)
    server.data_to_send()
    assert not server.send_response(5, RESPONSE_HEADERS, REPLY, TRAILERS)
    assert server.data_to_send() == b""


def test_steps_aside_at_the_peers_stream_limit() -> None:
    """Over the server's MAX_CONCURRENT_STREAMS the client does not open the stream itself."""
    client, server = _pair()
    server.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1})
    client.receive_data(server.data_to_send())
    assert client.send_request(1, REQUEST_HEADERS, REQUEST)
    assert not client.send_request(3, REQUEST_HEADERS, REQUEST)
    assert 3 not in client.streams


_NAMES = st.sampled_from([b":authority", b":method", b":path", b"te", ":authority", ":method", "x-str"])
_VALUES = st.sampled_from([b"POST", b"GET", b"a.example:80", b"", "str-value"])


@given(st.lists(st.tuples(_NAMES, _VALUES), max_size=8))
def test_authority_and_method_are_what_h2_finds(headers: list[tuple[Any, Any]]) -> None:
    """One pass for both (the request path), the first of each as h2's two helpers find them."""
    assert fast_path._authority_and_method(headers) == (
        authority_from_headers(headers),
        extract_method_header(headers),
    )
