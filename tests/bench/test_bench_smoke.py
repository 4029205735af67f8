"""Smoke run of the benchmark: ``python -m bench --quick`` works end to end. No speed assertions."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import sizes, streams, turns
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
    assert {t["verdict"] for t in raw["targets"]} <= {"PASS", "MISS", "n/a"}
    assert_streaming_and_size_rows(table, raw)


def assert_streaming_and_size_rows(table: str, raw: dict[str, object]) -> None:
    """Every installed framework X has its X → X row for each streaming workload and each quick size; the
    missing ones are named; every row moved what it asked for; the new targets are in the targets table."""
    same, missing = turns.framework_pairs(cross=False)
    assert "## Streaming (100-byte messages)" in table and "## Message size (unary Echo)" in table
    for client, server in same:
        name = pair_name(client, server)
        for label in ("server-streaming", "client-streaming"):
            assert f"| {label} | {name} | 1 |" in table
        assert f"| bidi ping-pong | {name} | {streams.PING_PONG_STREAMS} |" in table
        for size in sizes.QUICK_SIZES:
            assert f"| {sizes.label(size)} | {name} | {sizes.CONCURRENCY} |" in table
    if missing:
        assert f"Not installed, no rows: {', '.join(missing)}." in table
    for section, workloads in (("streams", {"download", "upload", "pingpong"}), ("sizes", {"echo"})):
        rows = raw[section]["rows"]  # type: ignore[index]
        assert len(rows) == len(same) * (3 if section == "streams" else len(sizes.QUICK_SIZES))
        for row in rows:
            assert row["workload"] in workloads and row["errors"] == 0 and row["messages"] > 0
            assert row["bytes"] == row["messages"] * row["size"]
            if row["workload"] == "download":
                assert row["messages"] == row["calls"] * streams.QUICK_MESSAGES
    names = {t["name"] for t in raw["targets"]}  # type: ignore[union-attr]
    assert {
        "server-streaming messages/s vs grpclib",
        "server-streaming messages/s vs grpc-js",
        "bidi ping-pong messages/s vs grpclib",
        "bidi ping-pong messages/s vs grpc-js",
        "1 MiB echo MiB/s vs grpcio",
    } <= names


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
