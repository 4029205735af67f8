"""A latency histogram of fixed size: log-linear buckets, percentiles within 1 %.

``rpcviz call -n 10000000`` must not keep ten million floats. Each power of two
between ``lowest`` and ``highest`` is cut into ``SUB_BUCKETS`` equal buckets (as
HdrHistogram does), so a bucket is at most 1/64 of its lower bound wide and its
midpoint is within 1/128 (0.8 %) of any value in it. 1 us .. 60 s takes 26
octaves: 1,664 counters, whatever the number of samples.
"""

from __future__ import annotations

import math

#: Buckets per power of two: the midpoint of one is within 1/(2*64) of its values.
SUB_BUCKETS = 64


class LatencyHistogram:
    """Counts of durations in seconds; ``percentile`` answers from the buckets.

    Values below ``lowest`` share the first bucket and values above ``highest``
    the last; the exact minimum and maximum are kept: the lowest and highest
    ranks answer them exactly, and every other answer is clamped to them.
    """

    __slots__ = ("_counts", "_octaves", "count", "highest", "lowest", "max", "min", "total")

    def __init__(self, lowest: float = 1e-6, highest: float = 60.0) -> None:
        if not 0 < lowest < highest:
            raise ValueError("need 0 < lowest < highest")
        self.lowest = lowest
        self.highest = highest
        self._octaves = math.ceil(math.log2(highest / lowest))
        self._counts = [0] * (self._octaves * SUB_BUCKETS)
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = -math.inf

    @property
    def buckets(self) -> int:
        """How many counters it holds: fixed at construction."""
        return len(self._counts)

    def counts(self) -> list[int]:
        """A copy of the bucket counters: two copies' difference is what was recorded between them
        (the cluster's history windows latency this way, see ``app/cluster/history.py``)."""
        return list(self._counts)

    def bucket_value(self, index: int) -> float:
        """The duration bucket ``index`` stands for (its midpoint, within 0.8 % of its values)."""
        return self._midpoint(index)

    def record(self, seconds: float) -> None:
        self._counts[self._index(seconds)] += 1
        self.count += 1
        self.total += seconds
        self.min = min(self.min, seconds)
        self.max = max(self.max, seconds)

    def percentile(self, pct: float) -> float:
        """Nearest-rank percentile (0 with no samples), within 1 % of the exact one."""
        if not self.count:
            return 0.0
        rank = max(1, math.ceil(self.count * pct / 100))
        if rank >= self.count:
            return self.max
        if rank == 1:
            return self.min
        seen = 0
        for index, n in enumerate(self._counts):
            seen += n
            if seen >= rank:
                return min(max(self._midpoint(index), self.min), self.max)
        return self.max  # pragma: no cover - the counts add up to count

    def _index(self, seconds: float) -> int:
        scaled = seconds / self.lowest
        if not scaled >= 1.0:  # below the range, zero, negative or NaN
            return 0
        mantissa, exponent = math.frexp(scaled)  # scaled = mantissa * 2**exponent, 0.5 <= mantissa < 1
        octave = exponent - 1
        if octave >= self._octaves:
            return len(self._counts) - 1
        return octave * SUB_BUCKETS + int((2 * mantissa - 1) * SUB_BUCKETS)

    def _midpoint(self, index: int) -> float:
        octave, sub = divmod(index, SUB_BUCKETS)
        return self.lowest * 2.0**octave * (1 + (sub + 0.5) / SUB_BUCKETS)
