"""One load-generator process of the many-connections row: N of our channels, each calling SayHello at a fixed rate.

``python -m bench.many_conns_client --port P --connections N [--rate R] [--duration S] [--seed K] [--warmup]``
talks to :mod:`bench.many_conns` (which reads the server's RSS and CPU between the steps) in lines:

1. it starts (with ``--warmup``: one extra channel makes a few calls, then stays open and idle) and prints
   ``STARTED``;
2. on ``CONNECT`` it opens N channels (each its own TCP connection and HTTP/2 handshake), a few at a time,
   and prints ``CONNECTED <seconds it took>``;
3. on ``GO <epoch>`` it runs the load from that wall-clock time: every channel calls at R calls/s, paced
   open loop (call k of a channel is due at its jittered offset + k / R, whether or not call k - 1 has
   ended) for S seconds; then it waits for the calls still running and prints one JSON line;
4. it closes its channels and exits.

Keeping pace is checked, not assumed: ``attempted`` counts the calls due in the window, ``started`` those
this process started before the window ended, ``lags_us`` how late they started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import sys
import time
from pathlib import Path

from app.greeter.helloworld_pb2 import HelloRequest
from bench.clients import Call, Close, connect_ours

#: Channels connecting at once: a listen backlog of 100 (asyncio's default, grpclib's) must never overflow.
CONNECT_BATCH = 50
#: Seconds the calls still running when the window ends may take to finish (unfinished = errors): an
#: overloaded server answers late, and its p99 says so.
DRAIN_TIMEOUT = 30.0
WARMUP_CALLS = 20
#: A call due sooner than this is started now (one wake-up starts every call due within it).
TICK = 0.001


def raise_fd_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (1,000 sockets do not fit a 1,024 soft limit); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def connect_all(port: int, n: int) -> list[tuple[Call, Close]]:
    """N channels, ``CONNECT_BATCH`` connecting at a time."""
    channels: list[tuple[Call, Close]] = []
    while len(channels) < n:
        batch = min(CONNECT_BATCH, n - len(channels))
        channels += await asyncio.gather(*(connect_ours(port) for _ in range(batch)))
    return channels


class Load:
    """The paced open loop over every channel, and what it counted."""

    def __init__(self, calls: list[Call], rate: float, duration: float, seed: int) -> None:
        self.calls = calls
        self.period = 1.0 / rate
        self.duration = duration
        self.rng = random.Random(seed)
        self.request = HelloRequest(name="world")
        self.attempted = self.started = self.ok = self.errors = 0
        self.latencies: list[int] = []
        self.lags: list[int] = []
        self.running: set[asyncio.Task[None]] = set()
        #: Errors by status code (or exception type).
        self.error_kinds: dict[str, int] = {}

    async def one_call(self, call: Call) -> None:
        t0 = time.perf_counter_ns()
        try:
            reply = await call(self.request)
        except Exception as exc:  # noqa: BLE001 - counted, the load goes on
            self.errors += 1
            code = getattr(exc, "code", None)
            what = f"{getattr(code, 'name', type(exc).__name__)}: {getattr(exc, 'details', exc)}"[:120]
            self.error_kinds[what] = self.error_kinds.get(what, 0) + 1
            return
        self.latencies.append(time.perf_counter_ns() - t0)
        if reply.message == "Hello, world!":
            self.ok += 1
        else:
            self.errors += 1

    async def run(self, begin: float) -> None:
        """Every channel's calls, due at ``offset + k * period`` after ``begin`` (perf_counter seconds),
        with each channel's offset drawn in the first period (a jittered start), for ``duration`` seconds.

        One scheduler for all channels rather than a sleeping task each: it sleeps only when the next
        call is more than :data:`TICK` away and starts every call due within it, so that this process
        spends its time on the calls, not on timers.
        """
        end = begin + self.duration
        order = sorted((self.rng.uniform(0, self.period), i) for i in range(len(self.calls)))
        loop = asyncio.get_running_loop()
        clock = time.perf_counter
        k = 0
        while True:
            for offset, i in order:
                due = begin + offset + k * self.period
                if due >= end:
                    await asyncio.sleep(max(0.0, end - clock()))
                    return
                self.attempted += 1
                now = clock()
                if due - now > TICK:
                    await asyncio.sleep(due - now)
                    now = clock()
                if now >= end:
                    continue  # so far behind that the window ended first: due, never started
                self.lags.append(max(0, int((now - due) * 1e9)))
                self.started += 1
                task = loop.create_task(self.one_call(self.calls[i]))
                self.running.add(task)
                task.add_done_callback(self.running.discard)
            k += 1

    async def drain(self) -> int:
        """Wait for the calls still running; cancel (and return the count of) those that do not finish."""
        if not self.running:
            return 0
        _, pending = await asyncio.wait(set(self.running), timeout=DRAIN_TIMEOUT)
        for task in pending:
            task.cancel()
        return len(pending)


def run_wait_seconds() -> float | None:
    """Seconds this process's main thread was ready to run but waited for its core (/proc schedstat), or None."""
    try:
        return int(Path("/proc/thread-self/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


async def read_command(expected: str) -> list[str]:
    """The next line on stdin, which must start with ``expected``; its other words."""
    line: str = await asyncio.to_thread(sys.stdin.readline)
    words = line.split()
    if not words or words[0] != expected:
        raise SystemExit(f"many_conns_client: expected {expected}, got {line!r}")
    return words[1:]


def say(line: str) -> None:
    print(line, flush=True)


async def run(port: int, connections: int, rate: float, duration: float, seed: int, warmup: bool) -> None:
    warm: tuple[Call, Close] | None = None
    if warmup:
        warm = await connect_ours(port)
        request = HelloRequest(name="world")
        for _ in range(WARMUP_CALLS):
            await warm[0](request)
    say("STARTED")
    await read_command("CONNECT")
    started = time.perf_counter()
    channels = await connect_all(port, connections)
    say(f"CONNECTED {time.perf_counter() - started:.3f}")
    try:
        (epoch,) = await read_command("GO")
        begin = time.perf_counter() + (float(epoch) - time.time())
        load = Load([call for call, _ in channels], rate, duration, seed)
        cpu0, wait0 = time.process_time(), run_wait_seconds()
        await load.run(begin)
        unfinished = await load.drain()
        cpu, wait1 = time.process_time() - cpu0, run_wait_seconds()
        say(
            json.dumps(
                {
                    "connections": connections,
                    "attempted": load.attempted,
                    "started": load.started,
                    "ok": load.ok,
                    "errors": load.errors + unfinished,
                    "error_kinds": load.error_kinds | ({"unfinished": unfinished} if unfinished else {}),
                    "client_cpu_seconds": cpu,
                    "run_wait_seconds": None if wait0 is None or wait1 is None else wait1 - wait0,
                    "latencies_us": sorted(ns // 1000 for ns in load.latencies),
                    "lags_us": sorted(ns // 1000 for ns in load.lags),
                }
            )
        )
    finally:
        for _, close in channels:
            await close()
        if warm is not None:
            await warm[1]()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=2.0, help="calls per second per channel")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--warmup", action="store_true", help="first make a few calls on one more channel")
    args = parser.parse_args(argv)
    soft = raise_fd_limit()
    if soft != resource.RLIM_INFINITY and soft < args.connections + 64:
        raise SystemExit(f"many_conns_client: {args.connections} connections need more than RLIMIT_NOFILE {soft}")
    asyncio.run(run(args.port, args.connections, args.rate, args.duration, args.seed, args.warmup))


if __name__ == "__main__":
    main()
