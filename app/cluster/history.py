"""The cluster over time: per pod calls/s and latency in one-second buckets, the last 60 s.

Totals say where calls went; a history says when. :class:`History` turns the real cumulative
counters (each pod server's OK count, the client's per-pod latency histograms) into
per-second differences, keeps exactly ``seconds`` complete buckets per pod (memory is bounded by
the window, not by uptime or call count) and reports an immutable :class:`HistoryView`.

Seconds nobody sampled (the app's sampler pauses when idle) count as 0 calls: no calls happened
then, or the view would have changed and the sampler would have run.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import operator
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from app.commands.histogram import LatencyHistogram

#: The window the history keeps and shows, seconds (one bucket each).
HISTORY_SECONDS = 60


@dataclass(frozen=True, slots=True)
class PodHistory:
    """One pod over the window: calls per second (oldest first, one per complete second) and its
    client-side latency over the whole window, in ms (None: no call in the window)."""

    index: int
    name: str
    calls: tuple[int, ...]
    p50_ms: float | None = None
    p99_ms: float | None = None

    @property
    def now(self) -> int:
        """Calls in the last complete second (its calls/s now)."""
        return self.calls[-1] if self.calls else 0


@dataclass(frozen=True, slots=True)
class HistoryView:
    """What the history reports; compares by value, so an idle cluster's views stay equal."""

    #: The window, seconds: every series holds this many complete seconds, the newest last.
    seconds: int = HISTORY_SECONDS
    pods: tuple[PodHistory, ...] = ()
    #: Per second, the busiest pod's share of that second's calls, 0..1 (None: no calls that second).
    busiest_share: tuple[float | None, ...] = ()
    #: True while any second in the window (or the one in progress) has calls: the picture still
    #: moves, so keep sampling; False once it reads flat.
    scrolling: bool = False

    @property
    def peak(self) -> int:
        """The most calls any pod served in one second of the window (the shared scale's data)."""
        return max((max(p.calls, default=0) for p in self.pods), default=0)


class PodFigures(Protocol):
    """What the history reads of a pod (a :class:`~app.cluster.view.PodView` has it)."""

    @property
    def index(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def calls(self) -> int: ...


class _Series:
    """One pod's buckets: complete seconds in deques of ``seconds``, plus the second in progress."""

    __slots__ = ("calls", "latency", "name", "pending_calls", "pending_latency", "window", "window_count")

    def __init__(self, name: str, seconds: int) -> None:
        self.name = name
        self.calls: deque[int] = deque([0] * seconds, maxlen=seconds)
        #: Per complete second, the latency histogram's buckets that second added (sparse: index -> count).
        self.latency: deque[dict[int, int]] = deque(maxlen=seconds)
        #: The window's latency buckets summed (allocated at the first call), and their total.
        self.window: list[int] | None = None
        self.window_count = 0
        self.pending_calls = 0
        self.pending_latency: dict[int, int] = {}

    def close_second(self) -> int:
        """Push the second in progress into the window (the oldest leaves it); returns its calls."""
        calls = self.pending_calls
        self.calls.append(calls)
        latency = self.pending_latency
        if len(self.latency) == self.latency.maxlen:
            oldest = self.latency.popleft()
            if self.window is not None:
                for index, n in oldest.items():
                    self.window[index] -= n
                self.window_count -= sum(oldest.values())
        self.latency.append(latency)
        if latency:
            if self.window is None:
                self.window = [0] * _BUCKETS
            for index, n in latency.items():
                self.window[index] += n
            self.window_count += sum(latency.values())
        self.pending_calls = 0
        self.pending_latency = {}
        return calls

    def percentile_ms(self, pct: float) -> float | None:
        """Nearest-rank percentile of the window's latencies, ms (bucket midpoints: within 1 %)."""
        if self.window is None or not self.window_count:
            return None
        rank = max(1, math.ceil(self.window_count * pct / 100))
        seen = 0
        for index, n in enumerate(self.window):
            seen += n
            if seen >= rank:
                return round(_REFERENCE.bucket_value(index) * 1000, 3)
        return None  # pragma: no cover - the counts add up to window_count


#: The histogram layout the client records into (default range): its bucket count and midpoints.
_REFERENCE = LatencyHistogram()
_BUCKETS = _REFERENCE.buckets


class History:
    """Feed it the cluster's counters with :meth:`sample` (``Cluster.view()`` does); read the view it returns."""

    def __init__(self, seconds: int = HISTORY_SECONDS, clock: Callable[[], float] | None = None) -> None:
        if seconds < 1:
            raise ValueError(f"the history keeps at least 1 second, not {seconds}")
        self.seconds = seconds
        #: Seconds since any epoch (the event loop's time by default; tests inject their own).
        self.clock: Callable[[], float] = clock or (lambda: asyncio.get_running_loop().time())
        self.reset()

    def reset(self) -> None:
        """Forget everything (``Cluster.reset()`` zeroes the counters the history reads)."""
        self._series: dict[int, _Series] = {}
        self._share: deque[float | None] = deque([None] * self.seconds, maxlen=self.seconds)
        #: The second in progress (None before the first sample).
        self._second: int | None = None
        #: Per pod index, the OK count seen last; per landed name, the histogram and its buckets seen last.
        self._calls_seen: dict[int, int] = {}
        self._latency_seen: dict[str, tuple[LatencyHistogram, int, list[int]]] = {}
        self._view: HistoryView | None = None

    def sample(
        self, pods: Iterable[PodFigures], latency: Mapping[str, LatencyHistogram], now: float | None = None
    ) -> HistoryView:
        """Close the seconds that ended, add what the counters gained since the last sample to the
        second in progress, and return the view (the same object while nothing it shows changed)."""
        second = math.floor(self.clock() if now is None else now)
        pods = list(pods)
        changed = self._advance(second)
        present = {pod.index for pod in pods}
        for gone in [index for index in self._series if index not in present]:
            del self._series[gone]
            self._calls_seen.pop(gone, None)
            changed = True
        was_pending = self._pending()
        for pod in pods:
            series = self._series.get(pod.index)
            if series is None or series.name != pod.name:
                series = self._series[pod.index] = _Series(pod.name, self.seconds)
                changed = True
            seen = self._calls_seen.get(pod.index, 0)
            series.pending_calls += pod.calls - seen if pod.calls >= seen else pod.calls  # a reset counter: from 0
            self._calls_seen[pod.index] = pod.calls
            self._add_latency(series, latency.get(pod.name))
        for name in [name for name in self._latency_seen if name not in latency]:
            del self._latency_seen[name]
        if changed or self._view is None or was_pending != self._pending():
            self._view = self._make_view()
        return self._view

    def _advance(self, second: int) -> bool:
        """Close every second before ``second`` (the missed ones as 0 calls); whether any closed."""
        if self._second is None:
            self._second = second
            return True
        if second <= self._second:
            return False
        for _ in range(min(second - self._second, self.seconds + 1)):
            calls = [series.close_second() for series in self._series.values()]
            total = sum(calls)
            self._share.append(max(calls) / total if total else None)
        self._second = second
        return True

    def _add_latency(self, series: _Series, histogram: LatencyHistogram | None) -> None:
        if histogram is None:
            return
        seen = self._latency_seen.get(series.name)
        if seen is not None and seen[0] is histogram and seen[1] == histogram.count:
            return  # nothing new (the common case: one comparison, no copy)
        counts = histogram.counts()
        if seen is None or seen[0] is not histogram or seen[1] > histogram.count:
            base = [0] * len(counts)  # a histogram we never saw (or a new one after a reset): all of it is new
        else:
            base = seen[2]
        pending = series.pending_latency
        # The buckets that moved, found at C speed (a second's calls touch a few of 1,664).
        for index in itertools.compress(range(len(counts)), map(operator.ne, counts, base)):
            gained = counts[index] - base[index]
            if gained > 0:
                pending[index] = pending.get(index, 0) + gained
        self._latency_seen[series.name] = (histogram, histogram.count, counts)

    def _pending(self) -> bool:
        return any(series.pending_calls for series in self._series.values())

    def _make_view(self) -> HistoryView:
        pods = tuple(
            PodHistory(
                index=index,
                name=series.name,
                calls=tuple(series.calls),
                p50_ms=series.percentile_ms(50),
                p99_ms=series.percentile_ms(99),
            )
            for index, series in sorted(self._series.items())
        )
        scrolling = self._pending() or any(any(p.calls) for p in pods)
        return HistoryView(seconds=self.seconds, pods=pods, busiest_share=tuple(self._share), scrolling=scrolling)

    def seconds_held(self) -> int:
        """Per-second buckets held, all pods summed (calls and latency): bounded by the window."""
        return sum(len(s.calls) + len(s.latency) for s in self._series.values())
