"""The floor: an asyncio echo of the bytes one unary SayHello call puts on the wire, one future per call.

The bytes are our own (``python -m bench.floor_echo capture``: what our client and server write for one
warm call); the echo server and client (``bench.floor_echo``) run pinned like the pairs, server core 0 and
client core 1, at C=1 and C=32. What they spend per call is what moving these bytes through asyncio and
the kernel costs at least, so every row's CPU per call also reads as a multiple of it.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any, Self

from bench.pairs import Budget, merge_turns
from bench.procs import CLIENT_CORE, SERVER_CORE, child, run_json

CONCURRENCIES = (1, 32)
LABEL = "asyncio echo floor (same bytes, one future per call)"


class Floor:
    """The echo server, started once, and the floor's turns: ``with Floor(budget, rounds) as floor``, then
    :meth:`turn` once per round (the pairs' rotation calls it after each round of pairs, so the floor sees
    the machine at the same moments as the rows read against it), then :meth:`result`."""

    def __init__(self, budget: Budget, rounds: int, log: Any = print) -> None:
        self._turn_budget = Budget(budget.calls, budget.duration / rounds, budget.warmup)
        self._rounds = rounds
        self._log = log
        self._turns: dict[int, list[dict[str, Any]]] = {c: [] for c in CONCURRENCIES}
        self._stack = contextlib.ExitStack()
        self._args: list[str] = []
        self._wire: dict[str, str] = {}

    def __enter__(self) -> Self:
        self._log("  floor: one warm call's bytes from our client and server, then their echo ...")
        server = self._stack.enter_context(child("bench.floor_echo", ["server"], SERVER_CORE))
        try:
            assert server.proc.stdout is not None
            self._wire = json.loads(server.proc.stdout.readline())  # printed right after READY
        except BaseException:
            self._stack.close()
            raise
        self._args = ["client", "--port", str(server.port), "--request", self._wire["request"]]
        self._args += ["--server-pid", str(server.pid)]
        for concurrency in CONCURRENCIES:
            self._args += ["--concurrency", str(concurrency)]
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def turn(self) -> None:
        """One turn of the floor at each concurrency."""
        done = len(self._turns[CONCURRENCIES[0]])
        self._log(f"  round {done + 1}/{self._rounds}: floor at C={', '.join(map(str, CONCURRENCIES))} ...")
        turn = self._turn_budget
        both = run_json("bench.floor_echo", [*self._args, *turn.client_args()], CLIENT_CORE, 2 * turn.timeout)
        for r in both["rows"]:
            self._turns[r["concurrency"]].append(r)

    def result(self) -> dict[str, Any]:
        wire = self._wire
        return {
            "request_bytes": len(wire["request"]) // 2,
            "response_bytes": len(wire["response"]) // 2,
            "wire": wire,
            "rows": {str(c): merge_turns(runs) for c, runs in self._turns.items()},
        }


def _f(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def table(result: dict[str, Any]) -> str:
    """The floor's rows, in the pairs table's units."""
    intro = (
        f"An asyncio echo of the bytes one warm SayHello call puts on the wire (request {result['request_bytes']} B: "
        f"HEADERS + DATA; response {result['response_bytes']} B: HEADERS + DATA + trailers, as our client and server "
        "write them), parsing only the 9-byte frame headers to find where a call ends; one future per call, one "
        "write per call (the server: per read). The `×floor` columns above read each row against it."
    )
    lines = [
        "## The floor",
        "",
        intro,
        "",
        "| floor | C | calls | calls/s | p50 µs | p99 µs | client CPU µs/call | server CPU µs/call |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for concurrency in CONCURRENCIES:
        r = result["rows"][str(concurrency)]
        lines.append(
            f"| {LABEL} | {concurrency} | {r['calls']:,} | {_f(r['throughput'])} | {_f(r['p50_us'])} "
            f"| {_f(r['p99_us'])} | {_f(r['client_cpu_us'], 1)} | {_f(r['server_cpu_us'], 1)} |"
        )
    return "\n".join(lines)
