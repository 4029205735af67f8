"""The markdown table of ratios and the targets section, from the raw results."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

OURS = "ours → ours"


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    measured: float | None
    goal: str
    passed: bool | None
    detail: str

    @property
    def verdict(self) -> str:
        return "n/a" if self.passed is None else "PASS" if self.passed else "MISS"


def _f(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.{digits}f}"


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0 or math.isnan(a) or math.isnan(b):
        return None
    return a / b


#: For the other sections' tables (bench/streams.py, bench/sizes.py).
fmt, ratio = _f, _ratio


def _find(rows: list[dict[str, Any]], pair: str, concurrency: int) -> dict[str, Any] | None:
    return next((r for r in rows if r["pair"] == pair and r["concurrency"] == concurrency), None)


def _get(row: dict[str, Any] | None, key: str) -> float | None:
    return None if row is None else row.get(key)


def table(rows: list[dict[str, Any]], ceiling: dict[str, Any], proxy: dict[str, Any] | None) -> str:
    """One markdown table: every pair at every C, the proxy runs, and the h2 ceiling."""
    h2c, h2s = ceiling["client_cpu_us"], ceiling["server_cpu_us"]
    lines = [
        (
            "| pair (client → server) | C | calls | calls/s | ×ours | p50 µs | p50 ×ours | p99 µs "
            "| client CPU µs/call | ×h2 | server CPU µs/call | ×h2 |"
        ),
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        ours = _find(rows, OURS, r["concurrency"])
        lines.append(
            f"| {r['pair']} | {r['concurrency']} | {r['calls']:,} | {_f(r['throughput'])} "
            f"| {_f(_ratio(r['throughput'], _get(ours, 'throughput')), 2)} | {_f(r['p50_us'])} "
            f"| {_f(_ratio(r['p50_us'], _get(ours, 'p50_us')), 2)} | {_f(r['p99_us'])} "
            f"| {_f(r['client_cpu_us'])} | {_f(_ratio(r['client_cpu_us'], h2c), 2)} "
            f"| {_f(r['server_cpu_us'])} | {_f(_ratio(r['server_cpu_us'], h2s), 2)} |"
        )
    if proxy is not None:
        runs = [
            ("ours → ours, direct (interleaved with ↓)", proxy["direct"]),
            ("ours → L4 proxy (embedded) → ours", proxy["proxied"]),
        ]
        if "separate" in proxy:
            runs += [
                ("ours → ours, direct (interleaved with ↓)", proxy["separate"]["direct"]),
                ("ours → L4 proxy (own process) → ours", proxy["separate"]["proxied"]),
            ]
        for label, p in runs:
            lines.append(
                f"| {label} | 1 | {p['calls']:,} | {_f(p['throughput'])} | – | {_f(p['p50_us'])} | – "
                f"| {_f(p['p99_us'])} | {_f(p['client_cpu_us'])} | {_f(_ratio(p['client_cpu_us'], h2c), 2)} | – | – |"
            )
    lines.append(
        f"| h2 state machine only (ceiling, in memory) | – | {ceiling['calls']:,} | – | – | – | – | – "
        f"| {_f(h2c, 1)} | 1.00 | {_f(h2s, 1)} | 1.00 |"
    )
    return "\n".join(lines)


def targets(rows: list[dict[str, Any]], ceiling: dict[str, Any], proxy: dict[str, Any] | None) -> list[Target]:
    """The issue's four goals (CPU checked on each side at C=32), as ratios from this run."""
    out: list[Target] = []

    def ratio_target(name: str, value: float | None, goal: float, at_least: bool, detail: str) -> None:
        passed = None if value is None else (value >= goal if at_least else value <= goal)
        out.append(Target(name, value, f"{'≥' if at_least else '≤'} {goal}×", passed, detail))

    ours32, lib32 = _find(rows, OURS, 32), _find(rows, "grpclib → grpclib", 32)
    ratio_target(
        "C=32 throughput vs grpclib",
        _ratio(_get(ours32, "throughput"), _get(lib32, "throughput")),
        1.5,
        True,
        f"{_f(_get(ours32, 'throughput'))} vs {_f(_get(lib32, 'throughput'))} calls/s",
    )
    ours1, io1 = _find(rows, OURS, 1), _find(rows, "grpcio → grpcio", 1)
    ratio_target(
        "C=1 p50 latency vs grpcio",
        _ratio(_get(ours1, "p50_us"), _get(io1, "p50_us")),
        0.9,
        False,
        f"{_f(_get(ours1, 'p50_us'))} vs {_f(_get(io1, 'p50_us'))} µs",
    )
    for side in ("client", "server"):
        key, h2 = f"{side}_cpu_us", ceiling[f"{side}_cpu_us"]
        ratio_target(
            f"{side} CPU per call vs h2 state machine (C=32)",
            _ratio(_get(ours32, key), h2),
            1.3,
            False,
            f"{_f(_get(ours32, key))} vs {_f(h2, 1)} µs/call (C=1: {_f(_get(ours1, key))})",
        )
    if proxy is None:
        out.append(Target("L4 proxy adds to C=1 p50", None, "≤ 100 µs", None, "not measured"))
    else:
        delta = proxy["delta_p50_us"]
        out.append(
            Target(
                "L4 proxy adds to C=1 p50",
                delta,
                "≤ 100 µs",
                delta <= 100,
                f"embedded: {_f(proxy['proxied']['p50_us'])} vs {_f(proxy['direct']['p50_us'])} µs direct"
                + (f"; in its own process: +{_f(proxy['separate']['delta_p50_us'])} µs" if "separate" in proxy else ""),
            )
        )
    return out


def _row(result: dict[str, Any] | None, label: str, pair: str) -> dict[str, Any] | None:
    rows = [] if result is None else result["rows"]
    return next((r for r in rows if r["label"] == label and r["pair"] == pair), None)


def _versus(name: str, ours: dict[str, Any] | None, peer: dict[str, Any] | None, key: str, goal: float) -> Target:
    """``ours[key]`` ≥ ``goal`` × ``peer[key]``; n/a when either row is missing (a peer not installed)."""
    value = _ratio(_get(ours, key), _get(peer, key))
    unit = "messages/s" if key == "messages_per_s" else "MiB/s"
    if ours is None:
        detail = "not measured"
    elif peer is None:
        detail = "peer not in this run"
    else:
        detail = f"{_f(_get(ours, key))} vs {_f(_get(peer, key))} {unit}"
    return Target(name, value, f"≥ {goal}×", None if value is None else value >= goal, detail)


def stream_targets(streams: dict[str, Any] | None, sizes: dict[str, Any] | None) -> list[Target]:
    """Streaming messages/s ≥ 2× grpclib and ≥ 1.2× grpc-js (server-streaming, bidi); 1 MiB MiB/s ≥ grpcio's."""
    out = []
    for label in ("server-streaming", "bidi ping-pong"):
        ours = _row(streams, label, OURS)
        for peer, name, goal in (("grpclib", "grpclib", 2.0), ("grpcjs", "grpc-js", 1.2)):
            other = _row(streams, label, f"{peer} → {peer}")
            out.append(_versus(f"{label} messages/s vs {name}", ours, other, "messages_per_s", goal))
    io = _row(sizes, "1 MiB", "grpcio → grpcio")
    out.append(_versus("1 MiB echo MiB/s vs grpcio", _row(sizes, "1 MiB", OURS), io, "mb_per_s", 1.0))
    return out


def targets_section(items: list[Target]) -> str:
    lines = ["## Targets", "", "| target | measured | goal | verdict | detail |", "|---|--:|---|---|---|"]
    for t in items:
        unit = " µs" if t.goal.endswith("µs") else "×"
        measured = "–" if t.measured is None else f"{t.measured:,.2f}{unit}"
        lines.append(f"| {t.name} | {measured} | {t.goal} | {t.verdict} | {t.detail} |")
    return "\n".join(lines)
