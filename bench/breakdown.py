"""Where a unary call's CPU goes: ours → ours at C=32 under cProfile, self time by layer, per side.

Both processes run under cProfile over the measured window only (:mod:`bench.profiling`; start-up and
warm-up are left out); each function's self time is put in one layer by where it lives:

- h2: h2, hyperframe and hpack (the HTTP/2 state machine, frames, header compression);
- ours: ``transport/`` (connections, calls, fast paths, the channel and the server);
- asyncio: the event loop, selectors and the socket calls (``send``, ``recv_into``);
- protobuf: message (de)serialization (``google.protobuf``, upb, the ``_pb2`` modules);
- handler/harness: the bench's closed loop and the Greeter's handler (``bench/``, ``app/``);
- other: the rest (a builtin such as ``len`` counts in the layer of whoever called it).

Waiting in ``epoll`` is idle time, not counted. The shares are of the profiled run, and a profiler
makes every Python call dearer, so layers made of many small calls (h2, ours) read a little larger
than they are; µs per call multiply each share by the CPU per call of the same pair measured
without a profiler (the pairs table), which is the figure to trust.
"""

from __future__ import annotations

import contextlib
import os
import pstats
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import profiling
from bench.pairs import Budget
from bench.procs import CLIENT_CORE, SERVER_CORE, child, run_json

LAYERS = ("h2", "ours", "asyncio", "protobuf", "handler/harness", "other")
#: Waiting for the socket (pstats names builtins "<method 'poll' of 'select.epoll' objects>").
_IDLE = ("'poll' of 'select.epoll'", "'select' of 'select.epoll'")


def layer(filename: str, function: str) -> str | None:
    """The layer of one profiled function (None: idle wait, not counted)."""
    where = f"{filename} {function}"
    if any(idle in where for idle in _IDLE):
        return None
    if "/h2/" in filename or "/hyperframe/" in filename or "/hpack/" in filename:
        return "h2"
    if "/transport/" in filename:
        return "ours"
    if "protobuf" in where or "_upb" in where or "_pb2" in filename:
        return "protobuf"
    if "/asyncio/" in filename or "selectors" in filename or "/socket.py" in filename:
        return "asyncio"
    if filename == "~" and any(f"'{name}'" in function for name in ("send", "recv_into", "recv", "sendmsg")):
        return "asyncio"
    if "/bench/" in filename or "/app/" in filename:
        return "handler/harness"
    return "other"


def shares(profile: Path) -> dict[str, float]:
    """Self seconds per layer in one dumped profile.

    A builtin (``len``, ``dict.get``, ``isinstance``, …) is counted in the layers of its callers,
    in proportion to the time it spent for each: ``len`` called by h2 is h2's cost.
    """
    stats: Any = pstats.Stats(str(profile)).stats  # {(file, line, name): (cc, nc, tottime, cumtime, callers)}
    seconds = dict.fromkeys(LAYERS, 0.0)
    for (filename, _, function), (_, _, tottime, _, callers) in stats.items():
        name = layer(filename, function)
        if name is None:
            continue
        if name == "other" and filename == "~" and callers:
            spent = {caller: timing[3] for caller, timing in callers.items()}
            total = sum(spent.values())
            if total > 0:
                for (caller_file, _, caller_function), t in spent.items():
                    owner = layer(caller_file, caller_function) or "other"
                    seconds[owner] += tottime * t / total
                continue
        seconds[name] += tottime
    return seconds


@contextlib.contextmanager
def _profiling(out: Path) -> Iterator[None]:
    """Set :data:`bench.profiling.ENV` for the children started in this block."""
    before = os.environ.get(profiling.ENV)
    os.environ[profiling.ENV] = str(out)
    try:
        yield
    finally:
        if before is None:
            del os.environ[profiling.ENV]
        else:
            os.environ[profiling.ENV] = before


def measure(budget: Budget, log: Any = print) -> dict[str, Any]:
    """Profile ours → ours at C=32 over one measured window; self seconds per layer on each side."""
    log("  breakdown: ours → ours at C=32 under cProfile ...")
    with tempfile.TemporaryDirectory(prefix="rpcviz-bench-prof-") as tmp:
        out = Path(tmp) / "window.prof"
        with _profiling(out), child("bench.servers", ["ours"], SERVER_CORE) as server:
            args = ["ours", "--port", str(server.port), "--concurrency", "32", "--server-pid", str(server.pid)]
            row = run_json("bench.clients", args + budget.client_args(), CLIENT_CORE, budget.timeout)
            server_out = out.with_name(out.name + ".server")
            deadline = time.monotonic() + 10
            while not server_out.exists() and time.monotonic() < deadline:  # SIGUSR2 was sent: it is writing
                time.sleep(0.05)
        return {"calls": row["calls"], "client": shares(out), "server": shares(server_out)}


def table(result: dict[str, Any], cpu_per_call: dict[str, float | None]) -> str:
    """Per layer and side: share of the profiled self time and µs per call (scaled to the unprofiled CPU)."""
    lines = [
        "| layer | client share | client µs/call | server share | server µs/call |",
        "|---|--:|--:|--:|--:|",
    ]
    totals = {side: sum(result[side].values()) or 1.0 for side in ("client", "server")}
    for name in LAYERS:
        cells = [name]
        for side in ("client", "server"):
            share = result[side][name] / totals[side]
            cpu = cpu_per_call.get(side)
            cells += [f"{share:.0%}", f"{share * cpu:.1f}" if cpu is not None else "–"]
        lines.append("| " + " | ".join(cells) + " |")
    cells = ["total"]
    for side in ("client", "server"):
        cpu = cpu_per_call.get(side)
        cells += ["100%", f"{cpu:.1f}" if cpu is not None else "–"]
    lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
