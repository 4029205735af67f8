"""What happened in the cluster, in order: connections, GOAWAYs, re-resolutions, pods, switches.

Each event is recorded when the transport reports it (a subchannel's state
change, a resolution) or when the cluster acts (a pod added, a configuration
applied), so the screen can say "GOAWAY max_age from pod #3" only after it
happened. Bounded: the newest :data:`KEEP` are kept.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

KEEP = 50


@dataclass(frozen=True, slots=True)
class Event:
    #: 1, 2, 3 … since the cluster was made (numbers are never reused).
    number: int
    #: "connect", "goaway", "lost", "resolve", "scale", "pod", "configuration".
    kind: str
    text: str


class EventLog:
    def __init__(self, keep: int = KEEP) -> None:
        self._events: deque[Event] = deque(maxlen=keep)
        self._count = 0

    def add(self, kind: str, text: str) -> Event:
        self._count += 1
        event = Event(self._count, kind, text)
        self._events.append(event)
        return event

    @property
    def count(self) -> int:
        """Events recorded so far, including those no longer kept."""
        return self._count

    def recent(self, n: int) -> tuple[Event, ...]:
        """The newest ``n`` events, oldest first."""
        if n <= 0:
            return ()
        return tuple(self._events)[-n:]

    def of_kind(self, kind: str) -> list[Event]:
        return [event for event in self._events if event.kind == kind]
