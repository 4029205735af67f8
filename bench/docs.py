"""Write a run's tables where people read them: ``bench/RESULTS.md`` whole, and the README's benchmark block.

The README holds the block between two marker comments; everything outside them is left alone.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from bench.procs import ROOT

RESULTS = ROOT / "bench" / "RESULTS.md"
README = ROOT / "README.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"

METHOD = (
    "Each row: {duration} s of calls after a warm-up, taken in {rounds} turns that alternate with the other pairs "
    "(all servers stay up), so the shared machine's slow moments fall on every pair alike; server and client "
    "pinned to separate cores. The proxies table comes from one client giving a direct channel and one channel per "
    "proxy turns of 10 calls, in a rotating order. Expect ±10–20 % between runs on this shared 2-core machine."
)


def write(
    command: str, tables: str, duration: float, rounds: int, results: Path = RESULTS, readme: Path = README
) -> None:
    """Replace ``results`` and the block in ``readme`` with this run's ``tables``."""
    today = datetime.date.today().isoformat()
    made = f"Made with `{command}` on {today}. " + METHOD.format(duration=duration, rounds=rounds)
    text = readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"bench: {readme} has no {START} … {END} block to update")
    results.write_text(f"# Latest benchmark\n\n{made}\n\n{tables.strip()}\n")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    nested = tables.strip().replace("## ", "### ")  # the README's block sits under its own "## Benchmark"
    readme.write_text(f"{head}{START}\n{made}\n\n{nested}\n{END}{tail}")
