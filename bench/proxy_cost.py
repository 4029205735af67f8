"""What each proxy adds over direct at C=1: p50 latency and CPU per call, all in one interleaved run.

One server (ours) and every way in to it, all up at once, the server side pinned to the server core:
- our L4 and L7 proxies embedded on the server's event loop (in its process), as rpcviz's cluster runs them;
- our L4 and L7 proxies each in a process of its own (sharing the server's core: the scheduler's switches count);
- nginx ``stream`` (L4) and nginx ``grpc_pass`` (L7), one worker each (skipped with a note without nginx).

One client process (``bench.interleave``) holds a direct channel and one channel per proxy and gives them turns
of 10 calls in a rotating order, so the machine's noise falls on every row and on direct alike. "Adds" is the
row's p50 minus direct's; "spread" is that difference in each fifth of the run (how much it moved).
A proxy's CPU per call is read from /proc: for a proxy in its own process (nginx: its worker), its CPU over the
whole window divided by the calls through it; for an embedded one, the server process's CPU per call during
that proxy's turns minus the same during direct's turns.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from bench import nginx_proxy
from bench.pairs import Budget
from bench.procs import CLIENT_CORE, SERVER_CORE, child, run_json


@dataclass(frozen=True, slots=True)
class Door:
    """One way to the server: a channel name, its label, layer, and which watched process is the proxy."""

    name: str
    label: str
    layer: str
    process: str
    embedded: bool


DOORS = (
    Door("l4_embedded", "ours L4 proxy, embedded on the server's loop", "L4", "server", True),
    Door("l4_process", "ours L4 proxy, own process", "L4", "l4_process", False),
    Door("nginx_stream", "nginx stream (1 worker)", "L4", "nginx_stream", False),
    Door("l7_embedded", "ours L7 proxy, embedded on the server's loop", "L7", "server", True),
    Door("l7_process", "ours L7 proxy, own process", "L7", "l7_process", False),
    Door("nginx_grpc", "nginx grpc_pass (1 worker)", "L7", "nginx_grpc", False),
)
BY_NAME = {door.name: door for door in DOORS}
#: Calls per channel per turn.
BATCH = 10


def measure(budget: Budget, log: Any = print) -> dict[str, Any]:
    """Every door of :data:`DOORS` this machine has, interleaved with direct; see the module doc."""
    found, note = nginx_proxy.build()
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(child("bench.proxy_servers", ["ours+proxies"], SERVER_CORE))
        server_port, l4_port, l7_port = server.ports
        ports = {"l4_embedded": l4_port, "l7_embedded": l7_port}
        watch = {"server": server.pid}
        for kind in ("l4", "l7"):
            proc = stack.enter_context(child("bench.proxy_servers", [kind, "--backend", str(server_port)], SERVER_CORE))
            ports[f"{kind}_process"] = proc.port
            watch[f"{kind}_process"] = proc.pid
        if found is not None:
            for name, l7 in (("nginx_stream", False), ("nginx_grpc", True)):
                run = stack.enter_context(nginx_proxy.running(found, l7, server_port, SERVER_CORE))
                ports[name], watch[name] = run.port, run.worker
        doors = [door for door in DOORS if door.name in ports]
        # Every channel gets what one measurement gets elsewhere, half of it: 1 + 6 channels -> 3.5 durations.
        duration = budget.duration * (1 + len(doors)) / 2
        log(f"  proxies: direct and {len(doors)} proxies, interleaved in turns of {BATCH} calls ({duration:.1f} s) ...")
        args = [
            *["--direct", str(server_port)],
            *[f"--via={door.name}={ports[door.name]}" for door in doors],
            *[f"--watch={name}={pid}" for name, pid in watch.items()],
            *["--calls", str(budget.calls), "--duration", str(duration), "--warmup", str(budget.warmup)],
            *["--batch", str(BATCH)],
        ]
        raw = run_json("bench.interleave", args, CLIENT_CORE, duration + 90)
    return summarize(raw, [door.name for door in doors], note)


def summarize(raw: dict[str, Any], doors: list[str], note: str) -> dict[str, Any]:
    """``raw`` (bench.interleave's JSON) → direct's row and, per door, what it adds."""
    channels = raw["channels"]
    direct = channels["direct"]
    rows = []
    for name in doors:
        door, via = BY_NAME[name], channels[name]
        spread = [v - d for v, d in zip(via["segment_p50_us"], direct["segment_p50_us"], strict=False)]
        rows.append(
            {
                "name": name,
                "label": door.label,
                "layer": door.layer,
                "row": via,
                "adds_p50_us": via["p50_us"] - direct["p50_us"],
                "adds_p50_spread_us": [min(spread), max(spread)] if spread else None,
                "proxy_cpu_us": _proxy_cpu_us(door, via, direct, raw["window_cpu_s"]),
            }
        )
    return {"direct": direct, "proxies": rows, "note": note, "cpu_source": raw["cpu_source"], "rounds": raw["rounds"]}


def _per_call_us(seconds: float | None, calls: int) -> float | None:
    return None if seconds is None or not calls else seconds / calls * 1e6


def _proxy_cpu_us(door: Door, via: dict[str, Any], direct: dict[str, Any], window: dict[str, float]) -> float | None:
    if not door.embedded:
        return _per_call_us(window.get(door.process), via["calls"])
    during_via = _per_call_us(via["cpu_s"].get(door.process), via["calls"])
    during_direct = _per_call_us(direct["cpu_s"].get(door.process), direct["calls"])
    return None if during_via is None or during_direct is None else during_via - during_direct


def _f(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def table(result: dict[str, Any]) -> str:
    """The proxies section: direct, then each proxy's p50, what it adds (and its spread), p99 and CPU."""
    d = result["direct"]
    lines = [
        "## Proxies (ours → proxy → ours, C=1, interleaved with direct)",
        "",
        "| way in | layer | calls | p50 µs | adds to p50 µs | spread µs | p99 µs | proxy CPU µs/call |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
        (
            f"| direct (interleaved with every row below) | – | {d['calls']:,} | {_f(d['p50_us'])} | – | – "
            f"| {_f(d['p99_us'])} | – |"
        ),
    ]
    for p in result["proxies"]:
        r, spread = p["row"], p["adds_p50_spread_us"]
        lines.append(
            f"| {p['label']} | {p['layer']} | {r['calls']:,} | {_f(r['p50_us'])} | {_f(p['adds_p50_us'])} "
            f"| {'–' if spread is None else f'{spread[0]:,.0f} … {spread[1]:,.0f}'} | {_f(r['p99_us'])} "
            f"| {_f(p['proxy_cpu_us'])} |"
        )
    if result["note"]:
        lines += ["", result["note"]]
    return "\n".join(lines)


def added(result: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    """The row of door ``name``, or None when it was not measured."""
    if result is None:
        return None
    return next((p for p in result["proxies"] if p["name"] == name), None)
