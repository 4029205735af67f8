"""``rpcviz serve`` reports its load through ORCA (gRFC A51): a real process under a bounded load,
its per-call reports read from the trailers by our client."""

from __future__ import annotations

import asyncio
import statistics
import time

from tests.cli.test_cli import assert_one_line_error, rpcviz
from tests.helpers import FAST, greet, wait_until
from tests.processes import ServeProcess
from transport import Channel
from transport.client import OrcaOobWatcher
from transport.orca import LOAD_REPORT_KEY, OrcaLoadReport

CALLS = 500
CONCURRENCY = 8


async def _drive(address: str) -> tuple[float, list[OrcaLoadReport]]:
    """CALLS greets, CONCURRENCY at a time: the measured calls/s, and the report of each of the
    second half's calls (their sample windows lie inside the run)."""
    reports: list[OrcaLoadReport] = []
    done = 0
    async with Channel(address, options=FAST) as channel:
        await greet(channel)  # connected before the clock starts

        async def worker() -> None:
            nonlocal done
            while done < CALLS:
                done += 1
                n = done
                result = await greet(channel)
                if n > CALLS // 2:  # the first sample is an interval after the start
                    value = result.metadata_value(LOAD_REPORT_KEY)
                    assert isinstance(value, bytes), f"call {n} carried no load report"
                    reports.append(OrcaLoadReport.FromString(value))

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        rate = CALLS / (time.monotonic() - started)
        (sc,) = channel.subchannels
        assert sc.stats.load_reports_malformed == 0 and sc.stats.load_reports >= CALLS // 2
    return rate, reports


async def test_serve_reports_cpu_rate_and_busy_fraction_under_load() -> None:
    """500 greets on 4 workers of 5 ms each, 8 at a time: the reports the second half of them carry say
    the process used CPU (a fraction of one core, > 0), served about the measured rate (within 2x either
    way: sampling windows, not the whole run) and kept its workers busy."""
    pod = await ServeProcess.start("pod-1", 0, "--orca-interval", "0.1", "--service-time", "0.005", "--workers", "4")
    try:
        rate, reports = await _drive(pod.address)
    finally:
        out = await pod.terminate()
    assert "stopped after" in out
    cpu = [r.cpu_utilization for r in reports]
    rps = statistics.median(r.rps_fractional for r in reports)
    busy = [r.utilization["busy"] for r in reports]
    assert 0 < max(cpu) <= 2.0, cpu  # this process's CPU time over wall time, 2 cores at most here
    assert rate / 2 <= rps <= rate * 2, f"reported {rps:.0f} calls/s, measured {rate:.0f}"
    assert 0 < max(busy) <= 1.0, busy
    assert all(r.eps == 0 for r in reports)


async def test_serve_no_orca_serves_no_orca() -> None:
    """--no-orca: no out-of-band service (UNIMPLEMENTED) and no report on the calls."""
    pod = await ServeProcess.start("pod-1", 0, "--no-orca")
    try:
        async with Channel(pod.address, options=FAST) as channel:
            await greet(channel)
            watcher = OrcaOobWatcher(channel, interval=0.05)
            await wait_until(lambda: watcher.unimplemented == 1, what="UNIMPLEMENTED")
            result = await greet(channel)
            assert result.metadata_value(LOAD_REPORT_KEY) is None
            assert channel.subchannels[0].stats.load_reports == 0
    finally:
        await pod.terminate()


def test_serve_workers_without_service_time_is_one_line() -> None:
    result = rpcviz("serve", "--port", "0", "--workers", "2")
    assert_one_line_error(result)
    assert "--workers needs --service-time" in result.stderr
