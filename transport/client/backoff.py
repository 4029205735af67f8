"""gRPC connection backoff (connection-backoff.md): 1 s, x1.6, +/-20 % jitter, 120 s cap."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BackoffConfig:
    """The spec's defaults; tests shrink them to run fast."""

    base_delay: float = 1.0
    multiplier: float = 1.6
    jitter: float = 0.2
    max_delay: float = 120.0
    #: Every connection attempt gets at least this long.
    min_connect_timeout: float = 20.0

    def __post_init__(self) -> None:
        if self.base_delay <= 0 or self.multiplier < 1 or not 0 <= self.jitter < 1 or self.max_delay < self.base_delay:
            raise ValueError(f"invalid backoff configuration {self}")


class ExponentialBackoff:
    """Delays between connection attempts; :meth:`reset` once a connection is READY."""

    def __init__(self, config: BackoffConfig, rng: random.Random | None = None) -> None:
        self.config = config
        self._rng = rng or random.Random()
        self._current = config.base_delay

    @property
    def current(self) -> float:
        """The un-jittered delay the next attempt will wait."""
        return self._current

    def connect_timeout(self) -> float:
        """How long the coming attempt may take: the larger of the backoff and the minimum."""
        return max(self._current, self.config.min_connect_timeout)

    def next_delay(self) -> float:
        """The (jittered) wait before the next attempt; grows the backoff."""
        c = self.config
        delay = self._current * (1 + self._rng.uniform(-c.jitter, c.jitter))
        self._current = min(self._current * c.multiplier, c.max_delay)
        return delay

    def reset(self) -> None:
        self._current = self.config.base_delay
