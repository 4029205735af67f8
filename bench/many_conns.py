"""Many connections: 1,000 channels at 2 calls/s each against one server of each framework.

What it costs a server to hold many mostly idle connections: its CPU at a modest total rate spread over
them (every call on a different connection, none batched), p99, and its memory per connection, idle
(after the handshakes, no call) and busy (under the load). The load is our client
(:mod:`bench.many_conns_client`, two processes sharing the channels in a full run) on the client core;
each server runs alone on the server core, started fresh; this process reads the server's RSS and CPU
from /proc between the steps. A full run takes 1,000 connections for 10 s per server, one after the
other; ``--quick`` takes 100 for 1 s, every server at once (the smoke run checks the plumbing, not the
figures).
"""

from __future__ import annotations

import contextlib
import json
import resource
import select
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NoReturn

from bench import pairs, servers
from bench.pairs import Budget
from bench.procs import CLIENT_CORE, ROOT, SERVER_CORE, _env, child, proc_cpu_seconds, python_module

#: Server kinds measured, ours first; ``grpcjs`` where this checkout's bench has it and node is there.
KINDS = ("ours", "grpclib", "grpcio", "grpcjs")
RATE = 2.0
#: Seconds between two samples of the server's RSS under the load.
RSS_SAMPLE_INTERVAL = 0.25
#: Seconds from GO to the load's start: every load process has read it by then.
START_DELAY = 0.2


@dataclass(frozen=True, slots=True)
class Shape:
    connections: int
    duration: float
    #: Seconds without calls before each RSS reading (the server finishes the handshakes).
    idle: float
    #: Load processes sharing the connections (one cannot keep 2,000 calls/s on a shared core).
    clients: int
    #: All servers measured at once (quick) or one after the other.
    parallel: bool


FULL = Shape(connections=1000, duration=10.0, idle=1.0, clients=2, parallel=False)
QUICK = Shape(connections=100, duration=1.0, idle=0.25, clients=1, parallel=True)


def raise_fd_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit in this process, which the servers (its children) inherit:
    1,000 sockets do not fit a 1,024 soft limit once a server keeps a reserve (ours keeps 64)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a server kind may be a wrapper around another program, e.g. node)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += children.get(p, [])
    return tree


def rss_bytes(pid: int) -> int | None:
    """VmRSS of process ``pid`` and its descendants from /proc, or None without /proc."""
    total = 0
    for p in process_tree(pid):
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            if p == pid:
                return None
            continue
        total += next((int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return total


def cpu_seconds(pid: int) -> float | None:
    """CPU time of process ``pid`` and its descendants, or None without /proc."""
    times = [proc_cpu_seconds(p) for p in process_tree(pid)]
    return None if times[0] is None else sum(t for t in times if t is not None)


def run_wait_seconds(pid: int) -> float | None:
    """Seconds the threads of ``pid`` and its descendants were ready to run but waited for a core
    (/proc schedstat), or None. On a shared machine this says how much of the window others took."""
    total = 0
    for p in process_tree(pid):
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            if p == pid:
                return None
    return total / 1e9


def unavailable(kind: str) -> str | None:
    """Why ``kind`` cannot run here (a few words), or None."""
    if kind not in servers.KINDS:
        return f"{kind} (no `python -m bench.servers {kind}` in this checkout)"
    try:
        ok = pairs.available(kind)
    except KeyError:
        return f"{kind} (bench.pairs does not know it)"
    return None if ok else f"{kind} (not installed)"


class LoadProcess:
    """One :mod:`bench.many_conns_client` process on the client core, driven line by line."""

    def __init__(self, port: int, connections: int, shape: Shape, seed: int, warmup: bool) -> None:
        args = ["--port", str(port), "--connections", str(connections), "--rate", str(RATE)]
        args += ["--duration", str(shape.duration), "--seed", str(seed), *(["--warmup"] if warmup else [])]
        self.argv = python_module("bench.many_conns_client", args, CLIENT_CORE)
        self.stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=_env(),
            cwd=ROOT,
            text=True,
        )
        assert self.proc.stdout is not None
        self.stdout: IO[str] = self.proc.stdout
        self.result: dict[str, Any] | None = None

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def expect(self, word: str, timeout: float) -> list[str]:
        """The next line, which must start with ``word``; its other words."""
        line = self._line(timeout)
        words = line.split()
        if not words or words[0] != word:
            self.fail(f"expected {word}, got {line[:200]!r}")
        return words[1:]

    def _line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.fail("exited" if ready else f"said nothing for {timeout} s")
        return line

    def read_result(self) -> None:
        self.result = json.loads(self._line(0))

    def fail(self, what: str) -> NoReturn:
        self.stderr.seek(0)
        err = self.stderr.read()[-2000:]
        self.stop()
        raise RuntimeError(f"{' '.join(self.argv)}: {what}: {err}")

    def stop(self) -> None:
        """Let it close its channels and exit (10 s), else kill it."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.stderr.close()


def percentile(sorted_values: list[int], q: float) -> float | None:
    """The q-quantile (nearest rank) of sorted values, or None for none."""
    if not sorted_values:
        return None
    return float(sorted_values[min(len(sorted_values) - 1, max(0, round(q * len(sorted_values) + 0.5) - 1))])


def run_server(kind: str, shape: Shape) -> dict[str, Any]:
    """One fresh server of ``kind`` under the load; its row."""
    with child("bench.servers", [kind], SERVER_CORE) as server, contextlib.ExitStack() as stack:
        pid = server.pid
        share = [
            shape.connections // shape.clients + (i < shape.connections % shape.clients) for i in range(shape.clients)
        ]
        loads = [LoadProcess(server.port, n, shape, seed=15 + i, warmup=i == 0) for i, n in enumerate(share)]
        for load in loads:
            stack.callback(load.stop)
        for load in loads:
            load.expect("STARTED", 30)
        time.sleep(shape.idle)
        rss_before = rss_bytes(pid)
        for load in loads:
            load.send("CONNECT")
        connect_seconds = max(float(load.expect("CONNECTED", 120)[0]) for load in loads)
        time.sleep(shape.idle)  # no calls: the server takes the last handshakes
        rss_idle = rss_bytes(pid)
        begin = time.time() + START_DELAY
        for load in loads:
            load.send(f"GO {begin:.6f}")
        time.sleep(max(0.0, begin - time.time()))
        cpu0, wait0, wall0 = cpu_seconds(pid), run_wait_seconds(pid), time.perf_counter()
        samples: list[int] = []
        waiting = {load.stdout: load for load in loads}
        deadline = time.monotonic() + shape.duration + 90  # the load processes drain for 30 s at most
        while waiting:
            if time.monotonic() > deadline:
                next(iter(waiting.values())).fail("did not finish the load")
            rss = rss_bytes(pid)
            if rss is not None and time.perf_counter() - wall0 <= shape.duration:
                samples.append(rss)
            ready, _, _ = select.select(list(waiting), [], [], RSS_SAMPLE_INTERVAL)
            for stream in ready:
                waiting.pop(stream).read_result()
        wall, cpu1, wait1 = time.perf_counter() - wall0, cpu_seconds(pid), run_wait_seconds(pid)
    results = [load.result for load in loads if load.result is not None]
    row = summarize(kind, shape, results, wall, cpu0, cpu1, rss_before, rss_idle, max(samples, default=None))
    waits = [r.get("run_wait_seconds") for r in results]
    row.update(
        connect_seconds=connect_seconds,
        server_wait_percent=None if wait0 is None or wait1 is None else (wait1 - wait0) / wall * 100,
        client_wait_percent=None if None in waits else sum(w for w in waits if w is not None) / wall * 100,
    )
    return row


def summarize(
    kind: str,
    shape: Shape,
    results: list[dict[str, Any]],
    wall: float,
    cpu0: float | None,
    cpu1: float | None,
    rss_before: int | None,
    rss_idle: int | None,
    rss_busy: int | None,
) -> dict[str, Any]:
    """One row from the load processes' results and the server's readings."""
    n = shape.connections
    done = sum(r["ok"] for r in results)
    latencies = sorted(v for r in results for v in r["latencies_us"])
    lags = sorted(v for r in results for v in r["lags_us"])
    client_cpu = sum(r["client_cpu_seconds"] for r in results)
    server_cpu = None if cpu0 is None or cpu1 is None else cpu1 - cpu0

    def per_connection(rss: int | None) -> float | None:
        return None if rss is None or rss_before is None else (rss - rss_before) / n

    return {
        "server": kind,
        "connections": n,
        "rate": RATE,
        "duration": shape.duration,
        "client_processes": len(results),
        "seconds": wall,
        "attempted": sum(r["attempted"] for r in results),
        "started": sum(r["started"] for r in results),
        "calls": done,
        "errors": sum(r["errors"] for r in results),
        "error_kinds": {k: sum(r["error_kinds"].get(k, 0) for r in results) for r in results for k in r["error_kinds"]},
        "throughput": done / wall if wall else 0.0,
        "p50_us": percentile(latencies, 0.50),
        "p99_us": percentile(latencies, 0.99),
        "lag_p99_us": percentile(lags, 0.99),
        "client_cpu_percent": client_cpu / wall * 100 if wall else None,
        "client_cpu_us": client_cpu / done * 1e6 if done else None,
        "server_cpu_percent": server_cpu / wall * 100 if wall and server_cpu is not None else None,
        "server_cpu_us": server_cpu / done * 1e6 if done and server_cpu is not None else None,
        "rss_before": rss_before,
        "rss_idle": rss_idle,
        "rss_busy": rss_busy,
        "rss_per_idle_connection": per_connection(rss_idle),
        "rss_per_busy_connection": per_connection(rss_busy),
    }


def measure(budget: Budget, log: Callable[[str], None] = print, *, quick: bool = False) -> dict[str, Any]:
    """Every available server kind under the many-connections load: a row each, and what was skipped.

    ``budget`` is not used (this measurement's size is fixed, by ``quick``); it keeps the bench's common shape.
    """
    shape = QUICK if quick else FULL
    fd_limit = raise_fd_limit()
    kinds = [k for k in KINDS if unavailable(k) is None]
    skipped = [note for k in KINDS if (note := unavailable(k)) is not None]
    what = f"{shape.connections:,} × {RATE:g} calls/s for {shape.duration:g} s"
    if shape.parallel:
        log(f"  many connections: {', '.join(kinds)} at once, {what} ...")
        with ThreadPoolExecutor(max(1, len(kinds))) as pool:
            rows = list(pool.map(lambda k: run_server(k, shape), kinds))
    else:
        rows = []
        for kind in kinds:
            log(f"  many connections: {kind}, {what} ...")
            rows.append(run_server(kind, shape))
    return {
        "connections": shape.connections,
        "rate": RATE,
        "duration": shape.duration,
        "client_processes": shape.clients,
        "rows": rows,
        "skipped": skipped,
        "fd_limit": fd_limit,
    }


def _f(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _kb(value: float | None) -> str:
    return "–" if value is None else f"{value / 1024:,.1f}"


def table(result: dict[str, Any]) -> str:
    """A markdown row per server: the calls, CPU, p99 and memory per connection; a note on how."""
    n, rate, duration = result["connections"], result["rate"], result["duration"]
    lines = [
        f"## Many connections: {n:,} channels × {rate:g} calls/s each for {duration:g} s, one server",
        "",
        (
            "| server | connections | calls due | done | errors | p99 µs | server CPU % of a core "
            "| server CPU µs/call | RSS before MB | RSS/conn idle KB | RSS/conn busy KB "
            "| client CPU % | client lag p99 µs | waited for a core % (server / client) |"
        ),
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in result["rows"]:
        before = r["rss_before"]
        lines.append(
            f"| {r['server']} | {r['connections']:,} | {r['attempted']:,} | {r['calls']:,} | {r['errors']:,} "
            f"| {_f(r['p99_us'])} | {_f(r['server_cpu_percent'], 1)} | {_f(r['server_cpu_us'])} "
            f"| {_f(None if before is None else before / 2**20, 1)} | {_kb(r['rss_per_idle_connection'])} "
            f"| {_kb(r['rss_per_busy_connection'])} | {_f(r['client_cpu_percent'], 1)} | {_f(r['lag_p99_us'])} "
            f"| {_f(r.get('server_wait_percent'))} / {_f(r.get('client_wait_percent'))} |"
        )
    processes = result["client_processes"]
    note = (
        "RSS per connection = (the server's RSS with the connections open − its RSS before) / connections, "
        "idle after the handshakes and busy the highest sampled under the load. The load is our client in "
        f"{processes} process{'es' if processes > 1 else ''} on the client core, paced open loop per channel: "
        "'calls due' were scheduled in the window, 'done' answered OK, 'client lag' is how late calls started; "
        "'waited for a core': the share of the window a process was ready to run while other processes had its core "
        "(from /proc schedstat; more than a few % and the latencies measure the machine)."
    )
    if result["skipped"]:
        note += f" Skipped: {', '.join(result['skipped'])}."
    return "\n".join(lines) + "\n\n" + note


def find(result: dict[str, Any] | None, server: str) -> dict[str, Any] | None:
    if result is None:
        return None
    return next((r for r in result["rows"] if r["server"] == server), None)
