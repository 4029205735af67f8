"""grpc's graceful GOAWAY: tell the client to stop, learn what it already sent, finish that.

A single GOAWAY with the highest stream id seen so far races with requests the
client sent before it read the GOAWAY: those arrive with higher ids, are
refused, and if the socket is then closed with them unread the kernel answers
with RST and the client can lose responses already written. grpc-go
(``outgoingGoAwayHandler``) and grpc-core (``GracefulGoaway``) do this instead:

1. GOAWAY(last-stream-id 2^31-1, NO_ERROR, debug) **and a PING**: "stop opening
   streams"; every stream is still accepted;
2. the PING's ACK comes back after everything the client sent before it, so
   once it arrives (or after ``ping_timeout``) the server knows the last stream
   the client opened: the final GOAWAY carries that id; streams above it are
   refused (REFUSED_STREAM) and the client retries them elsewhere;
3. the connection closes only once the streams at or below it are done, by
   half-closing and letting the client close (see ``ServerConnection``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from h2.errors import ErrorCodes

from transport.http2 import GrpcH2Connection

#: The largest stream id: "every stream may still be processed".
MAX_STREAM_ID = 2**31 - 1
#: Opaque data of the PING that follows the first GOAWAY.
PING_DATA = b"goaway\x00\x01"
#: How long to wait for that PING's ACK before sending the final GOAWAY anyway
#: (grpc-go waits 1 min, grpc-core 20 s; a live client answers within one RTT).
PING_TIMEOUT = 5.0


class GracefulGoaway:
    """Runs steps 1 and 2 for one connection; ``on_final(last_stream_id)`` is step 3's cue."""

    __slots__ = ("_debug", "_h2", "_on_final", "_timer", "last_stream_id")

    def __init__(
        self,
        h2c: GrpcH2Connection,
        loop: asyncio.AbstractEventLoop,
        debug: bytes,
        on_final: Callable[[int], None],
        ping_timeout: float = PING_TIMEOUT,
    ) -> None:
        self._h2 = h2c
        self._debug = debug
        self._on_final = on_final
        #: Set once the final GOAWAY is queued: streams above it are refused.
        self.last_stream_id: int | None = None
        h2c.send_goaway(MAX_STREAM_ID, ErrorCodes.NO_ERROR, debug)
        h2c.ping(PING_DATA)
        self._timer: asyncio.TimerHandle | None = loop.call_later(ping_timeout, self.finalize)

    def on_ping_ack(self, data: bytes) -> None:
        if data == PING_DATA:
            self.finalize()

    def finalize(self) -> None:
        """Queue the final GOAWAY with the highest stream id the client opened (once)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.last_stream_id is not None:
            return
        self.last_stream_id = last = self._h2.highest_inbound_stream_id
        self._h2.send_goaway(last, ErrorCodes.NO_ERROR, self._debug)
        self._on_final(last)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
