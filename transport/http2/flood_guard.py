"""Bounds on the control frames a peer can make one connection answer (CVE-2019-9512 / 9515 class).

Every PING and SETTINGS frame obliges the receiver to queue an acknowledgement,
and frames on closed streams oblige a RST_STREAM; a peer that sends them without
reading grows the sender's write buffer without limit. :class:`FloodGuard` is the
server's policy, asked before each such answer:

- **PING** follows gRFC A8's server enforcement, as grpc-go's ``http2_server.go
  handlePing`` implements it: a ping sooner than ``ping_min_time`` after the
  previous one (two hours when no call is open and ``permit_pings_without_calls``
  is false) is a strike, strikes reset whenever the server has sent HEADERS or
  DATA since the previous ping (so grpc's BDP pings, which follow data, never
  count), and more than :data:`MAX_PING_STRIKES` strikes end the connection with
  GOAWAY ENHANCE_YOUR_CALM ``too_many_pings``.
- **SETTINGS**: more than ``max_settings`` frames within ``settings_window``
  seconds (a client sends one, and a few more when grpc's BDP estimator moves
  its window).
- **Backlog**: more than ``max_control_backlog`` bytes of our own answers queued
  while the peer is not reading (our write buffer never emptied in between);
  nghttp2 bounds the same queue (``max_outbound_ack``, 1000 frames).

Each check returns the GOAWAY debug data when the connection should calm down,
else None. :class:`HeaderBlockTimer` bounds how long a header block may stay
unfinished (HEADERS without END_HEADERS, then nothing).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

#: gRFC A8 / grpc-go: ping strikes tolerated before GOAWAY ENHANCE_YOUR_CALM.
MAX_PING_STRIKES = 2
#: gRFC A8 / grpc-go ``defaultPingTimeout``: with no call open (and pings without calls not
#: permitted), a client should not ping more often than this.
PING_INTERVAL_WITHOUT_CALLS = 2 * 60 * 60.0
#: Default gRFC A8 ``min_time`` (grpc-go ``defaultKeepalivePolicyMinTime``): 5 minutes.
DEFAULT_PING_MIN_TIME = 300.0
#: SETTINGS frames a peer may send within :data:`SETTINGS_WINDOW` seconds.
MAX_SETTINGS = 100
SETTINGS_WINDOW = 10.0
#: Bytes of our own control answers (PING/SETTINGS ACK, RST_STREAM) queued while the peer does not read.
MAX_CONTROL_BACKLOG = 64 * 1024
#: Seconds a header block may stay unfinished (its CONTINUATION frames are sent back to back).
DEFAULT_HEADER_BLOCK_TIMEOUT = 5.0

TOO_MANY_PINGS = b"too_many_pings"
TOO_MANY_SETTINGS = b"too_many_settings"
CONTROL_BACKLOG = b"control_frame_backlog"


class FloodGuard:
    """The server's limits on PING, SETTINGS and the answers a non-reading peer lets pile up."""

    __slots__ = (
        "_backlog",
        "_clock",
        "_control_bytes",
        "_last_ping",
        "_settings",
        "_settings_window_start",
        "max_control_backlog",
        "max_settings",
        "permit_pings_without_calls",
        "ping_min_time",
        "ping_strikes",
        "pings",
        "settings_window",
    )

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        backlog: Callable[[], int],
        ping_min_time: float = DEFAULT_PING_MIN_TIME,
        permit_pings_without_calls: bool = False,
        max_settings: int = MAX_SETTINGS,
        settings_window: float = SETTINGS_WINDOW,
        max_control_backlog: int = MAX_CONTROL_BACKLOG,
    ) -> None:
        self._clock = clock
        #: Bytes written to the socket's buffer but not yet taken by the kernel (the peer is not reading).
        self._backlog = backlog
        self.ping_min_time = ping_min_time
        self.permit_pings_without_calls = permit_pings_without_calls
        self.max_settings = max_settings
        self.settings_window = settings_window
        self.max_control_backlog = max_control_backlog
        self.ping_strikes = 0
        #: PINGs (not ACKs) received.
        self.pings = 0
        self._last_ping: float | None = None
        self._settings = 0
        self._settings_window_start = clock()
        self._control_bytes = 0

    def ping(self, data_sent: bool, active_calls: Callable[[], int]) -> bytes | None:
        """A PING (not an ACK) arrived; ``data_sent``: we sent HEADERS or DATA since the previous one."""
        self.pings += 1
        now = self._clock()
        last, self._last_ping = self._last_ping, now
        if data_sent:
            self.ping_strikes = 0
            return None
        if last is not None:
            if not self.permit_pings_without_calls and active_calls() < 1:
                allowed = PING_INTERVAL_WITHOUT_CALLS
            else:
                allowed = self.ping_min_time
            if now - last < allowed:
                self.ping_strikes += 1
        return TOO_MANY_PINGS if self.ping_strikes > MAX_PING_STRIKES else None

    def settings(self) -> bytes | None:
        """A SETTINGS frame (not an ACK) arrived."""
        now = self._clock()
        if now - self._settings_window_start > self.settings_window:
            self._settings_window_start = now
            self._settings = 0
        self._settings += 1
        return TOO_MANY_SETTINGS if self._settings > self.max_settings else None

    def control_answer(self, nbytes: int) -> bytes | None:
        """We are about to queue ``nbytes`` of a control answer (ACK, RST_STREAM)."""
        if self._backlog() == 0:
            self._control_bytes = 0  # the peer took everything we wrote: nothing piles up
        self._control_bytes += nbytes
        return CONTROL_BACKLOG if self._control_bytes > self.max_control_backlog else None


class HeaderBlockTimer:
    """Ends a connection whose header block stays unfinished for ``timeout`` seconds.

    Armed only when a HEADERS frame without END_HEADERS arrives (never on the
    usual one-frame header block), so it costs nothing per call.
    """

    __slots__ = ("_expire", "_handle", "_loop", "_pending", "timeout")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        timeout: float,
        pending: Callable[[int], bool],
        expire: Callable[[], None],
    ) -> None:
        self._loop = loop
        self.timeout = timeout
        #: Is header block number ``n`` still unfinished?
        self._pending = pending
        self._expire = expire
        self._handle: asyncio.TimerHandle | None = None

    def started(self, block: int) -> None:
        """Header block number ``block`` began: it must end within the timeout."""
        self.cancel()
        self._handle = self._loop.call_later(self.timeout, self._fire, block)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self, block: int) -> None:
        self._handle = None
        if self._pending(block):
            self._expire()
