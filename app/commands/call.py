"""``rpcviz call``: fire N SayHello calls at a target and show where they landed."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from app.commands.errors import CliError
from app.commands.report import bar, percentile
from app.greeter.stub import GreeterStub, server_name
from transport import Channel, ConnectivityState, RpcError
from transport.balancer import policy_names


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "call",
        help="fire SayHello calls at a target and count where they land",
        description="Fire N helloworld SayHello calls and print how many landed on each backend.",
    )
    p.add_argument("target", help="host:port (one address), ipv4:h:p,h:p,... or dns:///host:port (every address)")
    p.add_argument("--policy", choices=policy_names(), default="pick_first", help="load-balancing policy")
    p.add_argument("-n", type=int, default=100, dest="calls", help="number of calls (default 100)")
    p.add_argument("--concurrency", type=int, default=1, help="calls in flight at once (default 1)")
    p.add_argument("--name", default="Ada", help='the name to greet (default "Ada")')
    p.add_argument("--timeout", type=float, default=5.0, help="per-call deadline in seconds (default 5)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


async def run(args: argparse.Namespace) -> int:
    if args.calls < 1:
        raise CliError("-n must be at least 1", 2)
    if args.concurrency < 1:
        raise CliError("--concurrency must be at least 1", 2)
    if args.timeout <= 0:
        raise CliError("--timeout must be positive", 2)
    try:
        channel = Channel.dial(args.target, args.policy)
    except ValueError as exc:
        raise CliError(str(exc), 2) from None
    try:
        await wait_connected(channel, args.timeout)
        report = await fire(channel, args)
    finally:
        await channel.close(grace=1.0)
    if args.json:
        print(json.dumps(report))
    else:
        print_report(report)
    return 0 if report["ok"] == report["calls"] else 1


async def wait_connected(channel: Channel, timeout: float) -> None:
    """Wait for the first connection (and give the rest a moment to join);
    fail with one line if nothing is reachable."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if channel.state is ConnectivityState.TRANSIENT_FAILURE:
            errors = {sc.last_error for sc in channel.subchannels if sc.last_error} or {channel.resolution_error}
            raise CliError(f"cannot reach {channel.target}: {'; '.join(sorted(e for e in errors if e))}")
        if channel.state is ConnectivityState.READY and not any(
            sc.state in (ConnectivityState.CONNECTING, ConnectivityState.IDLE) for sc in channel.subchannels
        ):
            return
        await asyncio.sleep(0.005)
    if channel.state is not ConnectivityState.READY:
        raise CliError(f"cannot reach {channel.target}: no connection within {timeout:g}s")


async def fire(channel: Channel, args: argparse.Namespace) -> dict[str, Any]:
    stub = GreeterStub(channel)
    by_backend: dict[str, int] = {}
    failed: dict[str, int] = {}
    latencies: list[float] = []
    remaining = args.calls

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            start = time.perf_counter()
            try:
                result = await stub.say_hello(args.name, timeout=args.timeout)
            except RpcError as exc:
                failed[exc.code.name] = failed.get(exc.code.name, 0) + 1
                continue
            latencies.append(time.perf_counter() - start)
            backend = server_name(result) or str(result.address)
            by_backend[backend] = by_backend.get(backend, 0) + 1

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(args.concurrency, args.calls))))
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "target": args.target,
        "policy": args.policy,
        "calls": args.calls,
        "ok": len(latencies),
        "failed": dict(sorted(failed.items())),
        "by_backend": dict(sorted(by_backend.items())),
        "concurrency": args.concurrency,
        "rps": round(args.calls / elapsed, 1) if elapsed > 0 else 0.0,
        "latency_ms": {
            "p50": round(percentile(latencies, 50) * 1000, 3),
            "p99": round(percentile(latencies, 99) * 1000, 3),
        },
    }


def print_report(report: dict[str, Any]) -> None:
    print(
        f"{report['calls']} calls to {report['target']} with {report['policy']} (concurrency {report['concurrency']})"
    )
    total = report["calls"]
    width = max((len(name) for name in report["by_backend"]), default=4)
    for name, n in report["by_backend"].items():
        print(f"  {name:<{width}}  {n:>6}  {bar(n / total)}  {100 * n / total:5.1f}%")
    failures = ", ".join(f"{code} {n}" for code, n in report["failed"].items()) or "none"
    print(f"ok {report['ok']}, failed: {failures}")
    lat = report["latency_ms"]
    print(f"{report['rps']:.0f} calls/s, latency p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms")
