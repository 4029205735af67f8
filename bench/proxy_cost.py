"""The L4 proxy's cost: our client → our server at C=1, direct vs through ``L4Proxy``.

Measured two ways, each by one client process holding a direct and a proxied channel and alternating
batches of 10 calls between them (so machine noise falls on both alike):
- embedded: the proxy on the server's event loop, in the server's process, as rpcviz's cluster runs it;
- separate: the proxy in its own process. On a 2-core machine it shares the server's core, so this
  also measures the scheduler switching between three processes.
"""

from __future__ import annotations

from typing import Any

from bench.pairs import Budget
from bench.procs import CLIENT_CORE, SERVER_CORE, child, run_json


def _interleaved(direct_port: int, proxy_port: int, budget: Budget, log: Any, how: str) -> dict[str, Any]:
    log(f"  proxy ({how}): direct and through the L4 proxy, interleaved ...")
    # Twice the usual duration: the two channels share it.
    longer = Budget(budget.calls, budget.duration * 2, budget.warmup)
    args = ["ours", "--port", str(direct_port), "--via", str(proxy_port), *longer.client_args()]
    both = run_json("bench.clients", args, CLIENT_CORE, longer.timeout)
    d, p = both["direct"], both["via"]
    return {"direct": d, "proxied": p, "delta_p50_us": p["p50_us"] - d["p50_us"]}


def measure(budget: Budget, log: Any = print) -> dict[str, Any]:
    """p50/p99 at C=1, direct and proxied, embedded and separate; ``delta_p50_us`` is what the
    proxy adds (embedded, the product's configuration; ``separate`` holds the other)."""
    with child("bench.servers", ["ours+l4proxy"], SERVER_CORE) as both:
        proxy_port, server_port = both.ports
        embedded = _interleaved(server_port, proxy_port, budget, log, "embedded")
    with (
        child("bench.servers", ["ours"], SERVER_CORE) as server,
        child("bench.servers", ["l4proxy", "--backend", str(server.port)], SERVER_CORE) as proxy,
    ):
        separate = _interleaved(server.port, proxy.port, budget, log, "own process")
    return {**embedded, "separate": separate}
