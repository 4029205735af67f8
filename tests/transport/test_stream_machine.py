"""Our stream state machine makes every transition h2's does: each state × each input, events, state and errors."""

from __future__ import annotations

import itertools

import h2.config
import pytest
from h2.stream import H2Stream, H2StreamStateMachine, StreamInputs, StreamState

from transport.http2.connection import GrpcH2Stream
from transport.http2.stream_machine import GrpcStreamStateMachine


def _outcome(machine: H2StreamStateMachine, state: StreamState, input_: object) -> tuple[object, ...]:
    machine.state = state
    try:
        events = machine.process_input(input_)  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - the error is the outcome being compared
        return ("raised", type(exc).__name__, str(exc), machine.state)
    return (
        "ok",
        [(type(e).__name__, sorted(vars(e).items())) for e in events],
        machine.state,
        machine.client,
        machine.headers_sent,
        machine.headers_received,
        machine.trailers_sent,
        machine.trailers_received,
        machine.stream_closed_by,
    )


@pytest.mark.parametrize("client", [True, False, None])
def test_every_state_and_input_ends_as_h2s_does(client: bool | None) -> None:
    inputs: list[object] = [*StreamInputs, 3, "SEND_HEADERS"]  # and two values that are not inputs
    for state, input_ in itertools.product(StreamState, inputs):
        ours, theirs = GrpcStreamStateMachine(1), H2StreamStateMachine(1)
        ours.client = theirs.client = client
        assert _outcome(ours, state, input_) == _outcome(theirs, state, input_), (state, input_)


def test_a_whole_unary_exchange_matches() -> None:
    ours, theirs = GrpcStreamStateMachine(1), H2StreamStateMachine(1)
    for input_ in (
        StreamInputs.SEND_HEADERS,
        StreamInputs.SEND_DATA,
        StreamInputs.SEND_END_STREAM,
        StreamInputs.RECV_HEADERS,
        StreamInputs.RECV_DATA,
        StreamInputs.RECV_HEADERS,
        StreamInputs.RECV_END_STREAM,
    ):
        assert _outcome(ours, ours.state, input_) == _outcome(theirs, theirs.state, input_)
    assert ours.state is StreamState.CLOSED


def _headers_outcome(machine: H2StreamStateMachine, end_stream: bool, one_step: bool) -> tuple[object, ...]:
    """RECV_HEADERS (+ RECV_END_STREAM) as h2's H2Stream.receive_headers applies them, or in one step."""
    try:
        if one_step:
            assert isinstance(machine, GrpcStreamStateMachine)
            events = machine.receive_headers(end_stream)
        else:
            events = machine.process_input(StreamInputs.RECV_HEADERS)
            if end_stream:
                ended = machine.process_input(StreamInputs.RECV_END_STREAM)
                events[0].stream_ended = ended[0]  # type: ignore[attr-defined]
                events += ended
    except Exception as exc:  # noqa: BLE001 - the error is the outcome being compared
        return ("raised", type(exc).__name__, str(exc), machine.state)
    described = [(type(e).__name__, sorted((k, repr(v)) for k, v in vars(e).items())) for e in events]
    return ("ok", described, sorted(vars(machine).items()))


@pytest.mark.parametrize("end_stream", [False, True])
def test_headers_in_one_step_end_as_h2s_two_inputs_do(end_stream: bool) -> None:
    """Every state × who the stream belongs to × which headers came already: the same events, state and errors."""
    flags = list(itertools.product([True, False, None], [False, True], [False, True], [False, True]))
    for state, (client, headers_received, trailers_received, headers_sent) in itertools.product(StreamState, flags):
        machines = [GrpcStreamStateMachine(5), GrpcStreamStateMachine(5)]
        for machine in machines:
            machine.state, machine.client = state, client
            machine.headers_received, machine.trailers_received = headers_received, trailers_received
            machine.headers_sent = headers_sent
        slow = _headers_outcome(machines[0], end_stream, one_step=False)
        fast = _headers_outcome(machines[1], end_stream, one_step=True)
        assert fast == slow, (state, client, headers_received, trailers_received)


@pytest.mark.parametrize("client_side", [True, False])
def test_a_new_stream_holds_what_h2s_own_constructor_makes(client_side: bool) -> None:
    """GrpcH2Stream builds h2's H2Stream (and its state machine) inline: the same attributes, the same values."""
    config = h2.config.H2Configuration(client_side=client_side)
    ours = GrpcH2Stream(7, config, inbound_window_size=1000, outbound_window_size=2000)
    theirs = H2Stream(7, config, inbound_window_size=1000, outbound_window_size=2000)
    assert type(ours.state_machine) is GrpcStreamStateMachine
    assert vars(ours.state_machine) == vars(theirs.state_machine)
    assert vars(ours._inbound_window_manager) == vars(theirs._inbound_window_manager)
    mine = {k: v for k, v in vars(ours).items() if k not in ("state_machine", "_inbound_window_manager")}
    h2s = {k: v for k, v in vars(theirs).items() if k not in ("state_machine", "_inbound_window_manager")}
    assert mine == h2s
