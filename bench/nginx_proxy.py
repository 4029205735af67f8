"""nginx in front of one backend for the proxy rows: ``stream`` (L4) or ``grpc_pass`` (L7), one worker.

The config is ``rpcviz cluster up``'s (``app.commands.nginx``): daemon off, one worker, pid, lock, logs and
temp paths in a temp directory of its own. Two directives are added for a benchmark: a client connection and
an upstream connection serve any number of requests (nginx's default closes each after 1,000, which would put
a reconnect into the measured calls).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from app.commands import nginx
from app.commands.errors import CliError
from bench.procs import taskset_prefix
from transport import Address

#: The directives a benchmark adds, each after the line of the cluster's config it belongs under.
_UNLIMITED = (
    ("    access_log off;\n", "    keepalive_requests 1000000;\n"),
    ("        keepalive 16;\n", "        keepalive_requests 1000000;\n"),
)
STARTUP_TIMEOUT = 10.0


def build() -> tuple[nginx.NginxBuild | None, str]:
    """This machine's nginx, or None and a one-line note saying why the nginx rows are skipped."""
    try:
        binary = nginx.find_nginx(None)
        done = subprocess.run([binary, "-V"], capture_output=True, text=True, timeout=10, check=False)
        found = nginx.parse_build(binary, done.stdout + done.stderr)
    except (CliError, OSError, subprocess.TimeoutExpired) as exc:
        return None, f"nginx rows skipped: {exc}"
    missing = [name for name, ok in (("stream", found.stream is not None), ("http_v2", found.http2)) if not ok]
    if missing:
        return None, f"nginx rows skipped: {binary} {found.version_text} lacks {' and '.join(missing)}"
    return found, ""


def bench_config(found: nginx.NginxBuild, l7: bool, listen: Address, backend: Address, prefix: Path) -> str:
    """The cluster's config for one backend, with connections that never retire (see the module doc)."""
    text = nginx.config(found, l7, listen, [backend], "round_robin", 0.5, prefix)
    if l7:
        for anchor, added in _UNLIMITED:
            if anchor not in text:
                raise RuntimeError(f"bench: app.commands.nginx.config no longer has {anchor.strip()!r}")
            text = text.replace(anchor, anchor + added, 1)
    return text


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _children(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (nginx's workers), from /proc."""
    try:
        return [int(word) for word in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pass
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text()
                if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


@dataclass(frozen=True, slots=True)
class Running:
    port: int
    master: int
    worker: int


def _accepting(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def running(found: nginx.NginxBuild, l7: bool, backend: int, core: int | None) -> Iterator[Running]:
    """nginx (pinned to ``core`` when possible) proxying 127.0.0.1:``backend`` for the block; always stopped."""
    with tempfile.TemporaryDirectory(prefix="rpcviz-bench-nginx-") as tmp:
        prefix = Path(tmp)
        listen = Address("127.0.0.1", _free_port())
        (prefix / "nginx.conf").write_text(bench_config(found, l7, listen, Address("127.0.0.1", backend), prefix))
        argv = [*(taskset_prefix(core) if core is not None else []), *nginx.command(found, prefix)]
        proc = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True, text=True
        )
        try:
            yield _wait_ready(proc, listen.port)
        finally:
            _stop(proc)


def _wait_ready(proc: subprocess.Popen[str], port: int) -> Running:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        workers = _children(proc.pid)
        if workers and _accepting(port):
            return Running(port, proc.pid, workers[0])
        time.sleep(0.02)
    _stop(proc)
    err = proc.stderr.read() if proc.stderr else ""
    raise RuntimeError(f"nginx did not start on port {port}: {err.strip()[-500:]}")


def _stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM (nginx's fast shutdown), SIGKILL after 5 s, then its process group (a worker left behind)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.stderr is not None:
        proc.stderr.close()
