"""The markdown table of ratios and the targets section, from the raw results."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bench.proxy_cost import added

OURS = "ours → ours"
GRPCJS = "grpcjs → grpcjs"
#: Our CPU per call at C=32, each side, at most this many times the asyncio echo floor's (bench/floor.py).
FLOOR_MULTIPLE = 4.0
#: Our client's CPU per call at C=128 at most this many times its C=32 figure (no per-stream scans).
C128_GROWTH = 1.1


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


def _floor_row(floor: dict[str, Any] | None, concurrency: int) -> dict[str, Any] | None:
    """The asyncio echo floor's row (bench/floor.py) at ``concurrency``, if measured there."""
    return None if floor is None else floor["rows"].get(str(concurrency))


def table(rows: list[dict[str, Any]], ceiling: dict[str, Any], floor: dict[str, Any] | None = None) -> str:
    """One markdown table: every pair at every C, and the h2 ceiling (the proxies have their own,
    bench.proxy_cost); CPU per call also as a multiple of the h2 ceiling and of the asyncio echo floor."""
    h2c, h2s = ceiling["client_cpu_us"], ceiling["server_cpu_us"]
    lines = [
        (
            "| pair (client → server) | C | calls | calls/s | ×ours | p50 µs | p50 ×ours | p99 µs "
            "| client CPU µs/call | ×h2 | ×floor | server CPU µs/call | ×h2 | ×floor |"
        ),
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        ours = _find(rows, OURS, r["concurrency"])
        base = _floor_row(floor, r["concurrency"])
        lines.append(
            f"| {r['pair']} | {r['concurrency']} | {r['calls']:,} | {_f(r['throughput'])} "
            f"| {_f(_ratio(r['throughput'], _get(ours, 'throughput')), 2)} | {_f(r['p50_us'])} "
            f"| {_f(_ratio(r['p50_us'], _get(ours, 'p50_us')), 2)} | {_f(r['p99_us'])} "
            f"| {_f(r['client_cpu_us'])} | {_f(_ratio(r['client_cpu_us'], h2c), 2)} "
            f"| {_f(_ratio(r['client_cpu_us'], _get(base, 'client_cpu_us')), 1)} "
            f"| {_f(r['server_cpu_us'])} | {_f(_ratio(r['server_cpu_us'], h2s), 2)} "
            f"| {_f(_ratio(r['server_cpu_us'], _get(base, 'server_cpu_us')), 1)} |"
        )
    lines.append(
        f"| h2 state machine only (ceiling, in memory) | – | {ceiling['calls']:,} | – | – | – | – | – "
        f"| {_f(h2c, 1)} | 1.00 | – | {_f(h2s, 1)} | 1.00 | – |"
    )
    return "\n".join(lines)


def targets(
    rows: list[dict[str, Any]],
    ceiling: dict[str, Any],
    proxy: dict[str, Any] | None,
    floor: dict[str, Any] | None = None,
    many_conns: dict[str, Any] | None = None,
) -> list[Target]:
    """The issues' goals (CPU checked on each side at C=32; round 2's unary ones), as ratios from this run."""
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
    # Issue 15's unary targets: grpclib and grpc-js (n/a when node or its packages are missing).
    js32, js1 = _find(rows, GRPCJS, 32), _find(rows, GRPCJS, 1)
    ratio_target(
        "C=32 throughput vs grpclib (round 2)",
        _ratio(_get(ours32, "throughput"), _get(lib32, "throughput")),
        4,
        True,
        f"{_f(_get(ours32, 'throughput'))} vs {_f(_get(lib32, 'throughput'))} calls/s",
    )
    ratio_target(
        "C=32 throughput vs grpc-js",
        _ratio(_get(ours32, "throughput"), _get(js32, "throughput")),
        4,
        True,
        f"{_f(_get(ours32, 'throughput'))} vs {_f(_get(js32, 'throughput'))} calls/s"
        if js32
        else "grpc-js not measured",
    )
    ratio_target(
        "C=1 p50 latency vs grpc-js",
        _ratio(_get(ours1, "p50_us"), _get(js1, "p50_us")),
        0.8,
        False,
        f"{_f(_get(ours1, 'p50_us'))} vs {_f(_get(js1, 'p50_us'))} µs" if js1 else "grpc-js not measured",
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
    floor32, floor1 = _floor_row(floor, 32), _floor_row(floor, 1)
    for side in ("client", "server"):
        key = f"{side}_cpu_us"
        ratio_target(
            f"{side} CPU per call vs asyncio echo floor (C=32)",
            _ratio(_get(ours32, key), _get(floor32, key)),
            FLOOR_MULTIPLE,
            False,
            f"{_f(_get(ours32, key))} vs {_f(_get(floor32, key), 1)} µs/call "
            f"(C=1: {_f(_get(ours1, key))} vs {_f(_get(floor1, key), 1)})",
        )
    ours128 = _find(rows, OURS, 128)
    ratio_target(
        "client CPU per call C=128 vs C=32 (ours → ours)",
        _ratio(_get(ours128, "client_cpu_us"), _get(ours32, "client_cpu_us")),
        C128_GROWTH,
        False,
        f"{_f(_get(ours128, 'client_cpu_us'))} vs {_f(_get(ours32, 'client_cpu_us'))} µs/call "
        f"(server: {_f(_get(ours128, 'server_cpu_us'))} vs {_f(_get(ours32, 'server_cpu_us'))})",
    )
    out += proxy_targets(proxy)
    out += many_conns_targets(many_conns)
    return out


def proxy_targets(proxy: dict[str, Any] | None) -> list[Target]:
    """Our L4 proxy, embedded, adds at most 100 µs to C=1 p50; our L7 proxy (embedded, as the cluster runs it)
    adds no more than nginx grpc_pass does (both from bench.proxy_cost's one interleaved run)."""
    l4_name = "L4 proxy (embedded) adds to C=1 p50"
    l7_name = "L7 proxy (embedded) adds to C=1 p50 vs nginx grpc_pass"
    if proxy is None:
        return [
            Target(l4_name, None, "≤ 100 µs", None, "not measured"),
            Target(l7_name, None, "≤ 1.0×", None, "not measured"),
        ]
    l4, l4_own, l7, nginx = (added(proxy, n) for n in ("l4_embedded", "l4_process", "l7_embedded", "nginx_grpc"))
    out = []
    if l4 is None:
        out.append(Target(l4_name, None, "≤ 100 µs", None, "not measured"))
    else:
        delta = l4["adds_p50_us"]
        own = f"; in its own process: +{_f(l4_own['adds_p50_us'])} µs" if l4_own else ""
        detail = f"{_f(l4['row']['p50_us'])} vs {_f(proxy['direct']['p50_us'])} µs direct{own}"
        out.append(Target(l4_name, delta, "≤ 100 µs", delta <= 100, detail))
    if l7 is None or nginx is None:
        out.append(Target(l7_name, None, "≤ 1.0×", None, proxy["note"] or "not measured"))
    else:
        ours, theirs = l7["adds_p50_us"], nginx["adds_p50_us"]
        cpu = f"proxy CPU {_f(l7['proxy_cpu_us'])} vs {_f(nginx['proxy_cpu_us'])} µs/call"
        detail = f"+{_f(ours)} vs +{_f(theirs)} µs; {cpu}"
        out.append(Target(l7_name, ours / theirs if theirs > 0 else None, "≤ 1.0×", ours <= theirs, detail))
    return out


#: Issue 15: what an idle connection may cost our server at most.
MAX_KB_PER_IDLE_CONNECTION = 32


def many_conns_targets(result: dict[str, Any] | None) -> list[Target]:
    """RSS per idle connection (ours) and server CPU per call at many connections, ours vs each Python peer."""
    rows = {r["server"]: r for r in result["rows"]} if result is not None else {}
    ours = rows.get("ours")
    label = f"{result['connections']:,} × {result['rate']:g} calls/s" if result is not None else "many connections"
    kb = None if ours is None or ours["rss_per_idle_connection"] is None else ours["rss_per_idle_connection"] / 1024
    out = [
        Target(
            f"RSS per idle connection, ours ({label})",
            kb,
            f"≤ {MAX_KB_PER_IDLE_CONNECTION} KB",
            None if kb is None else kb <= MAX_KB_PER_IDLE_CONNECTION,
            "not measured"
            if ours is None
            else f"busy: {_f(_kb(ours['rss_per_busy_connection']), 1)} KB; "
            + ", ".join(f"{k}: {_f(_kb(r['rss_per_idle_connection']), 1)}" for k, r in rows.items() if k != "ours"),
        )
    ]
    for peer in ("grpcio", "grpclib"):
        other = rows.get(peer)
        value = _ratio(_get(ours, "server_cpu_us"), _get(other, "server_cpu_us"))
        out.append(
            Target(
                f"server CPU per call at {label} vs {peer}",
                value,
                "< 1×",
                None if value is None else value < 1,
                "not measured"
                if value is None
                else f"{_f(_get(ours, 'server_cpu_us'))} vs {_f(_get(other, 'server_cpu_us'))} µs/call "
                f"({_f(_get(ours, 'server_cpu_percent'), 1)} vs {_f(_get(other, 'server_cpu_percent'), 1)} % of a core)",
            )
        )
    return out


def _kb(value: float | None) -> float | None:
    return None if value is None else value / 1024


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
        unit = " µs" if t.goal.endswith("µs") else " KB" if t.goal.endswith("KB") else "×"
        measured = "–" if t.measured is None else f"{t.measured:,.2f}{unit}"
        lines.append(f"| {t.name} | {measured} | {t.goal} | {t.verdict} | {t.detail} |")
    return "\n".join(lines)
