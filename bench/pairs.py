"""The client → server pairs: which exist, and running one server with its clients pinned apart."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.procs import CLIENT_CORE, SERVER_CORE, child, run_json

#: (client, server), ours first; the cross pairs last.
PAIRS: tuple[tuple[str, str], ...] = (
    ("ours", "ours"),
    ("grpclib", "grpclib"),
    ("grpcio", "grpcio"),
    ("grpcio", "ours"),
    ("ours", "grpcio"),
)
CONCURRENCIES = (1, 32)
#: The importable module each framework needs.
_MODULE = {"ours": "h2", "grpclib": "grpclib", "grpcio": "grpc"}


def available(framework: str) -> bool:
    return importlib.util.find_spec(_MODULE[framework]) is not None


def pair_name(client: str, server: str) -> str:
    return f"{client} → {server}"


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


def run_client(client: str, port: int, concurrency: int, budget: Budget, server_pid: int | None) -> dict[str, Any]:
    """One closed-loop client process (pinned to the client core) against ``port``."""
    args = [client, "--port", str(port), "--concurrency", str(concurrency), *budget.client_args()]
    if server_pid is not None:
        args += ["--server-pid", str(server_pid)]
    return run_json("bench.clients", args, CLIENT_CORE, budget.timeout)


def run_pairs(
    budget: Budget, concurrencies: Sequence[int] = CONCURRENCIES, log: Any = print
) -> tuple[list[dict[str, Any]], list[str]]:
    """Every available pair at every concurrency; one server process per server framework.

    Returns (rows, skipped pair names). A row is the client's JSON plus ``pair`` and ``server``.
    """
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    servers = list(dict.fromkeys(server for _, server in PAIRS))
    for server in servers:
        clients = [c for c, s in PAIRS if s == server]
        runnable = [c for c in clients if available(c) and available(server)]
        skipped += [pair_name(c, server) for c in clients if c not in runnable]
        if not runnable:
            continue
        with child("bench.servers", [server], SERVER_CORE) as proc:
            for client in runnable:
                for concurrency in concurrencies:
                    log(f"  {pair_name(client, server)} at C={concurrency} ...")
                    row = run_client(client, proc.port, concurrency, budget, proc.pid)
                    row.update(pair=pair_name(client, server), server=server)
                    rows.append(row)
    return rows, skipped
