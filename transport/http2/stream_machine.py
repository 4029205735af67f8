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

from h2.events import Event
from h2.exceptions import ProtocolError
from h2.stream import H2StreamStateMachine, StreamInputs, StreamState, _transitions

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
