"""The L4 proxy's cost: our client → our server at C=1, direct vs through ``L4Proxy``.

The proxy runs in its own process on the server's core; direct and proxied runs alternate against the same
server, and each side's p50 is the median over the rounds.
"""

from __future__ import annotations

import statistics
from typing import Any

from bench.pairs import Budget, run_client
from bench.procs import SERVER_CORE, child


def measure(budget: Budget, rounds: int, log: Any = print) -> dict[str, Any]:
    """p50/p99 at C=1, direct and proxied; ``delta_p50_us`` is what the proxy adds."""
    direct: list[dict[str, Any]] = []
    proxied: list[dict[str, Any]] = []
    with (
        child("bench.servers", ["ours"], SERVER_CORE) as server,
        child("bench.servers", ["l4proxy", "--backend", str(server.port)], SERVER_CORE) as proxy,
    ):
        for i in range(rounds):
            log(f"  proxy round {i + 1}/{rounds}: direct, then through the L4 proxy ...")
            direct.append(run_client("ours", server.port, 1, budget, None))
            proxied.append(run_client("ours", proxy.port, 1, budget, None))

    def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "calls": sum(r["calls"] for r in runs),
            "throughput": statistics.median(r["throughput"] for r in runs),
            "p50_us": statistics.median(r["p50_us"] for r in runs),
            "p99_us": statistics.median(r["p99_us"] for r in runs),
            "client_cpu_us": statistics.median(r["client_cpu_us"] for r in runs),
        }

    d, p = summary(direct), summary(proxied)
    return {"direct": d, "proxied": p, "delta_p50_us": p["p50_us"] - d["p50_us"], "rounds": rounds}
