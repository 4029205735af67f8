"""The streaming rows: server-streaming, client-streaming and bidi ping-pong of 100-byte messages.

For every installed framework X: X → X, and (outside ``--quick``) X → ours and ours → X; messages/s and
CPU µs per message on each side, against ours → ours in the same run (:mod:`bench.turns`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench import turns
from bench.pairs import Budget
from bench.report import OURS, fmt, ratio

SIZE = 100
#: Messages per server- or client-streaming call (quick: per call and per row, about).
MESSAGES, QUICK_MESSAGES = 1000, 100
#: Bidi streams held open at once, each a closed loop of round trips.
PING_PONG_STREAMS = 16


def specs(budget: Budget, quick: bool) -> list[turns.Spec]:
    """The three rows. ``budget.calls`` counts messages here: a streaming call carries many."""
    per_call = QUICK_MESSAGES if quick else MESSAGES
    calls = max(2, budget.calls // per_call)
    warmup = max(1, budget.warmup * 4 // per_call)
    return [
        turns.Spec("server-streaming", "download", 1, SIZE, per_call, calls, warmup),
        turns.Spec("client-streaming", "upload", 1, SIZE, per_call, calls, warmup),
        turns.Spec("bidi ping-pong", "pingpong", PING_PONG_STREAMS, SIZE, 1, budget.calls, budget.warmup),
    ]


def measure(
    budget: Budget, log: Callable[[str], Any] = print, *, quick: bool = False, rounds: int = 1
) -> dict[str, Any]:
    """Every streaming row on every pair; ``skipped`` names the frameworks that are not installed."""
    pairs, skipped = turns.framework_pairs(cross=not quick)
    rows = turns.run(specs(budget, quick), pairs, budget, rounds, log)
    return {"rows": rows, "skipped": skipped, "messages_per_call": QUICK_MESSAGES if quick else MESSAGES}


def find(result: dict[str, Any] | None, label: str, pair: str) -> dict[str, Any] | None:
    if result is None:
        return None
    return next((r for r in result["rows"] if r["label"] == label and r["pair"] == pair), None)


def table(result: dict[str, Any]) -> str:
    """Markdown: a row per (workload, pair); ratios against ours → ours on the same workload."""
    lines = [
        "## Streaming (100-byte messages)",
        "",
        (
            "| workload | pair (client → server) | C | messages | messages/s | ×ours | p50 µs/call "
            "| client CPU µs/msg | ×ours | server CPU µs/msg | ×ours |"
        ),
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in result["rows"]:
        ours = find(result, r["label"], OURS) or {}
        client, server = r["client_cpu_us_per_message"], r["server_cpu_us_per_message"]
        lines.append(
            f"| {r['label']} | {r['pair']} | {r['concurrency']} | {r['messages']:,} | {fmt(r['messages_per_s'])} "
            f"| {fmt(ratio(r['messages_per_s'], ours.get('messages_per_s')), 2)} | {fmt(r['p50_us'])} "
            f"| {fmt(client, 1)} | {fmt(ratio(client, ours.get('client_cpu_us_per_message')), 2)} "
            f"| {fmt(server, 1)} | {fmt(ratio(server, ours.get('server_cpu_us_per_message')), 2)} |"
        )
    lines += [
        "",
        (
            f"Server- and client-streaming: one stream at a time, {result['messages_per_call']:,} messages per call; "
            f"ping-pong: {PING_PONG_STREAMS} bidi streams at once, a call is one round trip."
        ),
    ]
    if result["skipped"]:
        lines.append(f"Not installed, no rows: {', '.join(result['skipped'])}.")
    return "\n".join(lines)
