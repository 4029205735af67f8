"""The size rows: unary Echo of 1 KiB, 64 KiB and 1 MiB Blobs (each call carries its Blob both ways).

For every installed framework X: X → X, and (outside ``--quick``) X → ours and ours → X; calls/s, MiB/s
one way and CPU per MiB on each side, against ours → ours in the same run (:mod:`bench.turns`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench import turns
from bench.pairs import Budget
from bench.report import OURS, fmt, ratio

KIB, MIB = 1024, 1024 * 1024
SIZES, QUICK_SIZES = (KIB, 64 * KIB, MIB), (64 * KIB, MIB)
#: Echo calls in flight at once.
CONCURRENCY = 4
#: Payload bytes per row in ``--quick``, and per warm-up.
QUICK_BYTES, WARMUP_BYTES = 2 * MIB, 32 * MIB


def label(size: int) -> str:
    return f"{size // MIB} MiB" if size >= MIB else f"{size // KIB} KiB"


def specs(budget: Budget, quick: bool) -> list[turns.Spec]:
    out = []
    for size in QUICK_SIZES if quick else SIZES:
        calls = min(budget.calls, max(CONCURRENCY, QUICK_BYTES // size)) if quick else budget.calls
        warmup = max(2, min(budget.warmup, (QUICK_BYTES // 2 if quick else WARMUP_BYTES) // size))
        out.append(turns.Spec(label(size), "echo", CONCURRENCY, size, 1, calls, warmup))
    return out


def measure(
    budget: Budget, log: Callable[[str], Any] = print, *, quick: bool = False, rounds: int = 1
) -> dict[str, Any]:
    """Every size on every pair; ``skipped`` names the frameworks that are not installed."""
    pairs, skipped = turns.framework_pairs(cross=not quick)
    return {"rows": turns.run(specs(budget, quick), pairs, budget, rounds, log), "skipped": skipped}


def find(result: dict[str, Any] | None, size_label: str, pair: str) -> dict[str, Any] | None:
    if result is None:
        return None
    return next((r for r in result["rows"] if r["label"] == size_label and r["pair"] == pair), None)


def per_mib(cpu_us_per_message: float | None, size: int) -> float | None:
    """CPU ms per MiB of payload (one way) from µs per message of ``size`` bytes."""
    return None if cpu_us_per_message is None else cpu_us_per_message * MIB / size / 1000


def table(result: dict[str, Any]) -> str:
    """Markdown: a row per (size, pair); ratios against ours → ours at the same size."""
    lines = [
        "## Message size (unary Echo)",
        "",
        (
            "| size | pair (client → server) | C | calls | calls/s | MiB/s | ×ours | p50 µs "
            "| client CPU ms/MiB | ×ours | server CPU ms/MiB | ×ours |"
        ),
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in result["rows"]:
        ours = find(result, r["label"], OURS) or {}
        size = r["size"]
        client = per_mib(r["client_cpu_us_per_message"], size)
        server = per_mib(r["server_cpu_us_per_message"], size)
        ours_client = per_mib(ours.get("client_cpu_us_per_message"), size)
        ours_server = per_mib(ours.get("server_cpu_us_per_message"), size)
        lines.append(
            f"| {r['label']} | {r['pair']} | {r['concurrency']} | {r['calls']:,} | {fmt(r['throughput'])} "
            f"| {fmt(r['mb_per_s'], 1)} | {fmt(ratio(r['mb_per_s'], ours.get('mb_per_s')), 2)} | {fmt(r['p50_us'])} "
            f"| {fmt(client, 2)} | {fmt(ratio(client, ours_client), 2)} "
            f"| {fmt(server, 2)} | {fmt(ratio(server, ours_server), 2)} |"
        )
    lines += [
        "",
        f"{CONCURRENCY} calls in flight; MiB/s and CPU per MiB count the payload one way (each call echoes it back).",
    ]
    if result["skipped"]:
        lines.append(f"Not installed, no rows: {', '.join(result['skipped'])}.")
    return "\n".join(lines)
