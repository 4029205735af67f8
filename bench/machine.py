"""Was the machine quiet? Outside load during the run, from /proc: machine CPU busy minus the bench's own.

A background thread samples, every :data:`SAMPLE_INTERVAL` seconds, the machine's busy CPU time
(``/proc/stat``) and the CPU time of the bench's own processes: this process, every live descendant
(``/proc/PID/stat``, found by parent pid), and every descendant already gone (the kernel adds a reaped
child's total, with its own reaped children's, to its parent's ``cutime``/``cstime``). Outside load is
the difference, in cores busy on average. The busy time counts user, nice, system and steal (a host
running other guests slows us as much as a neighbour process does), not irq/softirq: the kernel may
account our own loopback traffic's softirq work there rather than to our processes.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

#: Outside load (cores busy on average over the run with work not the bench's) above which
#: ``--write-docs`` refuses to write the README/RESULTS tables: a quarter of a core taken by someone
#: else moves per-call CPU and throughput by more than the ±10 % the tables are read at.
MAX_OUTSIDE_LOAD = 0.25
#: Seconds between samples (the figure is cumulative: this only sets how finely sections are told apart).
SAMPLE_INTERVAL = 0.25

PROC = Path("/proc")
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def machine_busy_ticks(proc: Path = PROC) -> int | None:
    """user + nice + system + steal of every CPU, in clock ticks, or None without /proc/stat."""
    try:
        with open(proc / "stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    values = [int(v) for v in fields[1:]]
    user, nice, system = values[0], values[1], values[2]
    steal = values[7] if len(values) > 7 else 0
    return user + nice + system + steal


def _read_stat(pid: int, proc: Path) -> tuple[int, int] | None:
    """(ppid, utime + stime + cutime + cstime) of ``pid``, or None if it is gone."""
    try:
        with open(proc / str(pid) / "stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); ppid is field 4, utime..cstime fields 14-17.
    return int(fields[1]), int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])


def _children_files(proc: Path) -> bool:
    """The kernel lists each thread's children in /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN)."""
    pid = os.getpid()
    return (proc / str(pid) / "task" / str(pid) / "children").exists()


def _children(pid: int, proc: Path) -> list[int]:
    """The live children of ``pid``, from every one of its threads' ``children`` list."""
    task = proc / str(pid) / "task"
    try:
        threads = os.listdir(task)
    except OSError:
        return []
    out: list[int] = []
    for tid in threads:
        try:
            with open(task / tid / "children") as f:
                out += [int(word) for word in f.read().split()]
        except OSError:
            continue
    return out


def _tree_by_scan(root: int, proc: Path) -> list[int] | None:
    """``root`` and its descendants found by reading every process's parent pid (slower: all of /proc)."""
    parents: dict[int, list[int]] = {}
    try:
        entries = os.listdir(proc)
    except OSError:
        return None
    for name in entries:
        if name.isdigit():
            stat = _read_stat(int(name), proc)
            if stat is not None:
                parents.setdefault(stat[0], []).append(int(name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += parents.get(pid, [])
    return tree


def own_ticks(root: int | None = None, proc: Path = PROC) -> int | None:
    """CPU ticks of ``root`` (default: this process) and all its descendants, live or reaped; None if
    ``root`` is not there."""
    root = os.getpid() if root is None else root
    if _read_stat(root, proc) is None:
        return None
    if _children_files(proc):
        tree, todo = [], [root]
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo += _children(pid, proc)
    else:
        tree = _tree_by_scan(root, proc) or [root]
    total = 0
    for pid in tree:
        stat = _read_stat(pid, proc)
        total += stat[1] if stat is not None else 0
    return total


@dataclass(frozen=True, slots=True)
class Sample:
    at: float
    machine: int
    own: int


@dataclass(frozen=True, slots=True)
class Load:
    """CPU over a stretch of time, in cores busy on average."""

    seconds: float
    machine: float
    own: float

    @property
    def outside(self) -> float:
        """Cores busy with work that is not the bench's (never below 0: ticks are coarse)."""
        return max(0.0, self.machine - self.own)

    @staticmethod
    def between(a: Sample, b: Sample) -> Load:
        seconds = b.at - a.at
        if seconds <= 0:
            return Load(0.0, 0.0, 0.0)
        return Load(seconds, (b.machine - a.machine) / _CLK_TCK / seconds, (b.own - a.own) / _CLK_TCK / seconds)


@dataclass(slots=True)
class Sampler:
    """Samples machine and own CPU in a background thread between :meth:`start` and :meth:`stop`.

    :meth:`section` marks where a part of the run begins, so the load can be told per part.
    """

    root: int | None = None
    interval: float = SAMPLE_INTERVAL
    proc: Path = PROC
    samples: list[Sample] = field(default_factory=list)
    sections: list[tuple[str, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def available(self) -> bool:
        return machine_busy_ticks(self.proc) is not None and own_ticks(self.root, self.proc) is not None

    def sample(self) -> Sample | None:
        machine, own = machine_busy_ticks(self.proc), own_ticks(self.root, self.proc)
        if machine is None or own is None:
            return None
        s = Sample(time.monotonic(), machine, own)
        with self._lock:
            self.samples.append(s)
        return s

    def start(self) -> Sampler:
        self.sample()
        self._thread = threading.Thread(target=self._run, name="bench-machine-sampler", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> Load | None:
        """Stop sampling (after one last sample); the load over the whole time sampled."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self.sample()
        return self.load()

    def section(self, name: str) -> None:
        """The part of the run called ``name`` starts now (and the one before ends)."""
        self.sample()
        with self._lock:
            self.sections.append((name, len(self.samples) - 1))

    def load(self) -> Load | None:
        with self._lock:
            samples = list(self.samples)
        if len(samples) < 2:
            return None
        return Load.between(samples[0], samples[-1])

    def section_loads(self) -> dict[str, Load]:
        """The load during each :meth:`section` (a name used twice: its last stretch)."""
        with self._lock:
            samples, sections = list(self.samples), list(self.sections)
        out: dict[str, Load] = {}
        for i, (name, start) in enumerate(sections):
            end = sections[i + 1][1] if i + 1 < len(sections) else len(samples) - 1
            if end > start:
                out[name] = Load.between(samples[start], samples[end])
        return out


@contextlib.contextmanager
def sampling(root: int | None = None, interval: float = SAMPLE_INTERVAL) -> Iterator[Sampler]:
    """A started :class:`Sampler` for the block, always stopped."""
    sampler = Sampler(root=root, interval=interval).start()
    try:
        yield sampler
    finally:
        sampler.stop()


def load_line(load: Load | None, threshold: float, sections: dict[str, Load] | None = None) -> str:
    """The tables' last line: ``outside load during the run: X cores (threshold Y)``, and where it was highest."""
    if load is None:
        return f"outside load during the run: not measured (no /proc) (threshold {threshold:.2f})"
    line = (
        f"outside load during the run: {load.outside:.2f} cores (threshold {threshold:.2f}); the machine "
        f"{load.machine:.2f} cores busy on average over {load.seconds:.0f} s, the bench's own processes {load.own:.2f}"
    )
    if sections:
        name, worst = max(sections.items(), key=lambda item: item[1].outside)
        line += f"; highest during {name}: {worst.outside:.2f}"
    return line


def refusal(load: Load | None, threshold: float) -> str | None:
    """Why the docs must not be written from this run (one line naming the figure), or None if they may
    (also when there was no /proc to measure it: nothing says the machine was busy)."""
    if load is None or load.outside <= threshold:
        return None
    return (
        f"bench: not writing the README/RESULTS tables: outside load during the run was {load.outside:.2f} cores, "
        f"above the threshold of {threshold:.2f} (--max-outside-load); rerun on a quieter machine"
    )
