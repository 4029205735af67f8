"""Smoke run of the benchmark: ``python -m bench --quick`` works end to end. No speed assertions."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import many_conns, nginx_proxy, sizes, streams, turns
from bench.pairs import PAIRS, available, pair_name, unavailable
from bench.proxy_cost import DOORS

ROOT = Path(__file__).resolve().parents[2]

if not (importlib.util.find_spec("grpc") or importlib.util.find_spec("grpclib")):
    pytest.importorskip("grpc", reason="the bench extra (grpcio, grpclib) is not installed")


def test_quick_bench_prints_every_pair_and_the_ceiling(tmp_path: Path) -> None:
    # Installs grpc-js's packages (or fails to, keeping the note) before the run's own time limit starts.
    grpcjs_missing = unavailable("grpcjs")
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
    assert "| ours → ours | 128 |" in table
    assert "| h2 state machine only (ceiling, in memory) |" in table
    assert "| client CPU µs/call | ×h2 | ×floor | server CPU µs/call | ×h2 | ×floor |" in table
    for concurrency in (1, 32):
        assert f"| asyncio echo floor (same bytes, one future per call) | {concurrency} |" in table
    assert "| rpcviz idle" in table and "| rpcviz under steady traffic (`t`) |" in table
    assert "\noutside load during the run: " in table and "(threshold 0.25)" in table
    assert "## Where a call's CPU goes" in table
    for layer in ("h2", "ours", "asyncio", "protobuf"):
        assert f"| {layer} | " in table
    raw_layers = json.loads(out.read_text())["breakdown"]
    assert sum(raw_layers["client"].values()) > 0 and sum(raw_layers["server"].values()) > 0
    assert "## Proxies (ours → proxy → ours, C=1, interleaved with direct)" in table
    assert "| direct (interleaved with every row below) | – |" in table
    nginx_found, _ = nginx_proxy.build()
    for door in DOORS:
        if nginx_found is not None or not door.name.startswith("nginx"):
            assert f"| {door.label} | {door.layer} |" in table
        else:
            assert f"| {door.label} |" not in table
    if nginx_found is None:
        assert "nginx rows skipped: " in table
    assert "## Targets" in table
    for name in (
        "client CPU per call vs asyncio echo floor (C=32)",
        "server CPU per call vs asyncio echo floor (C=32)",
        "client CPU per call C=128 vs C=32 (ours → ours)",
    ):
        assert f"| {name} |" in table
    raw = json.loads(out.read_text())
    assert all(row["errors"] == 0 and row["calls"] > 0 for row in raw["pairs"])
    assert all(row["errors"] == 0 and row["calls"] > 0 for row in raw["floor"]["rows"].values())
    assert raw["floor"]["request_bytes"] > 9 and raw["floor"]["response_bytes"] > 9
    assert {"idle", "traffic"} <= raw["app"].keys()
    assert raw["machine"]["load"]["seconds"] > 0
    proxies = raw["proxy"]["proxies"]
    assert all(p["row"]["errors"] == 0 and p["row"]["calls"] > 0 for p in proxies)
    assert all(p["proxy_cpu_us"] is not None for p in proxies)  # read from /proc for every proxy
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
    js_targets = {
        t["name"]: t["verdict"] for t in raw["targets"] if t["name"].startswith("C=") and "grpc-js" in t["name"]
    }
    assert set(js_targets) == {"C=32 throughput vs grpc-js", "C=1 p50 latency vs grpc-js"}
    js_pairs = [pair_name(client, server) for client, server in PAIRS if "grpcjs" in (client, server)]
    assert js_pairs == ["grpcjs → grpcjs", "grpcjs → ours", "ours → grpcjs"]
    if grpcjs_missing is None:
        assert set(js_targets.values()) <= {"PASS", "MISS"}
        for name in js_pairs:
            rows = [row for row in raw["pairs"] if row["pair"] == name]
            assert sorted(row["concurrency"] for row in rows) == [1, 32]
    else:  # skipped, saying why; its targets n/a
        assert all(f"{name} ({grpcjs_missing})" in table for name in js_pairs)
        assert set(js_targets.values()) == {"n/a"}
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
    tables = "| new | table |\n\n## Streaming\n\n| s |\n\n## Targets\n\n| t |\n\noutside load during the run: 0.1"
    docs.write("python -m bench --write-docs", tables, 3.0, 5, results=results, readme=readme)
    text = readme.read_text()
    assert text.startswith("# Title\n\nbefore\n\n") and text.endswith("\n\nafter\n")
    assert "| new | table |" in text and "old table" not in text
    assert "in 5 turns" in text
    assert "\n### Targets\n" in text  # nested under the README's own "## Benchmark"
    assert text.count("outside load during the run: 0.1") == 1
    assert "| s |" not in text and "bench/RESULTS.md" in text  # the README summarizes; RESULTS.md has it all
    whole = results.read_text()
    assert "| new | table |" in whole and "\n## Targets\n" in whole and "| s |" in whole
    if docs.ANALYSIS.exists():
        assert docs.ANALYSIS.read_text().strip().splitlines()[0] in whole

    readme.write_text("# no markers\n")
    with pytest.raises(SystemExit, match="no <!-- bench:start -->"):
        docs.write("x", "t", 1.0, 1, results=results, readme=readme)


def test_breakdown_puts_each_function_in_its_layer() -> None:
    from bench.breakdown import layer

    site = "/usr/lib/python3.11/site-packages"
    assert layer(f"{site}/h2/stream.py", "process_input") == "h2"
    assert layer(f"{site}/hyperframe/frame.py", "parse_body") == "h2"
    assert layer("/work/main/transport/http2/fast_receive.py", "data_frame") == "ours"
    assert layer("/usr/lib/python3.11/asyncio/base_events.py", "_run_once") == "asyncio"
    assert layer("~", "<method 'send' of '_socket.socket' objects>") == "asyncio"
    assert layer("~", "<method 'SerializeToString' of 'google._upb._message.Message' objects>") == "protobuf"
    assert layer("~", "<method 'poll' of 'select.epoll' objects>") is None  # idle, not counted
    assert layer("~", "<built-in method builtins.len>") == "other"  # shares() gives it to its callers


def test_write_docs_refuses_when_the_machine_was_busy(tmp_path: Path) -> None:
    """Outside load above the threshold: nothing written, exit 3; at or below it: written."""
    from bench.__main__ import write_docs
    from bench.machine import Load

    readme, results = tmp_path / "README.md", tmp_path / "RESULTS.md"
    readme.write_text("<!-- bench:start -->\nold\n<!-- bench:end -->\n")
    busy = Load(10.0, machine=1.6, own=1.0)  # 0.6 cores of someone else's work
    assert write_docs("| t |", 3.0, 5, busy, 0.25, results=results, readme=readme) == 3
    assert not results.exists() and "old" in readme.read_text()
    quiet = Load(10.0, machine=1.1, own=1.0)
    assert write_docs("| t |", 3.0, 5, quiet, 0.25, results=results, readme=readme) == 0
    assert "| t |" in results.read_text() and "old" not in readme.read_text()


def test_without_nginx_its_rows_are_one_note_and_the_l7_target_is_na(monkeypatch: pytest.MonkeyPatch) -> None:
    """No nginx on the machine: build() says so in one line, the table has our rows and that line (no
    nginx row, no traceback), and the L7 target (measured against nginx) is n/a."""
    from app.commands import nginx
    from app.commands.errors import CliError
    from bench import proxy_cost, report

    def missing(binary: str | None) -> str:
        raise CliError("nginx is not installed (Debian: apt-get install nginx-full); or use --balancer builtin")

    monkeypatch.setattr(nginx, "find_nginx", missing)
    found, note = nginx_proxy.build()
    assert found is None and note.startswith("nginx rows skipped: nginx is not installed") and "\n" not in note

    def row(p50: float, server_cpu_s: float) -> dict[str, object]:
        return {
            "calls": 100,
            "errors": 0,
            "p50_us": p50,
            "p99_us": 2 * p50,
            "segment_p50_us": [p50] * 5,
            "client_cpu_us": 50.0,
            "cpu_s": {"server": server_cpu_s, "l4_process": 0.0, "l7_process": 0.0},
        }

    ours = [d.name for d in DOORS if not d.name.startswith("nginx")]
    raw = {
        "channels": {"direct": row(300, 0.005), **{name: row(400, 0.009) for name in ours}},
        "window_cpu_s": {"server": 0.03, "l4_process": 0.002, "l7_process": 0.01},
        "rounds": 10,
        "cpu_source": "schedstat",
    }
    result = proxy_cost.summarize(raw, ours, note)
    table = proxy_cost.table(result)
    assert "| ours L7 proxy, embedded on the server's loop | L7 | 100 | 400 | 100 | 100 … 100 | 800 | 40 |" in table
    assert "| ours L7 proxy, own process | L7 | 100 | 400 | 100 | 100 … 100 | 800 | 100 |" in table
    assert "nginx stream" not in table and "nginx grpc_pass" not in table
    assert table.endswith("\n\n" + note)
    l4, l7 = report.proxy_targets(result)
    assert (l4.verdict, l4.measured) == ("PASS", 100)
    assert (l7.verdict, l7.detail) == ("n/a", note)
