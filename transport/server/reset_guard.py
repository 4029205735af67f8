"""Rapid-reset protection (CVE-2023-44487): notice a client that opens streams only to reset them.

A connection is flagged when, within one window, the client reset more than
``max_resets`` streams and those resets are more than ``max_ratio`` of the
streams it opened. Ordinary cancellation (deadlines, a user giving up) stays
far below both; a flood crosses them within milliseconds. grpc-java/Netty
use 200 resets per 30 s; Envoy a ratio of reset to opened streams.
"""

from __future__ import annotations

from collections.abc import Callable


class ResetGuard:
    __slots__ = ("_clock", "_opened", "_resets", "_window", "_window_start", "max_ratio", "max_resets")

    def __init__(
        self,
        clock: Callable[[], float],
        max_resets: int = 200,
        max_ratio: float = 0.5,
        window: float = 30.0,
    ) -> None:
        self._clock = clock
        self.max_resets = max_resets
        self.max_ratio = max_ratio
        self._window = window
        self._window_start = clock()
        self._opened = 0
        self._resets = 0

    def _roll(self) -> None:
        now = self._clock()
        if now - self._window_start > self._window:
            self._window_start = now
            self._opened = self._resets = 0

    def stream_opened(self) -> None:
        # This runs on every call: the window is looked at every 64 streams (and at every reset), not each time.
        if not self._opened & 63:
            self._roll()
        self._opened += 1

    def reset(self) -> bool:
        """Count a client reset; True when the connection should be closed."""
        self._roll()
        self._resets += 1
        return self._resets > self.max_resets and self._resets > self.max_ratio * max(self._opened, 1)
