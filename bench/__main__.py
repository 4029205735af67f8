"""``python -m bench [--calls N] [--duration S] [--quick] [--json FILE]``: run everything, print the table."""

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

from bench import docs, pairs, proxy_cost, report, sizes, streams
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
    return parser.parse_args(argv)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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

    log("h2 ceiling ...")
    ceiling = run_json("bench.h2_ceiling", ["--calls", str(2000 if quick else 20_000)], CLIENT_CORE, 120)
    log("pairs ...")
    rounds = args.rounds or (1 if quick else 5)
    rows, skipped = pairs.run_pairs(budget, rounds=rounds, log=log)
    log("L4 proxy ...")
    proxy = proxy_cost.measure(budget, log=log)
    log("streaming ...")
    streaming = streams.measure(budget, log, quick=quick, rounds=rounds)
    log("message sizes ...")
    sized = sizes.measure(budget, log, quick=quick, rounds=rounds)

    items = report.targets(rows, ceiling, proxy) + report.stream_targets(streaming, sized)
    cpu = platform.processor() or platform.machine()
    print(
        f"# rpcviz bench — Python {platform.python_version()}, {os.cpu_count()} cores ({cpu}), "
        f"server core 0 / client core 1: {'pinned' if pinning_available() else 'not pinned'}, "
        f"{budget.calls:,} calls or {budget.duration} s per row in {rounds} turn{'s' if rounds > 1 else ''}"
        f"{' (quick)' if quick else ''}\n"
    )
    tables = report.table(rows, ceiling, proxy)
    if skipped:
        tables += f"\n\nSkipped (framework not installed): {', '.join(skipped)}"
    tables += "\n\n" + streams.table(streaming) + "\n\n" + sizes.table(sized)
    tables += "\n\n" + report.targets_section(items)
    print(tables)
    if args.write_docs:
        if quick:
            log("bench: --write-docs ignored for a --quick run")
        else:
            docs.write("python -m bench --write-docs", tables, budget.duration, rounds)
            log(f"bench: wrote {docs.RESULTS.relative_to(docs.README.parent)} and the README's benchmark block")
    log(f"bench: done in {time.monotonic() - started:.1f} s")
    if args.json:
        raw: dict[str, Any] = {
            "budget": dataclasses.asdict(budget),
            "quick": quick,
            "ceiling": ceiling,
            "pairs": rows,
            "skipped": skipped,
            "proxy": proxy,
            "streams": streaming,
            "sizes": sized,
            "targets": [dataclasses.asdict(t) | {"verdict": t.verdict} for t in items],
        }
        args.json.write_text(json.dumps(raw, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
