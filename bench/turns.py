"""Bench workloads for every available framework pair, taking turns: what the streaming and size rows share.

Like :func:`bench.pairs.run_pairs`, every server runs for the whole section and each (pair, workload)
gets ``rounds`` turns of ``duration / rounds`` seconds, alternating with the others, so that the
shared machine's slow moments fall on every row alike. Frameworks are data (:data:`FRAMEWORKS`): a
kind that ``bench.servers`` and ``bench.clients`` know and :func:`bench.pairs.available` reports
installed joins every table; an unknown or missing one is skipped with a note.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from bench.pairs import Budget, available, merge_turns, pair_name, run_client
from bench.procs import SERVER_CORE, Child

#: Every framework the rows may use, ours first.
FRAMEWORKS = ("ours", "grpclib", "grpcio", "grpcjs")
OURS = "ours"


@dataclass(frozen=True, slots=True)
class Spec:
    """One row's workload: ``bench.clients --workload`` with its size, messages per call and concurrency."""

    label: str
    workload: str
    concurrency: int
    size: int
    messages: int = 1
    #: Calls and warm-up calls per turn (None: the budget's).
    calls: int | None = None
    warmup: int | None = None

    def client_args(self) -> list[str]:
        return ["--workload", self.workload, "--size", str(self.size), "--messages", str(self.messages)]


def installed(framework: str) -> bool:
    """The framework can run here (False for a kind :mod:`bench.pairs` does not know)."""
    try:
        return available(framework)
    except KeyError:
        return False


def framework_pairs(cross: bool) -> tuple[list[tuple[str, str]], list[str]]:
    """(client, server) pairs of the installed frameworks: X → X, then (``cross``) X → ours and ours → X;
    and the names of the frameworks skipped."""
    present = [f for f in FRAMEWORKS if installed(f)]
    missing = [f for f in FRAMEWORKS if f not in present]
    pairs = [(f, f) for f in present]
    if cross and OURS in present:
        for other in present:
            if other != OURS:
                pairs += [(other, OURS), (OURS, other)]
    return pairs, missing


def _start_servers(kinds: Sequence[str], stack: contextlib.ExitStack) -> dict[str, Child]:
    """One server per kind, started side by side (each takes a few hundred ms to import and bind)."""
    with ThreadPoolExecutor(len(kinds) or 1) as pool:
        futures = {kind: pool.submit(Child, "bench.servers", [kind], SERVER_CORE) for kind in kinds}
    servers: dict[str, Child] = {}
    failure: Exception | None = None
    for kind, future in futures.items():
        try:
            servers[kind] = server = future.result()
        except Exception as exc:  # noqa: BLE001 - stop the others before reporting it
            failure = failure or exc
            continue
        stack.callback(server.stop)
    if failure is not None:
        raise failure
    return servers


def merge(turns: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One row from a spec's turns: :func:`bench.pairs.merge_turns` (counts and times summed, CPU weighted by
    calls, p50/p99 medians) plus the messages and bytes moved, CPU per message weighted by messages."""
    row = merge_turns(turns)
    messages = sum(t["messages"] for t in turns)
    moved = sum(t["bytes"] for t in turns)
    seconds = row["seconds"]

    def per_message(key: str) -> float | None:
        if not messages or any(t.get(key) is None for t in turns):
            return None
        return float(sum(t[key] * t["messages"] for t in turns) / messages)

    row.update(
        messages=messages,
        messages_per_s=messages / seconds if seconds else 0.0,
        bytes=moved,
        mb_per_s=moved / 2**20 / seconds if seconds else 0.0,
        client_cpu_us_per_message=per_message("client_cpu_us_per_message"),
        server_cpu_us_per_message=per_message("server_cpu_us_per_message"),
    )
    return row


def run(
    specs: Sequence[Spec],
    pairs: Sequence[tuple[str, str]],
    budget: Budget,
    rounds: int,
    log: Callable[[str], Any],
) -> list[dict[str, Any]]:
    """Every spec on every pair, ``rounds`` turns each; a row is the merged client JSON plus
    ``label``, ``pair`` and ``server``, in spec order then pair order."""
    turns: dict[tuple[int, int], list[dict[str, Any]]] = {
        (s, p): [] for s in range(len(specs)) for p in range(len(pairs))
    }
    with contextlib.ExitStack() as stack:
        servers = _start_servers(sorted({server for _, server in pairs}), stack)
        for i in range(rounds):
            for s, spec in enumerate(specs):
                turn = Budget(
                    spec.calls or budget.calls,
                    budget.duration / rounds,
                    budget.warmup if spec.warmup is None else spec.warmup,
                )
                for p, (client, server) in enumerate(pairs):
                    log(f"  round {i + 1}/{rounds}: {spec.label}, {pair_name(client, server)} ...")
                    proc = servers[server]
                    row = run_client(client, proc.port, spec.concurrency, turn, proc.pid, spec.client_args())
                    turns[s, p].append(row)
    rows = []
    for (s, p), runs in turns.items():
        row = merge(runs)
        row.update(label=specs[s].label, pair=pair_name(*pairs[p]), server=pairs[p][1])
        rows.append(row)
    return rows
