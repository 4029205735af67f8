"""``rpcviz demo``: the scene without a UI. Four pods, an L4 balancer, N greets, the skew."""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import dataclass
from typing import Any

from app.cluster import POLICIES, Cluster, ClusterConfig, ClusterView
from app.commands.args import at_least
from app.commands.errors import CliError
from app.commands.report import bar
from transport import StatusCode

#: Greets in flight at once: enough to load the pods, few enough to stay readable.
CONCURRENCY = 8


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="run the four-pod cluster headless and print where N greets landed",
        description='Start four Greeter pods behind an L4 balancer in-process, fire N greet("Ada") calls '
        "and print each pod's connections, calls, share and load.",
    )
    p.add_argument("--policy", choices=POLICIES, default="pick_first", help="client-side policy (default pick_first)")
    p.add_argument("-n", type=at_least(1), default=100, dest="calls", help="number of greets (default 100)")
    p.add_argument("--seed", type=int, default=None, help="seed the L4 balancer's pod choice")
    p.add_argument(
        "--kill-pod",
        type=int,
        metavar="N",
        help="kill pod #N part-way through (see --after); the calls the kill cuts off fail UNAVAILABLE, "
        "which is expected and still exits 0",
    )
    p.add_argument("--after", type=int, metavar="K", help="with --kill-pod: after K calls have ended (default n/2)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


async def run(args: argparse.Namespace) -> int:
    cluster = Cluster(ClusterConfig(seed=args.seed))
    if args.kill_pod is not None and not 1 <= args.kill_pod <= len(cluster.pods):
        raise CliError(f"--kill-pod must name a pod from 1 to {len(cluster.pods)}", 2)
    if args.after is not None and (args.kill_pod is None or not 0 <= args.after <= args.calls):
        raise CliError("--after needs --kill-pod and must be between 0 and -n", 2)
    kill_after = None if args.kill_pod is None else (args.calls // 2 if args.after is None else args.after)
    try:
        await cluster.start(args.policy)
        await cluster.wait_ready()
        kill = await fire(cluster, args.calls, kill_after, args.kill_pod)
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


@dataclass(frozen=True, slots=True)
class Kill:
    """The moment ``--kill-pod`` killed a pod: what had ended, failed and was in flight."""

    pod: int
    after: int
    in_flight: int
    failed_before: dict[str, int]


async def fire(cluster: Cluster, n: int, kill_after: int | None = None, kill_pod: int | None = None) -> Kill | None:
    """Fire ``n`` greets, at most CONCURRENCY in flight, and wait for all of them;
    kill pod #kill_pod once ``kill_after`` of them have ended (calls then in flight
    on it fail UNAVAILABLE, and are counted so)."""
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
            if kill_after is not None and kill_pod is not None and stats.ok + stats.failed_total >= kill_after:
                kill_after = None
                await kill_now(kill_pod)

    if kill_after == 0 and kill_pod is not None:
        kill_after = None
        await kill_now(kill_pod)
    await asyncio.gather(*(worker() for _ in range(min(CONCURRENCY, n))))
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
        "target": view.target,
        "calls": view.fired,
        "ok": view.ok,
        "failed": dict(sorted(view.failed.items())),
        "client_connections": view.ready_connections,
        "pinned_pod": view.pinned_pod,
        "pods": [
            {
                "name": f"pod #{p.index}",
                "connections": p.connections,
                "calls": p.calls,
                "share": round(p.calls / total_ok, 4) if total_ok else 0.0,
                "load": round(p.load, 4),
                "serving": p.serving,
            }
            for p in view.pods
        ],
        "kill": None if kill is None else kill_outcome(kill, view.failed),
    }


def print_report(report: dict[str, Any], view: ClusterView) -> None:
    how = {
        "pick_first": f"one HTTP/2 connection to the VIP {view.target}, through the L4 balancer",
        "round_robin": f"{report['client_connections']} HTTP/2 connections, one per live pod ({view.target})",
    }[report["policy"]]
    print(f'{report["calls"]} greet("Ada") calls with {report["policy"]}: {how}')
    print(f"  {'pod':<7} {'conns':>5} {'calls':>6}  {'share':<27} {'load':>5}")
    for pod in report["pods"]:
        share = pod["share"]
        pinned = "  PINNED" if report["pinned_pod"] == int(pod["name"].split("#")[1]) else ""
        if not pod["serving"]:
            pinned = "  DOWN"
        print(
            f"  {pod['name']:<7} {pod['connections']:>5} {pod['calls']:>6}  {bar(share)} {100 * share:5.1f}%"
            f" {100 * pod['load']:4.0f}%{pinned}"
        )
    failures = ", ".join(f"{code} {n}" for code, n in report["failed"].items()) or "none"
    print(f"ok {report['ok']} of {report['calls']}, failed: {failures}")
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
