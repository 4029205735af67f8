"""gRFC A9 server connection management for one connection: MAX_CONNECTION_AGE, _IDLE and _AGE_GRACE.

- Age: ``max_connection_age`` after the connection opened, the server sends it
  away gracefully (GOAWAY debug ``max_age``); its calls then get
  ``max_connection_age_grace`` to finish before it is closed by force.
- Idle: once no call has been outstanding for ``max_connection_idle`` (counted
  from the moment the count of calls became zero, or from the handshake), the
  server sends it away gracefully (GOAWAY debug ``max_idle``).
- Age and idle get ±10 % jitter per connection (as grpc-go does), so that
  connections opened together do not all reconnect together. The grace gets none.

Nothing here runs per call except one clock read when a connection's last call
ends, and only when ``max_connection_idle`` is set.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

#: Age and idle are multiplied by a factor in [1 - JITTER, 1 + JITTER].
JITTER = 0.1


def jittered(seconds: float, rng: random.Random) -> float:
    return seconds * rng.uniform(1 - JITTER, 1 + JITTER)


class ConnectionKeepalive:
    """The age and idle timers of one connection; ``go_away(debug)`` and ``force_close()`` act on it."""

    __slots__ = (
        "_age_grace",
        "_age_timer",
        "_busy",
        "_force_close",
        "_go_away",
        "_grace_timer",
        "_idle",
        "_idle_since",
        "_idle_timer",
        "_loop",
        "age",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        max_connection_age: float | None,
        max_connection_age_grace: float | None,
        max_connection_idle: float | None,
        go_away: Callable[[bytes], None],
        force_close: Callable[[], None],
        rng: random.Random,
    ) -> None:
        self._loop = loop
        self._go_away = go_away
        self._force_close = force_close
        self._age_grace = max_connection_age_grace
        self._grace_timer: asyncio.TimerHandle | None = None
        #: This connection's jittered age limit (None = unlimited).
        self.age = jittered(max_connection_age, rng) if max_connection_age is not None else None
        self._age_timer = loop.call_later(self.age, self._on_age) if self.age is not None else None
        self._idle = jittered(max_connection_idle, rng) if max_connection_idle is not None else None
        self._busy = False
        self._idle_since = loop.time()
        self._idle_timer = (
            loop.call_at(self._idle_since + self._idle, self._on_idle) if self._idle is not None else None
        )

    def set_busy(self, busy: bool) -> None:
        """The connection's outstanding calls went from zero to some (True) or back to zero (False)."""
        self._busy = busy
        if not busy:
            self._idle_since = self._loop.time()

    def _on_idle(self) -> None:
        assert self._idle is not None
        self._idle_timer = None
        due = self._idle_since + self._idle
        if not self._busy and self._loop.time() >= due:
            self._cancel_age()
            self._go_away(b"max_idle")
            return
        # Busy, or idle for less than the limit: look again when it could first be due.
        self._idle_timer = self._loop.call_at(due if not self._busy else self._loop.time() + self._idle, self._on_idle)

    def _on_age(self) -> None:
        self._age_timer = None
        self._cancel_idle()
        self._go_away(b"max_age")
        if self._age_grace is not None:
            self._grace_timer = self._loop.call_later(self._age_grace, self._force_close)

    def _cancel_age(self) -> None:
        if self._age_timer is not None:
            self._age_timer.cancel()
            self._age_timer = None

    def _cancel_idle(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def cancel(self) -> None:
        """The connection closed: stop every timer."""
        self._cancel_age()
        self._cancel_idle()
        if self._grace_timer is not None:
            self._grace_timer.cancel()
            self._grace_timer = None
