"""``rpcviz call``: fire N SayHello calls at a target and show where they landed."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import time
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from typing import Any

from app.commands.args import at_least, positive_seconds, utf8_text
from app.commands.errors import CliError
from app.commands.histogram import LatencyHistogram
from app.commands.report import bar
from app.greeter.stub import GreeterStub, server_name
from transport import Channel, ConnectivityState, RpcError
from transport.balancer import policy_names

#: Exit status after Ctrl-C, as a shell reports a process that SIGINT ended.
EXIT_INTERRUPTED = 128 + signal.SIGINT


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "call",
        help="fire SayHello calls at a target and count where they land",
        description="Fire N helloworld SayHello calls and print how many landed on each backend. "
        "Ctrl-C stops early and prints the tally of the calls that finished.",
    )
    p.add_argument("target", help="host:port (one address), ipv4:h:p,h:p,... or dns:///host:port (every address)")
    p.add_argument("--policy", choices=policy_names(), default="pick_first", help="load-balancing policy")
    p.add_argument("-n", type=at_least(1), default=100, dest="calls", help="number of calls (default 100)")
    p.add_argument("--concurrency", type=at_least(1), default=1, help="calls in flight at once (default 1)")
    p.add_argument("--name", type=utf8_text, default="Ada", help='the name to greet (default "Ada")')
    p.add_argument("--timeout", type=positive_seconds, default=5.0, help="per-call deadline in seconds (default 5)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


async def run(args: argparse.Namespace) -> int:
    try:
        channel = Channel.dial(args.target, args.policy)
    except ValueError as exc:
        raise CliError(str(exc), 2) from None
    with _interrupt_on_sigint() as interrupted:  # also while closing: a second Ctrl-C changes nothing
        try:
            if not await _unless(interrupted, wait_connected(channel, args.timeout)):
                raise CliError("interrupted before the first call", EXIT_INTERRUPTED)
            report = await fire(channel, args, interrupted)
        finally:
            await channel.close(grace=1.0)
    if args.json:
        print(json.dumps(report))
    else:
        print_report(report)
    if report["interrupted"]:
        return EXIT_INTERRUPTED
    return 0 if report["ok"] == report["calls"] else 1


@contextlib.contextmanager
def _interrupt_on_sigint() -> Iterator[asyncio.Event]:
    """An event SIGINT sets, instead of KeyboardInterrupt tearing the calls down unreported."""
    loop = asyncio.get_running_loop()
    interrupted = asyncio.Event()
    loop.add_signal_handler(signal.SIGINT, interrupted.set)
    try:
        yield interrupted
    finally:
        loop.remove_signal_handler(signal.SIGINT)


async def _unless(interrupted: asyncio.Event, work: Awaitable[object]) -> bool:
    """Run ``work`` to its end (True), or cancel it when ``interrupted`` is set first (False)."""
    task = asyncio.ensure_future(work)
    stop = asyncio.ensure_future(interrupted.wait())
    try:
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
    if task.done():
        task.result()  # its CliError, if any
        return True
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return False


async def wait_connected(channel: Channel, timeout: float) -> None:
    """Wait for the first connection (and give the rest a moment to join);
    fail with one line if nothing is reachable."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if channel.state is ConnectivityState.TRANSIENT_FAILURE:
            errors = _errors(channel) or [channel.resolution_error or "no address"]
            raise CliError(f"cannot reach {channel.target}: {'; '.join(errors)}")
        if channel.state is ConnectivityState.READY and not any(
            sc.state in (ConnectivityState.CONNECTING, ConnectivityState.IDLE) for sc in channel.subchannels
        ):
            return
        await asyncio.sleep(0.005)
    if channel.state is not ConnectivityState.READY:
        errors = _errors(channel)
        last = f" (last error: {'; '.join(errors)})" if errors else ""
        raise CliError(f"cannot reach {channel.target}: no connection within {timeout:g}s{last}")


def _errors(channel: Channel) -> list[str]:
    """The subchannels' last errors, each once, in order."""
    return sorted({sc.last_error for sc in channel.subchannels if sc.last_error})


@dataclass(slots=True)
class Tally:
    """What the calls did so far: counts and a fixed-size latency histogram, never a list per call."""

    ok: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    by_backend: dict[str, int] = field(default_factory=dict)
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    in_flight: int = 0
    #: Calls in flight when Ctrl-C came, cancelled.
    cancelled: int = 0

    @property
    def finished(self) -> int:
        return self.ok + sum(self.failed.values())


async def fire(channel: Channel, args: argparse.Namespace, interrupted: asyncio.Event | None = None) -> dict[str, Any]:
    """Fire ``args.calls`` calls, ``args.concurrency`` at a time; when ``interrupted`` is set,
    cancel the calls in flight and report what finished."""
    stub = GreeterStub(channel)
    tally = Tally()
    remaining = args.calls

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            tally.in_flight += 1
            start = time.perf_counter()
            try:
                result = await stub.say_hello(args.name, timeout=args.timeout)
            except RpcError as exc:
                tally.failed[exc.code.name] = tally.failed.get(exc.code.name, 0) + 1
                continue
            except asyncio.CancelledError:
                tally.cancelled += 1
                raise
            finally:
                tally.in_flight -= 1
            tally.latency.record(time.perf_counter() - start)
            tally.ok += 1
            backend = server_name(result) or str(result.address)
            tally.by_backend[backend] = tally.by_backend.get(backend, 0) + 1

    began = time.perf_counter()
    everything = asyncio.gather(*(worker() for _ in range(min(args.concurrency, args.calls))))
    if interrupted is None:
        await everything
        finished = True
    else:
        finished = await _unless(interrupted, everything)
    elapsed = time.perf_counter() - began
    return summarize(args, tally, elapsed, interrupted=not finished)


def summarize(args: argparse.Namespace, tally: Tally, elapsed: float, *, interrupted: bool) -> dict[str, Any]:
    lat = tally.latency
    return {
        "target": args.target,
        "policy": args.policy,
        "calls": args.calls,
        "ok": tally.ok,
        "failed": dict(sorted(tally.failed.items())),
        "by_backend": dict(sorted(tally.by_backend.items())),
        "concurrency": args.concurrency,
        "rps": round(tally.finished / elapsed, 1) if elapsed > 0 else 0.0,
        "latency_ms": {f"p{p}": round(lat.percentile(p) * 1000, 3) for p in (50, 90, 99)},
        "interrupted": interrupted,
        "cancelled": tally.cancelled,
    }


def print_report(report: dict[str, Any]) -> None:
    finished = report["ok"] + sum(report["failed"].values())
    calls = f"{finished} of {report['calls']}" if report["interrupted"] else str(report["calls"])
    print(f"{calls} calls to {report['target']} with {report['policy']} (concurrency {report['concurrency']})")
    if report["interrupted"]:
        not_started = report["calls"] - finished - report["cancelled"]
        print(f"interrupted (Ctrl-C): {report['cancelled']} calls in flight were cancelled, {not_started} not started")
    width = max((len(name) for name in report["by_backend"]), default=4)
    for name, n in report["by_backend"].items():
        print(f"  {name:<{width}}  {n:>6}  {bar(n / finished)}  {100 * n / finished:5.1f}%")
    failures = ", ".join(f"{code} {n}" for code, n in report["failed"].items()) or "none"
    print(f"ok {report['ok']}, failed: {failures}")
    lat = report["latency_ms"]
    print(
        f"{report['rps']:.0f} calls/s, latency p50 {lat['p50']:.2f} ms, p90 {lat['p90']:.2f} ms, p99 {lat['p99']:.2f} ms"
    )
