"""h2's stream state machine, with the transition looked up by identity instead of by enum hash.

``H2StreamStateMachine.process_input`` finds each transition in a dict keyed by
``(StreamState, StreamInputs)``; hashing an Enum member runs Python code
(``Enum.__hash__`` hashes its name), twice per input, and a unary call makes
seven inputs on each side. :class:`GrpcStreamStateMachine` looks the same
transitions up by the members' identities (the members are singletons), runs
the same transition functions with the same error handling, and hands anything
it does not know (an invalid input in this state, a value that is not a member)
to h2's own ``process_input``, which fails it exactly as before.
"""

from __future__ import annotations

from typing import Any

from h2.events import Event, RequestReceived, ResponseReceived, StreamEnded, TrailersReceived
from h2.exceptions import ProtocolError
from h2.stream import H2StreamStateMachine, StreamClosedBy, StreamInputs, StreamState, _transitions

#: h2's transition table, keyed by the members' ids.
_BY_ID: dict[tuple[int, int], Any] = {(id(state), id(input_)): step for (state, input_), step in _transitions.items()}


class GrpcStreamStateMachine(H2StreamStateMachine):
    """``H2StreamStateMachine`` whose ``process_input`` skips the enum hashing (same transitions, same errors)."""

    def process_input(self, input_: StreamInputs) -> list[Event]:
        step = _BY_ID.get((id(self.state), id(input_)))
        if step is None:
            result: list[Event] = super().process_input(input_)  # h2 raises, as it always did
            return result
        func, target_state = step
        previous_state = self.state
        self.state = target_state
        if func is None:
            return []
        try:
            events: list[Event] = func(self, previous_state)
        except ProtocolError:
            self.state = StreamState.CLOSED
            raise
        except AssertionError as err:  # pragma: no cover - as h2
            self.state = StreamState.CLOSED
            raise ProtocolError(err) from err
        return events

    def receive_headers(self, end_stream: bool) -> list[Event]:
        """RECV_HEADERS, then RECV_END_STREAM if ``end_stream``: h2's two inputs in one step for the blocks
        every call receives (a request on a new stream; a response, or trailers, on a client's half-closed
        one), through :meth:`process_input` for any other. ``test_stream_machine`` checks every case."""
        state = self.state
        first: RequestReceived | ResponseReceived | TrailersReceived
        if state is _IDLE and not self.headers_received and not self.trailers_received:
            self.client = False  # (h2's request_received)
            self.headers_received = True
            self.state = _OPEN
            first = RequestReceived(stream_id=self.stream_id)
        elif state is _HALF_CLOSED_LOCAL and (self.headers_received or self.client is True):
            if not self.headers_received:  # (h2's response_received)
                self.headers_received = True
                first = ResponseReceived(stream_id=self.stream_id)
            elif not self.trailers_received:
                self.trailers_received = True
                first = TrailersReceived(stream_id=self.stream_id)
            else:
                return self._receive_headers_slowly(end_stream)  # h2 fails it
        else:
            return self._receive_headers_slowly(end_stream)
        if not end_stream:
            return [first]
        first.stream_ended = ended = self.end_received()
        return [first, ended]

    def end_received(self) -> StreamEnded:
        """RECV_END_STREAM in OPEN or HALF_CLOSED_LOCAL (the caller knows which), in one step: h2's
        ``stream_half_closed`` or ``stream_ended``."""
        if self.state is _OPEN:
            self.state = _HALF_CLOSED_REMOTE
        else:
            self.stream_closed_by = StreamClosedBy.RECV_END_STREAM
            self.state = _CLOSED
        return StreamEnded(stream_id=self.stream_id)

    def _receive_headers_slowly(self, end_stream: bool) -> list[Event]:
        events = self.process_input(StreamInputs.RECV_HEADERS)
        if end_stream:
            ended = self.process_input(StreamInputs.RECV_END_STREAM)
            events[0].stream_ended = ended[0]  # type: ignore[attr-defined]
            events += ended
        return events


_IDLE, _OPEN, _CLOSED = StreamState.IDLE, StreamState.OPEN, StreamState.CLOSED
_HALF_CLOSED_LOCAL, _HALF_CLOSED_REMOTE = StreamState.HALF_CLOSED_LOCAL, StreamState.HALF_CLOSED_REMOTE
