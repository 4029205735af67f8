"""The bounded latency histogram ``rpcviz call`` reports percentiles from (pure, no sockets)."""

from __future__ import annotations

import random

import pytest

from app.commands.histogram import LatencyHistogram
from app.commands.report import percentile


def _sample(n: int, seed: int) -> list[float]:
    """Log-normal latencies around 2 ms spanning ~10 us .. ~1 s, plus a few extremes."""
    rng = random.Random(seed)
    values = [rng.lognormvariate(-6.2, 1.5) for _ in range(n)]
    return [*values, 1.1e-6, 3e-6, 0.5, 12.0, 59.0]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_percentiles_within_one_percent_of_the_exact_ones(seed: int) -> None:
    """p50/p90/p99/p99.9/p100 of 20,005 known latencies: each within 1 % of the exact nearest-rank value."""
    values = _sample(20_000, seed)
    hist = LatencyHistogram()
    for v in values:
        hist.record(v)
    exact = sorted(values)
    for pct in (1, 50, 90, 99, 99.9, 100):
        want = percentile(exact, pct)
        got = hist.percentile(pct)
        assert abs(got - want) <= 0.01 * want, f"p{pct}: {got!r} vs exact {want!r}"
    assert hist.count == len(values)
    assert (hist.min, hist.max) == (exact[0], exact[-1])


def test_memory_is_fixed_whatever_the_number_of_samples() -> None:
    """1 us .. 60 s in 1,664 counters; 200,000 samples later it is still 1,664."""
    hist = LatencyHistogram()
    before = hist.buckets
    rng = random.Random(7)
    for _ in range(200_000):
        hist.record(rng.uniform(1e-6, 60.0))
    assert before == hist.buckets == 1664
    assert hist.count == 200_000


def test_edges_single_sample_empty_and_out_of_range() -> None:
    """One sample is exact; no sample reads 0; values outside 1 us .. 60 s are counted, read as the range's
    ends, and the maximum stays exact."""
    assert LatencyHistogram().percentile(50) == 0.0
    one = LatencyHistogram()
    one.record(0.0123)
    assert one.percentile(50) == one.percentile(99) == 0.0123
    wide = LatencyHistogram()
    for v in (0.0, 1e-9, 2e-9, 120.0, 3600.0, 7200.0):
        wide.record(v)
    assert wide.count == 6
    assert (wide.percentile(1), wide.percentile(100)) == (0.0, 7200.0)
    assert 0.0 < wide.percentile(50) <= 1.02e-6  # rank 3 of 6: 2 ns reads as the lowest bucket
    assert 60.0 <= wide.percentile(67) <= 2**26 * 1e-6  # rank 5: 1 h reads as the top bucket (ends at 67 s)
    with pytest.raises(ValueError):
        LatencyHistogram(lowest=1.0, highest=1.0)
