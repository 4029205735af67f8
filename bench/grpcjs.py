"""grpc-js (Node's ``@grpc/grpc-js``) as a bench peer: its packages installed once into a cache, its JS exec'd.

``bench/grpcjs/`` holds a grpc-js server and client written for the bench and a ``package-lock.json``
pinning their packages. :func:`available` installs them with ``npm ci`` into
``$XDG_CACHE_HOME/rpcviz-bench/grpcjs-<hash of the lock>`` (``~/.cache`` by default) the first time,
within :data:`INSTALL_TIMEOUT`; :func:`note` says in one line why grpc-js is unavailable (no node,
npm failed). ``python -m bench.servers grpcjs`` and ``python -m bench.clients grpcjs`` call
:func:`exec_node`, which replaces the Python process with node (so the pid the bench pins and reads
CPU from is node's).
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NoReturn

from bench.procs import ROOT

JS_DIR = ROOT / "bench" / "grpcjs"
LOCK = JS_DIR / "package-lock.json"
#: The whole ``npm ci`` at most (a first install fetches ≈ 2 MB).
INSTALL_TIMEOUT = 180.0
#: A failed install is not retried for this long (its note is kept beside the cache), so that the
#: bench's processes and a test run do not each wait for npm again.
FAILURE_TTL = 600.0
#: What a finished install leaves, written last.
_MARKER = ".installed"


def cache_dir() -> Path:
    """Where this lock's node_modules live: one directory per package-lock content."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()[:16]
    return base / "rpcviz-bench" / f"grpcjs-{digest}"


def _failure_file(cache: Path) -> Path:
    return cache.with_name(cache.name + ".failed")


def _first_line(text: str) -> str:
    """npm's first error line (past any warnings), cut short."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "err" in line.lower()]
    return (errors or lines or ["no output"])[0][:200]


def _npm_ci(npm: str, cache: Path) -> str | None:
    """Install the lock into ``cache`` (built beside it, then renamed): None, or why it failed."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=cache.name + ".", dir=cache.parent))
    try:
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(JS_DIR / name, work / name)
        argv = [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--fetch-retries=1", "--loglevel=error"]
        try:
            done = subprocess.run(argv, cwd=work, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            return f"npm ci timed out after {INSTALL_TIMEOUT:.0f} s"
        except OSError as exc:
            return f"npm could not run: {exc}"
        if done.returncode != 0:
            return f"npm ci failed: {_first_line(done.stderr or done.stdout)}"
        (work / _MARKER).write_text("ok\n")
        try:
            work.rename(cache)
        except OSError:  # another process finished first: use its install
            if not (cache / _MARKER).exists():
                raise
        return None
    finally:
        shutil.rmtree(work, ignore_errors=True)


@functools.cache
def note() -> str | None:
    """None when grpc-js is ready to run; else one line saying why not (installing it first if needed)."""
    if shutil.which("node") is None:
        return "no node on PATH"
    cache = cache_dir()
    if (cache / _MARKER).exists():
        return None
    failed = _failure_file(cache)
    try:
        if time.time() - failed.stat().st_mtime < FAILURE_TTL:
            return failed.read_text().strip()
    except OSError:
        pass
    npm = shutil.which("npm")
    reason = "no npm on PATH" if npm is None else _npm_ci(npm, cache)
    if reason is None:
        failed.unlink(missing_ok=True)
        return None
    failed.parent.mkdir(parents=True, exist_ok=True)
    failed.write_text(reason + "\n")
    return reason


def available() -> bool:
    """node exists and the pinned packages are installed (installing them now if they are not)."""
    return note() is None


def node_argv(script: str, args: list[str]) -> list[str]:
    """The argv running ``bench/grpcjs/<script> args`` under node."""
    node = shutil.which("node")
    if node is None:
        raise SystemExit("grpcjs: no node on PATH")
    return [node, str(JS_DIR / script), *args]


def node_env() -> dict[str, str]:
    """This environment with the cached node_modules on NODE_PATH."""
    env = dict(os.environ)
    modules = str(cache_dir() / "node_modules")
    env["NODE_PATH"] = os.pathsep.join(filter(None, [modules, env.get("NODE_PATH", "")]))
    return env


def exec_node(script: str, args: list[str]) -> NoReturn:
    """Replace this process with ``node bench/grpcjs/<script> args``; exit with the note if grpc-js is missing."""
    reason = note()
    if reason is not None:
        raise SystemExit(f"grpcjs: {reason}")
    argv = node_argv(script, args)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(argv[0], argv, node_env())
