"""``python -m bench [--calls N] [--duration S] [--quick] [--json FILE] [--write-docs]``: run everything, print the tables.

While it runs, it measures the machine's outside load (bench/machine.py); ``--write-docs`` refuses to write
the README/RESULTS tables (exit 3) when that was above ``--max-outside-load``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from bench import app_cost, breakdown, docs, floor, machine, many_conns, pairs, proxy_cost, report, sizes, streams
from bench.procs import CLIENT_CORE, pinning_available, run_json


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--calls", type=int, help="calls per measurement at most (default 1,000,000; quick 300)")
    parser.add_argument("--duration", type=float, help="seconds per measurement at most (default 3; quick 0.5)")
    parser.add_argument("--rounds", type=int, help="turns each pair takes, sharing its duration (default 5; quick 1)")
    parser.add_argument("--quick", action="store_true", help="smoke mode: a few hundred calls per pair")
    parser.add_argument("--json", type=Path, help="also write every raw result here")
    parser.add_argument(
        "--write-docs", action="store_true", help="also write the tables to bench/RESULTS.md and the README"
    )
    parser.add_argument(
        "--max-outside-load",
        type=float,
        default=machine.MAX_OUTSIDE_LOAD,
        help=f"--write-docs refuses above this many cores busy with others' work (default {machine.MAX_OUTSIDE_LOAD})",
    )
    return parser.parse_args(argv)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def write_docs(
    tables: str,
    duration: float,
    rounds: int,
    load: machine.Load | None,
    threshold: float,
    results: Path = docs.RESULTS,
    readme: Path = docs.README,
) -> int:
    """``--write-docs``: write the tables, unless the machine was busy with other work (then say so: 3)."""
    refused = machine.refusal(load, threshold)
    if refused:
        log(refused)
        return 3
    docs.write("python -m bench --write-docs", tables, duration, rounds, results=results, readme=readme)
    log(f"bench: wrote {results.name} and the README's benchmark block")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quick = args.quick
    if args.rounds is not None and args.rounds < 1:
        log(f"bench: --rounds must be at least 1, not {args.rounds}")
        return 2
    budget = pairs.Budget(
        calls=args.calls or (300 if quick else 1_000_000),
        duration=args.duration or (0.5 if quick else 3.0),
        warmup=50 if quick else 500,
    )
    started = time.monotonic()
    log(f"bench: {budget}, pinning {'on (taskset)' if pinning_available() else 'off'}")
    sampler = machine.Sampler().start()
    try:
        sampler.section("h2 ceiling")
        log("h2 ceiling ...")
        ceiling = run_json("bench.h2_ceiling", ["--calls", str(2000 if quick else 20_000)], CLIENT_CORE, 120)
        sampler.section("pairs")
        log("pairs ...")
        rounds = args.rounds or (1 if quick else 5)
        with floor.Floor(budget, rounds, log) as echo_floor:  # the floor's turns among the pairs'
            rows, skipped = pairs.run_pairs(budget, rounds=rounds, log=log, each_round=echo_floor.turn)
        echo = echo_floor.result()
        sampler.section("streaming")
        log("streaming ...")
        streaming = streams.measure(budget, log, quick=quick, rounds=rounds)
        sampler.section("message sizes")
        log("message sizes ...")
        sized = sizes.measure(budget, log, quick=quick, rounds=rounds)
        sampler.section("proxies")
        log("proxies ...")
        proxy = proxy_cost.measure(budget, log=log)
        sampler.section("many connections")
        log("many connections ...")
        many = many_conns.measure(budget, log=log, quick=quick)
        sampler.section("breakdown")
        log("breakdown ...")
        layers = breakdown.measure(budget, log=log)
        sampler.section("app")
        log("app ...")
        app = app_cost.measure(budget, log=log, quick=quick)
    finally:
        load = sampler.stop()
    sections = sampler.section_loads()
    threshold = args.max_outside_load

    items = report.targets(rows, ceiling, proxy, echo, many) + report.stream_targets(streaming, sized)
    cpu = platform.processor() or platform.machine()
    print(
        f"# rpcviz bench — Python {platform.python_version()}, {os.cpu_count()} cores ({cpu}), "
        f"server core 0 / client core 1: {'pinned' if pinning_available() else 'not pinned'}, "
        f"{budget.calls:,} calls or {budget.duration} s per row in {rounds} turn{'s' if rounds > 1 else ''}"
        f"{' (quick)' if quick else ''}\n"
    )
    tables = report.table(rows, ceiling, echo)
    if skipped:
        tables += f"\n\nSkipped: {'; '.join(skipped)}"
    ours32 = next((r for r in rows if r["pair"] == pairs.pair_name("ours", "ours") and r["concurrency"] == 32), {})
    tables += "\n\n## Where a call's CPU goes (ours → ours, C=32, cProfile self time by layer)\n\n" + breakdown.table(
        layers, {"client": ours32.get("client_cpu_us"), "server": ours32.get("server_cpu_us")}
    )
    tables += "\n\n" + streams.table(streaming) + "\n\n" + sizes.table(sized)
    tables += "\n\n" + proxy_cost.table(proxy)
    tables += "\n\n" + floor.table(echo)
    tables += "\n\n" + app_cost.table(app)
    tables += "\n\n" + many_conns.table(many)
    tables += "\n\n" + report.targets_section(items)
    tables += "\n\n" + machine.load_line(load, threshold, sections)
    print(tables)
    status = write_docs(tables, budget.duration, rounds, load, threshold) if args.write_docs and not quick else 0
    if args.write_docs and quick:
        log("bench: --write-docs ignored for a --quick run")
    log(f"bench: done in {time.monotonic() - started:.1f} s")
    if args.json:
        raw: dict[str, Any] = {
            "budget": dataclasses.asdict(budget),
            "quick": quick,
            "ceiling": ceiling,
            "pairs": rows,
            "skipped": skipped,
            "proxy": proxy,
            "breakdown": layers,
            "streams": streaming,
            "sizes": sized,
            "floor": echo,
            "many_conns": many,
            "app": app,
            "machine": {
                "threshold": threshold,
                "load": None if load is None else dataclasses.asdict(load) | {"outside": load.outside},
                "sections": {name: dataclasses.asdict(s) | {"outside": s.outside} for name, s in sections.items()},
            },
            "targets": [dataclasses.asdict(t) | {"verdict": t.verdict} for t in items],
        }
        args.json.write_text(json.dumps(raw, indent=2))
    return status


if __name__ == "__main__":
    sys.exit(main())
