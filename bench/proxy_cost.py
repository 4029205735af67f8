"""The L4 proxy's cost: our client → our server at C=1, direct vs through ``L4Proxy``.

Measured two ways, direct and proxied runs alternating, each p50 the median over the rounds:
- embedded: the proxy on the server's event loop, in the server's process, as rpcviz's cluster runs it;
- separate: the proxy in its own process. On a 2-core machine it shares the server's core, so this
  also measures the scheduler switching between three processes.
"""

from __future__ import annotations

import statistics
from typing import Any

from bench.pairs import Budget, run_client
from bench.procs import SERVER_CORE, child


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "calls": sum(r["calls"] for r in runs),
        "throughput": statistics.median(r["throughput"] for r in runs),
        "p50_us": statistics.median(r["p50_us"] for r in runs),
        "p99_us": statistics.median(r["p99_us"] for r in runs),
        "client_cpu_us": statistics.median(r["client_cpu_us"] for r in runs),
    }


def _alternate(direct_port: int, proxy_port: int, budget: Budget, rounds: int, log: Any, how: str) -> dict[str, Any]:
    direct: list[dict[str, Any]] = []
    proxied: list[dict[str, Any]] = []
    for i in range(rounds):
        log(f"  proxy ({how}) round {i + 1}/{rounds}: direct, then through the L4 proxy ...")
        direct.append(run_client("ours", direct_port, 1, budget, None))
        proxied.append(run_client("ours", proxy_port, 1, budget, None))
    d, p = _summary(direct), _summary(proxied)
    return {"direct": d, "proxied": p, "delta_p50_us": p["p50_us"] - d["p50_us"]}


def measure(budget: Budget, rounds: int, log: Any = print) -> dict[str, Any]:
    """p50/p99 at C=1, direct and proxied, embedded and separate; ``delta_p50_us`` is what the
    proxy adds (embedded, the product's configuration; ``separate`` holds the other)."""
    with child("bench.servers", ["ours+l4proxy"], SERVER_CORE) as both:
        proxy_port, server_port = both.ports
        embedded = _alternate(server_port, proxy_port, budget, rounds, log, "embedded")
    with (
        child("bench.servers", ["ours"], SERVER_CORE) as server,
        child("bench.servers", ["l4proxy", "--backend", str(server.port)], SERVER_CORE) as proxy,
    ):
        separate = _alternate(server.port, proxy.port, budget, rounds, log, "own process")
    return {**embedded, "separate": separate, "rounds": rounds}
