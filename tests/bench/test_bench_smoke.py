"""Smoke run of the benchmark: ``python -m bench --quick`` works end to end. No speed assertions."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import many_conns
from bench.pairs import PAIRS, available, pair_name

ROOT = Path(__file__).resolve().parents[2]

if not (importlib.util.find_spec("grpc") or importlib.util.find_spec("grpclib")):
    pytest.importorskip("grpc", reason="the bench extra (grpcio, grpclib) is not installed")


def test_quick_bench_prints_every_pair_and_the_ceiling(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    table = done.stdout
    for client, server in PAIRS:
        name = pair_name(client, server)
        if available(client) and available(server):
            for concurrency in (1, 32):
                assert f"| {name} | {concurrency} |" in table
        else:
            assert name in table  # listed as skipped
    assert "| h2 state machine only (ceiling, in memory) |" in table
    assert "| ours → L4 proxy (embedded) → ours | 1 |" in table
    assert "| ours → L4 proxy (own process) → ours | 1 |" in table
    assert "## Targets" in table
    raw = json.loads(out.read_text())
    assert all(row["errors"] == 0 and row["calls"] > 0 for row in raw["pairs"])
    assert "## Many connections: 100 channels" in table
    measured = [kind for kind in many_conns.KINDS if many_conns.unavailable(kind) is None]
    assert "ours" in measured
    for kind in measured:
        assert f"| {kind} | 100 |" in table
    for kind in set(many_conns.KINDS) - set(measured):
        assert "Skipped: " in table and f"{kind} (" in table  # named, with why
    rows = raw["many_conns"]["rows"]
    assert [r["server"] for r in rows] == measured
    assert all(r["errors"] == 0 and r["calls"] > 0 and r["rss_per_idle_connection"] is not None for r in rows)
    assert "| RSS per idle connection, ours (100 × 2 calls/s) |" in table
    assert {t["verdict"] for t in raw["targets"]} <= {"PASS", "MISS", "n/a"}


def test_write_docs_replaces_only_the_marked_block(tmp_path: Path) -> None:
    """The README keeps everything outside its markers; RESULTS.md gets the whole run; no markers → a clear error."""
    from bench import docs

    readme, results = tmp_path / "README.md", tmp_path / "RESULTS.md"
    readme.write_text(f"# Title\n\nbefore\n\n{docs.START}\nold table\n{docs.END}\n\nafter\n")
    tables = "| new | table |\n\n## Targets\n\n| t |"
    docs.write("python -m bench --write-docs", tables, 3.0, 5, results=results, readme=readme)
    text = readme.read_text()
    assert text.startswith("# Title\n\nbefore\n\n") and text.endswith("\n\nafter\n")
    assert "| new | table |" in text and "old table" not in text
    assert "in 5 turns" in text
    assert "\n### Targets\n" in text  # nested under the README's own "## Benchmark"
    assert "| new | table |" in results.read_text() and "\n## Targets\n" in results.read_text()

    readme.write_text("# no markers\n")
    with pytest.raises(SystemExit, match="no <!-- bench:start -->"):
        docs.write("x", "t", 1.0, 1, results=results, readme=readme)
