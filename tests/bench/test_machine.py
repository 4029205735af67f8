"""bench/machine.py: outside load seen for real, with real busy-loop processes, and the bench's own not counted.

A busy loop spins until it has used ``BUSY_CPU`` seconds of CPU (or ``BUSY_WALL`` seconds passed, on a
machine too busy to give it that), prints the CPU it used and exits: every process is bounded in time,
and the assertions compare CPU seconds the kernel accounted, never speed. Other work on this shared
machine only adds to the outside load, so "at least the busy loop's CPU" holds however busy it is.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import machine
from bench.machine import MAX_OUTSIDE_LOAD, Load, Sampler, own_ticks, refusal

if not Path("/proc/stat").exists():
    pytest.skip("needs Linux /proc", allow_module_level=True)

BUSY_CPU = 0.6
BUSY_WALL = 5.0
#: CPU ticks are 10 ms per process and sample: the figures agree within a few of them.
SLACK = 0.1
BUSY = (
    "import sys, time\n"
    f"end = time.monotonic() + {BUSY_WALL}\n"
    f"while time.process_time() < {BUSY_CPU} and time.monotonic() < end: pass\n"
    "print(time.process_time(), flush=True)\n"
)
#: Starts the busy loop in a new session and exits at once: the loop's parent is gone, so it is
#: nobody's child here (the kernel hands it to init), i.e. not one of "our" processes.
DETACH = (
    "import subprocess, sys\n"
    "out = open(sys.argv[1], 'w')\n"
    f"p = subprocess.Popen([sys.executable, '-c', {BUSY!r}], stdout=out, start_new_session=True)\n"
    "print(p.pid, flush=True)\n"
)
#: Runs the busy loop as its own child and waits for it: our grandchild, reaped by our child.
NESTED = f"import subprocess, sys\nsys.stdout.write(subprocess.run([sys.executable, '-c', {BUSY!r}], capture_output=True, text=True).stdout)\n"
#: Spins like BUSY, prints, then stays alive (sleeping) until killed: live when the sampler stops.
LINGER = BUSY + "time.sleep(60)\n"


def _wait_file(path: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else ""
        if text.endswith("\n"):
            return text
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {path}")


def test_a_busy_process_that_is_not_ours_is_outside_load(tmp_path: Path) -> None:
    out = tmp_path / "busy.txt"
    sampler = Sampler(interval=0.05).start()
    pid = None
    try:
        launcher = subprocess.run(
            [sys.executable, "-c", DETACH, str(out)], capture_output=True, text=True, timeout=30, check=True
        )
        pid = int(launcher.stdout)
        busy_cpu = float(_wait_file(out, BUSY_WALL + 10))
    finally:
        load = sampler.stop()
        if pid is not None:  # it has printed and is exiting; never leave it behind
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert load is not None
    outside, own = load.outside * load.seconds, load.own * load.seconds
    assert busy_cpu > BUSY_CPU / 2, f"the busy loop got only {busy_cpu:.2f} s of CPU"
    assert outside >= busy_cpu - SLACK, f"outside {outside:.2f} CPU-s, the busy loop alone {busy_cpu:.2f}"
    assert own < 0.75 * busy_cpu, f"own {own:.2f} CPU-s: the detached loop ({busy_cpu:.2f}) was counted as ours"
    # and --write-docs refuses on this figure, naming it
    why = refusal(load, MAX_OUTSIDE_LOAD)
    assert load.outside > MAX_OUTSIDE_LOAD and why is not None
    assert f"outside load during the run was {load.outside:.2f} cores" in why


def test_the_bench_s_own_children_are_not_outside_load_gone_or_alive() -> None:
    sampler = Sampler(interval=0.05).start()
    lingering = None
    try:
        # a grandchild, reaped by our child, which we reap: counted "at exit" through cutime
        nested = subprocess.run([sys.executable, "-c", NESTED], capture_output=True, text=True, timeout=30, check=True)
        gone_cpu = float(nested.stdout)
        # a child still alive when sampling stops: counted from its /proc/PID/stat
        lingering = subprocess.Popen([sys.executable, "-c", LINGER], stdout=subprocess.PIPE, text=True)
        assert lingering.stdout is not None
        alive_cpu = float(lingering.stdout.readline())
        load = sampler.stop()
    finally:
        sampler.stop()
        if lingering is not None:
            lingering.kill()
            lingering.wait(5)
            if lingering.stdout is not None:
                lingering.stdout.close()
    assert load is not None
    own = load.own * load.seconds
    assert own >= gone_cpu + alive_cpu - SLACK, f"own {own:.2f} CPU-s < children's {gone_cpu:.2f} + {alive_cpu:.2f}"


def test_both_ways_of_finding_our_processes_find_a_live_child(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel's children lists, and the slower scan of every parent pid where the kernel has none."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        by_scan = machine._tree_by_scan(os.getpid(), machine.PROC) or []
        assert sleeper.pid in by_scan
        assert machine._children_files(machine.PROC)  # this machine lists children: both paths run
        assert sleeper.pid in machine._children(os.getpid(), machine.PROC)
        walked = own_ticks()
        monkeypatch.setattr(machine, "_children_files", lambda proc: False)
        scanned = own_ticks()
        assert walked is not None and scanned is not None and abs(scanned - walked) <= 2  # ticks apart
    finally:
        sleeper.kill()
        sleeper.wait(5)
    assert own_ticks(root=2**22 + 12345) is None  # no such process (pid_max is at most 2**22): nothing to count


def test_refusal_needs_a_figure_above_the_threshold() -> None:
    assert refusal(None, MAX_OUTSIDE_LOAD) is None  # not measured: not refused
    assert refusal(Load(10.0, machine=1.2, own=1.0), 0.25) is None  # 0.2 outside
    why = refusal(Load(10.0, machine=1.6, own=1.0), 0.25)
    assert why is not None and "0.60 cores" in why and "0.25" in why
