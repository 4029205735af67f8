"""The app's own cost: CPU of ``rpcviz`` (the Textual app on its embedded cluster) idle and under steady
traffic, and the frames it draws per second.

``python -m bench.app_cost --idle S --traffic S`` runs :class:`app.ui.RpcvizApp` in this process with
Textual's test harness (``run_test``, keys pressed through its Pilot) on :class:`NullTerminal`: a
terminal that is not there, so no tty is needed, yet (unlike Textual's headless driver, whose
``App._display`` returns before rendering) every screen update is rendered to escape sequences as
for a real terminal and then dropped. A *frame* is one such update written out: Textual's
``App._display`` writes a compositor update and then calls the driver's ``flush()`` once, and only
then, so :class:`NullTerminal` counts ``flush()`` calls. Windows, each after a settle:

- idle: the cluster up, no traffic, once the app's sampling timer has paused;
- traffic: after the ``t`` key (40 users greeting back to back, as in the app);
- cluster alone: the same embedded cluster and traffic without the UI, so that what the UI adds
  reads as the difference.

CPU is this process's (all of it: the app, the pods, the proxy and the client share one event loop),
as % of one core; the parent runs it pinned to the client core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from bench.pairs import Budget
from bench.procs import CLIENT_CORE, run_json

#: The terminal the app draws on, columns × rows (a large laptop terminal; the app's wide layout starts at 200).
SIZE = (160, 48)
#: Seconds per window in a full run and in ``--quick``.
FULL_WINDOW, QUICK_WINDOW = 3.0, 0.25
#: Seconds the users run before the traffic window (they start staggered over one think time).
RAMP, QUICK_RAMP = 0.5, 0.2
#: The longest wait for the app's sampling timer to pause before the idle window (it pauses after 1 s unchanged).
SETTLE_TIMEOUT = 5.0


def _null_terminal() -> type[Any]:
    from textual.drivers.headless_driver import HeadlessDriver

    class NullTerminal(HeadlessDriver):
        """Textual's headless driver, except that the app renders for it as for a terminal; counts frames."""

        frames = 0
        written = 0

        @property
        def is_headless(self) -> bool:
            return False

        def write(self, data: str) -> None:
            self.written += len(data)

        def flush(self) -> None:
            self.frames += 1

    return NullTerminal


class Window:
    """CPU, wall time and frames over one stretch of the run."""

    def __init__(self, frames: Callable[[], tuple[int, int]], calls: Callable[[], int]) -> None:
        self._frames, self._calls = frames, calls
        self._cpu0, self._wall0 = time.process_time(), time.perf_counter()
        self._frames0, self._written0 = frames()
        self._calls0 = calls()

    def result(self) -> dict[str, float]:
        wall, cpu = time.perf_counter() - self._wall0, time.process_time() - self._cpu0
        frames, written = self._frames()
        return {
            "seconds": wall,
            "cpu_percent": 100 * cpu / wall,
            "frames_per_s": (frames - self._frames0) / wall,
            "kib_written_per_s": (written - self._written0) / 1024 / wall,
            "calls_per_s": (self._calls() - self._calls0) / wall,
        }


async def _wait(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def _press_t(app: Any, steady: bool) -> None:
    """The ``t`` key through Textual's bindings (without the Pilot's waits for the screen to settle)."""
    app.simulate_key("t")
    if not await _wait(lambda: app.cluster.traffic.steady is steady, 10.0):
        raise RuntimeError(f"the t key did not turn the steady traffic {'on' if steady else 'off'}")


async def measure_app(
    idle: float, traffic: float, settle: float = SETTLE_TIMEOUT, ramp: float = RAMP, alone: bool = True
) -> dict[str, Any]:
    from app.ui import STEADY_THINK_TIME, STEADY_USERS, RpcvizApp

    app = RpcvizApp()
    app.driver_class = _null_terminal()
    out: dict[str, Any] = {"size": list(SIZE), "users": STEADY_USERS, "think_time": STEADY_THINK_TIME}
    async with app.run_test(headless=False, size=SIZE):
        driver = app._driver
        await app.cluster.wait_ready()

        def frames() -> tuple[int, int]:
            return driver.frames, driver.written  # type: ignore[union-attr]

        def calls() -> int:
            stats = app.cluster.traffic.stats
            return stats.ok + stats.failed_total

        out["settled"] = await _wait(lambda: not app.sampling, settle)
        window = Window(frames, calls)
        await asyncio.sleep(idle)
        out["idle"] = window.result()
        await _press_t(app, True)
        await asyncio.sleep(ramp)
        window = Window(frames, calls)
        await asyncio.sleep(traffic)
        out["traffic"] = window.result()
        await _press_t(app, False)
    out["cluster_alone"] = await _measure_cluster_alone(traffic, ramp) if alone else None
    return out


async def _measure_cluster_alone(traffic: float, ramp: float) -> dict[str, float]:
    """The app's embedded cluster (its configuration) and steady users, without the UI."""
    from app.cluster import Cluster, ClusterConfig
    from app.scene import SCENE_SEED
    from app.ui import MIN_RERESOLUTION_INTERVAL, STEADY_THINK_TIME, STEADY_USERS

    config = ClusterConfig(seed=SCENE_SEED, min_reresolution_interval=MIN_RERESOLUTION_INTERVAL)
    cluster = Cluster(config)
    await cluster.start("pick_first")
    try:
        await cluster.wait_ready()
        cluster.traffic.start_users(STEADY_USERS, STEADY_THINK_TIME)
        await asyncio.sleep(ramp)
        stats = cluster.traffic.stats
        window = Window(lambda: (0, 0), lambda: stats.ok + stats.failed_total)
        await asyncio.sleep(traffic)
        result = window.result()
        cluster.traffic.stop_steady()
    finally:
        await cluster.stop(grace=0.3)
    return result


def measure(budget: Budget, log: Any = print, quick: bool = False) -> dict[str, Any] | None:
    """Run the app in a child process pinned to the client core; None (with a note) if textual is missing."""
    import importlib.util

    if importlib.util.find_spec("textual") is None:
        log("  app: skipped (textual is not installed)")
        return None
    window = QUICK_WINDOW if quick else FULL_WINDOW
    alone = "" if quick else ", then the cluster alone"
    log(f"  app: idle {window} s, then {window} s under steady traffic{alone} ...")
    args = ["--idle", str(window), "--traffic", str(window)]
    if quick:  # the rows, not the figures: no wait for the sampler to pause, a short ramp, no cluster alone
        args += ["--settle", "0", "--ramp", str(QUICK_RAMP), "--no-alone"]
    return run_json("bench.app_cost", args, CLIENT_CORE, 60 + 3 * window)


def _pct(value: float) -> str:
    return f"{value:.1f} %"


def table(result: dict[str, Any] | None) -> str:
    """The app's rows: CPU % of one core and frames/s, idle, under traffic, and the cluster without the UI."""
    if result is None:
        return "## The app\n\nSkipped (textual is not installed)."
    idle, busy, alone = result["idle"], result["traffic"], result["cluster_alone"]
    cols, rows = result["size"]
    idle_label = "rpcviz idle" if result["settled"] else "rpcviz idle (its sampler still running)"
    rows_ = [
        (idle_label, _pct(idle["cpu_percent"]), f"{idle['frames_per_s']:.1f}", f"{idle['kib_written_per_s']:.1f}", "–"),
        (
            "rpcviz under steady traffic (`t`)",
            _pct(busy["cpu_percent"]),
            f"{busy['frames_per_s']:.1f}",
            f"{busy['kib_written_per_s']:.1f}",
            f"{busy['calls_per_s']:.0f}",
        ),
        (
            "the same cluster and traffic, no UI",
            "–" if alone is None else _pct(alone["cpu_percent"]),
            "–",
            "–",
            "–" if alone is None else f"{alone['calls_per_s']:.0f}",
        ),
        (
            "what the UI adds under traffic",
            "–" if alone is None else _pct(busy["cpu_percent"] - alone["cpu_percent"]),
            "–",
            "–",
            "–",
        ),
    ]
    intro = (
        f"`rpcviz` on its embedded cluster in a {cols}×{rows} terminal (rendered as for a real one, the output "
        f"dropped); traffic = the `t` key ({result['users']} users, {result['think_time'] * 1000:.0f} ms think "
        "time). CPU of the whole process (the UI, pods, proxy and client share one event loop), % of one core; "
        "a frame is one screen update Textual writes to the terminal."
    )
    lines = ["## The app", "", intro, "", "| app run | CPU % of a core | frames/s | KiB written/s | calls/s |"]
    lines.append("|---|--:|--:|--:|--:|")
    lines += ["| " + " | ".join(row) + " |" for row in rows_]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idle", type=float, default=FULL_WINDOW, help="seconds measured idle")
    parser.add_argument("--traffic", type=float, default=FULL_WINDOW, help="seconds measured under traffic")
    parser.add_argument("--settle", type=float, default=SETTLE_TIMEOUT, help="wait this long at most for idle")
    parser.add_argument("--ramp", type=float, default=RAMP, help="seconds of traffic before its window")
    parser.add_argument("--no-alone", action="store_true", help="skip the cluster-without-UI window")
    args = parser.parse_args(argv)
    result = asyncio.run(measure_app(args.idle, args.traffic, args.settle, args.ramp, not args.no_alone))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
