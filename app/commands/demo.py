"""``rpcviz demo``: the scene without a UI. Four pods, a balancer, N greets, where they landed."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
from dataclasses import dataclass, replace
from typing import Any

from app.cluster import BALANCERS, MAX_PODS, POLICIES, Cluster, ClusterConfig, ClusterView
from app.commands.args import at_least, non_negative_seconds, positive_seconds
from app.commands.errors import CliError
from app.commands.report import bar
from transport import StatusCode

#: Greets in flight at once: enough to load the pods, few enough to stay readable.
CONCURRENCY = 8
#: A slow pod's default service-time multiplier.
SLOW_FACTOR = 10.0


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of calls per second") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of calls per second, got {text}")
    return value


def _factor(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value >= 1):
        raise argparse.ArgumentTypeError(f"must be a number >= 1 (1 = healthy), got {text}")
    return value


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="run the four-pod cluster headless and print where N greets landed",
        description='Start four Greeter pods behind a balancer (the VIP) in-process, fire N greet("Ada") calls '
        "and print each pod's connections, calls, share, load and client-side latency.",
    )
    p.add_argument(
        "--policy",
        choices=POLICIES,
        default="pick_first",
        help="client-side policy (default pick_first, through the VIP; the others dial every pod)",
    )
    p.add_argument(
        "--balancer",
        choices=BALANCERS,
        default="l4",
        help="what the VIP is: l4 (balances connections, default) or l7 (balances every call round_robin)",
    )
    p.add_argument(
        "--max-connection-age",
        type=positive_seconds,
        metavar="S",
        help="gRFC A9 MAX_CONNECTION_AGE on every pod: connections are sent away (GOAWAY) after ~S seconds",
    )
    p.add_argument("--slow-pod", type=int, metavar="N", help="make pod #N slow (its service time x --slow-factor)")
    p.add_argument(
        "--slow-factor",
        type=_factor,
        metavar="F",
        help=f"with --slow-pod: how many times slower (default {SLOW_FACTOR:g})",
    )
    p.add_argument("-n", type=at_least(1), default=100, dest="calls", help="number of greets (default 100)")
    p.add_argument(
        "--rate",
        type=_rate,
        metavar="R",
        help="fire R calls per second (steady, not one burst) until -n calls have been fired",
    )
    p.add_argument("--seed", type=int, default=None, help="seed the L4 balancer's pod choice")
    p.add_argument(
        "--kill-pod",
        type=int,
        metavar="N",
        help="kill pod #N part-way through (see --after); the calls the kill cuts off fail UNAVAILABLE, "
        "which is expected and still exits 0",
    )
    p.add_argument("--after", type=int, metavar="K", help="with --kill-pod: after K calls have ended (default n/2)")
    p.add_argument(
        "--scale-to",
        type=int,
        metavar="M",
        help=f"scale up to M pods (5-{MAX_PODS}) part-way through (see --scale-after): the L4 VIP uses them for "
        "new connections at once, round_robin / least_request and the L7 proxy only after they re-resolve",
    )
    p.add_argument(
        "--scale-after", type=int, metavar="K", help="with --scale-to: after K calls have ended (default n/2)"
    )
    p.add_argument(
        "--min-reresolution-interval",
        type=non_negative_seconds,
        metavar="S",
        help="re-resolve the pods' endpoints at most every S seconds (default gRPC's 30)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


async def run(args: argparse.Namespace) -> int:
    config = ClusterConfig(seed=args.seed, balancer=args.balancer, max_connection_age=args.max_connection_age)
    if args.min_reresolution_interval is not None:
        config = replace(config, min_reresolution_interval=args.min_reresolution_interval)
    cluster = Cluster(config)
    if args.scale_to is not None and not len(cluster.pods) < args.scale_to <= MAX_PODS:
        raise CliError(f"--scale-to must be a number of pods from {len(cluster.pods) + 1} to {MAX_PODS}", 2)
    if args.scale_after is not None and (args.scale_to is None or not 0 <= args.scale_after <= args.calls):
        raise CliError("--scale-after needs --scale-to and must be between 0 and -n", 2)
    if args.slow_pod is not None and not 1 <= args.slow_pod <= len(cluster.pods):
        raise CliError(f"--slow-pod must name a pod from 1 to {len(cluster.pods)}", 2)
    if args.slow_factor is not None and args.slow_pod is None:
        raise CliError("--slow-factor needs --slow-pod", 2)
    if args.kill_pod is not None and not 1 <= args.kill_pod <= len(cluster.pods):
        raise CliError(f"--kill-pod must name a pod from 1 to {len(cluster.pods)}", 2)
    if args.after is not None and (args.kill_pod is None or not 0 <= args.after <= args.calls):
        raise CliError("--after needs --kill-pod and must be between 0 and -n", 2)
    kill_after = None if args.kill_pod is None else (args.calls // 2 if args.after is None else args.after)
    scale = None
    if args.scale_to is not None:
        scale = Scale(args.calls // 2 if args.scale_after is None else args.scale_after, args.scale_to)
    try:
        await cluster.start(args.policy)
        await cluster.wait_ready()
        if args.slow_pod is not None:
            cluster.set_slow(args.slow_pod, SLOW_FACTOR if args.slow_factor is None else args.slow_factor)
        if args.rate is None:
            kill = await fire(cluster, args.calls, kill_after, args.kill_pod, scale=scale)
        else:
            kill = await fire_steady(cluster, args.calls, args.rate, kill_after, args.kill_pod, scale=scale)
        view = cluster.view()
    except OSError as exc:
        raise CliError(f"cannot start the cluster on 127.0.0.1: {exc.strerror or exc}") from None
    except TimeoutError:
        raise CliError("the cluster did not become ready within 5 s") from None
    finally:
        await cluster.stop()
    report = summarize(view, kill)
    if args.json:
        print(json.dumps(report))
    else:
        print_report(report, view)
    return 0 if succeeded(report) else 1


@dataclass(slots=True)
class Scale:
    """``--scale-to``: add pods up to ``to`` once ``after`` calls have ended (once)."""

    after: int
    to: int
    done: bool = False

    async def maybe(self, cluster: Cluster) -> None:
        stats = cluster.traffic.stats
        if self.done or stats.ok + stats.failed_total < self.after:
            return
        self.done = True
        while len(cluster.pods) < self.to:
            await cluster.add_pod()


@dataclass(frozen=True, slots=True)
class Kill:
    """The moment ``--kill-pod`` killed a pod: what had ended, failed and was in flight."""

    pod: int
    after: int
    in_flight: int
    failed_before: dict[str, int]


async def fire(
    cluster: Cluster,
    n: int,
    kill_after: int | None = None,
    kill_pod: int | None = None,
    concurrency: int = CONCURRENCY,
    *,
    scale: Scale | None = None,
) -> Kill | None:
    """Fire ``n`` greets, at most ``concurrency`` in flight, and wait for all of them;
    kill pod #kill_pod once ``kill_after`` of them have ended (calls then in flight
    on it fail UNAVAILABLE, and are counted so); scale as ``scale`` says."""
    remaining = n
    stats = cluster.traffic.stats
    kill: Kill | None = None

    async def kill_now(pod: int) -> None:
        nonlocal kill
        kill = Kill(pod, stats.ok + stats.failed_total, stats.in_flight, dict(stats.failed))
        await cluster.toggle_pod(pod)

    async def worker() -> None:
        nonlocal remaining, kill_after
        while remaining > 0:
            remaining -= 1
            await cluster.traffic.greet()
            if scale is not None:
                await scale.maybe(cluster)
            if kill_after is not None and kill_pod is not None and stats.ok + stats.failed_total >= kill_after:
                kill_after = None
                await kill_now(kill_pod)

    if scale is not None:
        await scale.maybe(cluster)
    if kill_after == 0 and kill_pod is not None:
        kill_after = None
        await kill_now(kill_pod)
    await asyncio.gather(*(worker() for _ in range(min(concurrency, n))))
    return kill


async def fire_steady(
    cluster: Cluster,
    n: int,
    rate: float,
    kill_after: int | None = None,
    kill_pod: int | None = None,
    *,
    scale: Scale | None = None,
) -> Kill | None:
    """Fire ``n`` greets at ``rate`` per second (however many are in flight), then wait for all of
    them; kill pod #kill_pod once ``kill_after`` of them have ended, and scale as ``scale`` says."""
    traffic = cluster.traffic
    stats = traffic.stats
    loop = asyncio.get_running_loop()
    kill: Kill | None = None
    calls: list[asyncio.Task[None]] = []
    started = loop.time()
    while len(calls) < n:
        if scale is not None:
            await scale.maybe(cluster)
        if kill_after is not None and kill_pod is not None and stats.ok + stats.failed_total >= kill_after:
            kill_after = None
            kill = Kill(kill_pod, stats.ok + stats.failed_total, stats.in_flight, dict(stats.failed))
            await cluster.toggle_pod(kill_pod)
        due = min(n, math.floor((loop.time() - started) * rate) + 1)
        calls.extend(traffic.greet() for _ in range(due - len(calls)))
        await asyncio.sleep(max(0.0, started + len(calls) / rate - loop.time()))
    await asyncio.gather(*calls)
    return kill


def kill_outcome(kill: Kill, failed: dict[str, int]) -> dict[str, Any]:
    """Split the failures into those the kill is expected to cause and the rest.

    Expected: UNAVAILABLE after the kill, at most the calls then in flight plus one
    per worker (a call sent before the channel saw the pod go). Anything else —
    a failure before the kill, another code, more than that — is a real failure."""
    unavailable = StatusCode.UNAVAILABLE.name
    after = {code: n - kill.failed_before.get(code, 0) for code, n in failed.items()}
    expected = after.get(unavailable, 0)
    unexpected = {code: n for code, n in kill.failed_before.items() if n}
    for code, n in after.items():
        if n and code != unavailable:
            unexpected[code] = unexpected.get(code, 0) + n
    if expected > kill.in_flight + CONCURRENCY:
        unexpected[unavailable] = unexpected.get(unavailable, 0) + expected
        expected = 0
    return {
        "pod": kill.pod,
        "after": kill.after,
        "in_flight": kill.in_flight,
        "expected_failures": expected,
        "unexpected_failures": dict(sorted(unexpected.items())),
    }


def succeeded(report: dict[str, Any]) -> bool:
    """Every call OK, or failed only as the kill was expected to make it fail."""
    kill = report["kill"]
    if kill is None:
        return bool(report["ok"] == report["calls"])
    return not kill["unexpected_failures"] and report["ok"] + kill["expected_failures"] == report["calls"]


def summarize(view: ClusterView, kill: Kill | None = None) -> dict[str, Any]:
    total_ok = sum(p.calls for p in view.pods)
    return {
        "policy": view.policy,
        "balancer": view.balancer,
        "target": view.target,
        "calls": view.fired,
        "ok": view.ok,
        "failed": dict(sorted(view.failed.items())),
        "p50_ms": view.p50_ms,
        "p99_ms": view.p99_ms,
        "client_connections": view.ready_connections,
        "client_connections_opened": view.client_connections_opened,
        "goaways": view.goaways,
        "resolutions": view.resolutions,
        "pinned_pod": view.pinned_pod,
        "pods": [
            {
                "name": f"pod #{p.index}",
                "connections": p.connections,
                "calls": p.calls,
                "share": round(p.calls / total_ok, 4) if total_ok else 0.0,
                "load": round(p.load, 4),
                "p50_ms": p.p50_ms,
                "p99_ms": p.p99_ms,
                "goaways": p.goaways,
                "slow_factor": p.slow_factor,
                "serving": p.serving,
            }
            for p in view.pods
        ],
        "kill": None if kill is None else kill_outcome(kill, view.failed),
    }


def print_report(report: dict[str, Any], view: ClusterView) -> None:
    if report["policy"] != "pick_first":
        how = f"{report['client_connections']} HTTP/2 connections, one per live pod ({view.target})"
    elif report["balancer"] == "l7":
        how = f"one HTTP/2 connection to the VIP {view.target}, an L7 proxy balancing every call"
    else:
        how = f"one HTTP/2 connection to the VIP {view.target}, through the L4 balancer"
    print(f'{report["calls"]} greet("Ada") calls with {report["policy"]}: {how}')
    print(f"  {'pod':<7} {'conns':>5} {'calls':>6}  {'share':<27} {'load':>5} {'p50 ms':>7} {'p99 ms':>7}")
    for pod in report["pods"]:
        share = pod["share"]
        pinned = "  PINNED" if report["pinned_pod"] == int(pod["name"].split("#")[1]) else ""
        if not pod["serving"]:
            pinned = "  DOWN"
        print(
            f"  {pod['name']:<7} {pod['connections']:>5} {pod['calls']:>6}  {bar(share)} {100 * share:5.1f}%"
            f" {100 * pod['load']:4.0f}% {pod['p50_ms']:7.1f} {pod['p99_ms']:7.1f}{pinned}"
            + (f"  SLOW x{pod['slow_factor']:g}" if pod["slow_factor"] != 1 else "")
        )
    failures = ", ".join(f"{code} {n}" for code, n in report["failed"].items()) or "none"
    print(f"ok {report['ok']} of {report['calls']}, failed: {failures}")
    print(
        f"client: {report['client_connections_opened']} connection(s) opened, {report['goaways']} GOAWAY(s) for"
        f" connection age, {report['resolutions']} resolution(s), latency p50 {report['p50_ms']:.1f} ms,"
        f" p99 {report['p99_ms']:.1f} ms"
    )
    kill = report["kill"]
    if kill is not None:
        print(kill_line(kill))


def kill_line(kill: dict[str, Any]) -> str:
    """What the kill did, and whether its failures were the expected ones."""
    at = f"pod #{kill['pod']} was killed after {kill['after']} calls"
    if kill["unexpected_failures"]:
        unexpected = ", ".join(f"{code} {n}" for code, n in kill["unexpected_failures"].items())
        return f"{at}; unexpected failures: {unexpected}"
    if kill["expected_failures"]:
        return f"{at}: the {kill['expected_failures']} UNAVAILABLE failures are calls the kill cut off, as expected"
    return f"{at}: no call failed"
