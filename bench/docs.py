"""Write a run's tables where people read them: ``bench/RESULTS.md`` whole, and the README's benchmark block.

The README holds the block between two marker comments; everything outside them is left alone.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from bench.procs import ROOT

RESULTS = ROOT / "bench" / "RESULTS.md"
#: Hand-written: where the remaining µs go and what the next 2× would take (appended to RESULTS.md).
ANALYSIS = ROOT / "bench" / "ANALYSIS.md"
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
    analysis = f"\n\n{ANALYSIS.read_text().strip()}\n" if ANALYSIS.exists() else "\n"
    results.write_text(f"# Latest benchmark\n\n{made}\n\n{tables.strip()}{analysis}")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    nested = summary(tables).replace("## ", "### ")  # the README's block sits under its own "## Benchmark"
    readme.write_text(f"{head}{START}\n{made}\n\n{nested}\n{END}{tail}")


def summary(tables: str) -> str:
    """What the README shows of a run: its first table (the unary pairs), the targets and the machine's
    load; the other sections are in bench/RESULTS.md."""
    sections = tables.strip().split("\n\n## ")
    kept = [sections[0]] + ["## " + s for s in sections[1:] if s.startswith("Targets")]
    last = sections[-1].rsplit("\n\n", 1)[-1]
    if last.startswith("outside load") and not kept[-1].endswith(last):
        kept.append(last)  # (when it follows the targets, it came with them)
    more = "Streaming, message sizes, many connections, the proxies, the floor, the app and where a call's CPU goes: "
    kept.append(more + "[`bench/RESULTS.md`](bench/RESULTS.md).")
    return "\n\n".join(kept)
