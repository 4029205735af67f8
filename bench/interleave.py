"""One C=1 client, one server, several ways in: a direct channel and one channel per proxy, taking turns.

``python -m bench.interleave --direct PORT --via NAME=PORT ... [--watch NAME=PID ...] [--calls N] [--duration S]
[--warmup W] [--batch B] [--segments K]``

Each round, every channel makes a batch of B SayHello calls at C=1 (our client), in an order that rotates by one
each round, until every channel made N calls or S seconds passed: the machine's slow and fast moments fall on
every channel alike, so "through a proxy minus direct" is what the proxy adds. The watched processes' CPU is
read from ``/proc/PID/schedstat`` (ns; ``/proc/PID/stat`` ticks where it is missing) at every batch boundary,
so each channel also gets the CPU every watched process spent while its batches ran.

Prints one JSON line: ``{"channels": {name: row}, "window_cpu_s": {watch: s}, "rounds", "batch", "cpu_source"}``;
a row has calls, ok, errors, seconds, p50_us, p99_us, ``segment_p50_us`` (p50 in each of K consecutive parts
of the run: how much it moved), client_cpu_us (per call) and ``cpu_s`` ({watch: seconds during its batches}).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from app.greeter.helloworld_pb2 import HelloReply, HelloRequest
from bench.clients import CALL_TIMEOUT, percentile
from bench.procs import proc_cpu_seconds

Call = Callable[[HelloRequest], Awaitable[HelloReply]]
REQUEST = HelloRequest(name="world")


def cpu_seconds(pid: int) -> float | None:
    """Time ``pid``'s main thread ran on a CPU (every watched process works on one: an event loop, an nginx
    worker): ns from schedstat, else utime + stime in 10 ms ticks; None once it is gone."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_bytes().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return proc_cpu_seconds(pid)


def cpu_source(pid: int) -> str:
    return "schedstat" if Path(f"/proc/{pid}/schedstat").exists() else "stat ticks"


class Route:
    """One way in to the server: its call, and what it measured."""

    def __init__(self, name: str, call: Call, close: Callable[[], Awaitable[None]], watched: list[str]) -> None:
        self.name, self.call, self.close = name, call, close
        self.latencies: list[int] = []
        self.round_ends: list[int] = []
        self.ok = self.errors = 0
        self.wall = self.cpu = 0.0
        self.cpu_s = dict.fromkeys(watched, 0.0)

    async def batch(self, n: int, keep: bool) -> None:
        clock = time.perf_counter_ns
        for _ in range(n):
            t0 = clock()
            try:
                reply = await self.call(REQUEST)  # bounded by the wait_for around the batch
            except Exception:
                self.errors += 1
                if self.errors > 100:
                    raise
                continue
            t1 = clock()
            if keep:
                self.latencies.append(t1 - t0)
                self.ok += reply.message == "Hello, world!"

    def _calls_after(self, rounds: int) -> int:
        return self.round_ends[rounds - 1] if rounds else 0

    def row(self, segments: int) -> dict[str, Any]:
        n, rounds = len(self.latencies), len(self.round_ends)
        parts = []
        for k in range(segments):
            lo, hi = self._calls_after(rounds * k // segments), self._calls_after(rounds * (k + 1) // segments)
            if hi > lo:
                parts.append(percentile(sorted(self.latencies[lo:hi]), 0.50))
        ordered = sorted(self.latencies)
        return {
            "calls": n,
            "ok": self.ok,
            "errors": self.errors,
            "seconds": self.wall,
            "p50_us": percentile(ordered, 0.50),
            "p99_us": percentile(ordered, 0.99),
            "segment_p50_us": parts,
            "client_cpu_us": self.cpu / n * 1e6 if n else None,
            "cpu_s": self.cpu_s,
        }


async def connect(port: int) -> tuple[Call, Callable[[], Awaitable[None]]]:
    from app.greeter.stub import GreeterStub
    from transport import Channel, ConnectivityState

    channel = Channel.dial(f"127.0.0.1:{port}", "pick_first")
    await channel.wait_for_state(ConnectivityState.READY, timeout=CALL_TIMEOUT)
    return GreeterStub(channel).SayHello, lambda: channel.close(grace=0)


def _read_all(watch: dict[str, int]) -> dict[str, float | None]:
    return {name: cpu_seconds(pid) for name, pid in watch.items()}


def _spent(before: dict[str, float | None], after: dict[str, float | None]) -> dict[str, float]:
    """CPU seconds each process spent between two readings (processes read both times only)."""
    return {name: a - b for name, a in after.items() if a is not None and (b := before.get(name)) is not None}


async def measure(
    ports: dict[str, int], watch: dict[str, int], calls: int, duration: float, warmup: int, batch: int, segments: int
) -> dict[str, Any]:
    """``ports``: channel name → port (``direct`` first); ``watch``: process name → pid."""
    channels: list[Route] = []
    try:
        for name, port in ports.items():
            call, close = await connect(port)
            channels.append(Route(name, call, close, list(watch)))
        for ch in channels:
            await asyncio.wait_for(ch.batch(warmup, keep=False), 60)
        rounds = 0
        end = time.perf_counter() + duration
        window0 = before = _read_all(watch)
        while time.perf_counter() < end and min(len(ch.latencies) for ch in channels) < calls:
            for i in range(len(channels)):
                ch = channels[(i + rounds) % len(channels)]
                cpu0, wall0 = time.process_time(), time.perf_counter()
                await asyncio.wait_for(ch.batch(batch, keep=True), 60)
                ch.cpu += time.process_time() - cpu0
                ch.wall += time.perf_counter() - wall0
                after = _read_all(watch)
                for name, spent in _spent(before, after).items():
                    ch.cpu_s[name] += spent
                before = after
            rounds += 1
            for ch in channels:
                ch.round_ends.append(len(ch.latencies))
    finally:
        for ch in channels:
            await ch.close()
    window = _spent(window0, before)
    first = next(iter(watch.values()), None)
    return {
        "channels": {ch.name: ch.row(segments) for ch in channels},
        "window_cpu_s": window,
        "rounds": rounds,
        "batch": batch,
        "cpu_source": cpu_source(first) if first is not None else None,
    }


def _pairs(values: list[str], what: str) -> dict[str, int]:
    out = {}
    for value in values:
        name, sep, number = value.rpartition("=")
        if not sep or not name or not number.isdigit():
            raise SystemExit(f"bench.interleave: {what} must be NAME=NUMBER, not {value!r}")
        out[name] = int(number)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--direct", type=int, required=True, help="the server's own port")
    parser.add_argument("--via", action="append", default=[], help="NAME=PORT of a proxy in front of it")
    parser.add_argument("--watch", action="append", default=[], help="NAME=PID of a process to read CPU of")
    parser.add_argument("--calls", type=int, default=1_000_000, help="stop once every channel made this many")
    parser.add_argument("--duration", type=float, default=10.0, help="stop after this many seconds")
    parser.add_argument("--warmup", type=int, default=500, help="calls per channel before measuring")
    parser.add_argument("--batch", type=int, default=10, help="calls per channel per turn")
    parser.add_argument("--segments", type=int, default=5, help="parts of the run to give a p50 each")
    args = parser.parse_args(argv)
    ports = {"direct": args.direct, **_pairs(args.via, "--via")}
    result = asyncio.run(
        measure(ports, _pairs(args.watch, "--watch"), args.calls, args.duration, args.warmup, args.batch, args.segments)
    )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
