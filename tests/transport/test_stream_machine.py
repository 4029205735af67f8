"""Our stream state machine makes every transition h2's does: each state × each input, events, state and errors."""

from __future__ import annotations

import itertools

import pytest
from h2.stream import H2StreamStateMachine, StreamInputs, StreamState

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
