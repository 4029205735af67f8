"""The client → server pairs: which exist, and running one server with its clients pinned apart."""

from __future__ import annotations

import contextlib
import importlib.util
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bench import grpcjs
from bench.procs import CLIENT_CORE, SERVER_CORE, child, run_json

#: (client, server), ours first; the cross pairs last.
PAIRS: tuple[tuple[str, str], ...] = (
    ("ours", "ours"),
    ("grpclib", "grpclib"),
    ("grpcio", "grpcio"),
    ("grpcjs", "grpcjs"),
    ("grpcio", "ours"),
    ("ours", "grpcio"),
    ("grpcjs", "ours"),
    ("ours", "grpcjs"),
)
CONCURRENCIES = (1, 32)
#: More concurrencies for some pairs: ours → ours at C=128 (its client CPU per call must not grow with
#: the streams open, a target in bench/report.py).
EXTRA_CONCURRENCIES: dict[tuple[str, str], tuple[int, ...]] = {("ours", "ours"): (128,)}
#: The importable module each framework needs.
_MODULE = {"ours": "h2", "grpclib": "grpclib", "grpcio": "grpc"}


def unavailable(framework: str) -> str | None:
    """None when ``framework`` can run here, else one line saying why not."""
    if framework == "grpcjs":  # Node: node + npm packages, not a Python module
        reason = grpcjs.note()
        return None if reason is None else f"grpc-js: {reason}"
    return None if importlib.util.find_spec(_MODULE[framework]) else f"{framework} not installed"


def available(framework: str) -> bool:
    return unavailable(framework) is None


def pair_name(client: str, server: str) -> str:
    return f"{client} → {server}"


def pair_concurrencies(client: str, server: str, concurrencies: Sequence[int]) -> tuple[int, ...]:
    """``concurrencies`` and the pair's :data:`EXTRA_CONCURRENCIES`."""
    return (*concurrencies, *(n for n in EXTRA_CONCURRENCIES.get((client, server), ()) if n not in concurrencies))


@dataclass(frozen=True, slots=True)
class Budget:
    """How long each measurement runs: N calls or D seconds, whichever ends first, after a warm-up."""

    calls: int
    duration: float
    warmup: int

    def client_args(self) -> list[str]:
        return ["--calls", str(self.calls), "--duration", str(self.duration), "--warmup", str(self.warmup)]

    @property
    def timeout(self) -> float:
        return self.duration + 90.0


def run_client(
    client: str, port: int, concurrency: int, budget: Budget, server_pid: int | None, extra: Sequence[str] = ()
) -> dict[str, Any]:
    """One closed-loop client process (pinned to the client core) against ``port``; ``extra``: more of its
    arguments (``--workload`` etc.)."""
    args = [client, "--port", str(port), "--concurrency", str(concurrency), *budget.client_args(), *extra]
    if server_pid is not None:
        args += ["--server-pid", str(server_pid)]
    return run_json("bench.clients", args, CLIENT_CORE, budget.timeout)


def merge_turns(turns: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One row from a pair's turns: calls, time and CPU summed; p50 and p99 the median of the turns'."""
    calls = sum(t["calls"] for t in turns)
    seconds = sum(t["seconds"] for t in turns)

    def cpu(key: str) -> float | None:
        if not calls or any(t.get(key) is None for t in turns):
            return None
        return float(sum(t[key] * t["calls"] for t in turns) / calls)

    return {
        **turns[0],
        "calls": calls,
        "ok": sum(t["ok"] for t in turns),
        "errors": sum(t["errors"] for t in turns),
        "seconds": seconds,
        "throughput": calls / seconds if seconds else 0.0,
        "p50_us": statistics.median(t["p50_us"] for t in turns),
        "p99_us": statistics.median(t["p99_us"] for t in turns),
        "client_cpu_us": cpu("client_cpu_us"),
        "server_cpu_us": cpu("server_cpu_us"),
        "turns": len(turns),
    }


def run_pairs(
    budget: Budget,
    concurrencies: Sequence[int] = CONCURRENCIES,
    rounds: int = 1,
    log: Any = print,
    each_round: Callable[[], None] | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Every available pair at every concurrency, taking turns.

    Every server process runs for the whole measurement, and the pairs take ``rounds`` turns each
    of ``budget.duration / rounds`` seconds, so that the machine's slower and faster moments (a shared
    machine has both) fall on every pair alike; :func:`merge_turns` makes one row of a pair's turns.
    ``each_round`` runs after every round's pairs (the floor's turn: :class:`bench.floor.Floor`).
    Returns (rows, skipped pairs each with why). A row is the client's JSON plus ``pair`` and ``server``.
    """
    runnable = [(c, s) for c, s in PAIRS if available(c) and available(s)]
    skipped = [f"{pair_name(c, s)} ({unavailable(c) or unavailable(s)})" for c, s in PAIRS if (c, s) not in runnable]
    turn = Budget(budget.calls, budget.duration / rounds, budget.warmup)
    turns: dict[tuple[str, str, int], list[dict[str, Any]]] = {
        (c, s, n): [] for c, s in runnable for n in pair_concurrencies(c, s, concurrencies)
    }
    with contextlib.ExitStack() as stack:
        servers = {s: stack.enter_context(child("bench.servers", [s], SERVER_CORE)) for _, s in runnable}
        for i in range(rounds):
            for client, server in runnable:
                for concurrency in pair_concurrencies(client, server, concurrencies):
                    log(f"  round {i + 1}/{rounds}: {pair_name(client, server)} at C={concurrency} ...")
                    proc = servers[server]
                    turns[client, server, concurrency].append(
                        run_client(client, proc.port, concurrency, turn, proc.pid)
                    )
            if each_round is not None:
                each_round()
    rows = []
    for (client, server, _), runs in turns.items():
        row = merge_turns(runs)
        row.update(pair=pair_name(client, server), server=server)
        rows.append(row)
    return rows, skipped
