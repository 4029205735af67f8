"""The ``rpcviz`` command as a user runs it: real processes, real sockets on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from app.greeter.helloworld_pb2 import HelloReply, HelloRequest

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 15.0
ADDRESS = re.compile(r"on (127\.0\.0\.1:\d+)")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def rpcviz(*args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run ``python -m app ARGS`` to completion (killed after ``timeout``)."""
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        check=False,
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Daemon:
    """A long-running ``python -m app`` process (serve, proxy), always cleaned up."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app", *args],
            cwd=ROOT,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._buffer = b""

    def read_line(self, timeout: float = TIMEOUT) -> str:
        """The next stdout line, or fail after ``timeout`` seconds."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no output line within {timeout}s")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    stderr = self.proc.stderr.read().decode() if self.proc.stderr else ""
                    raise AssertionError(f"process ended (rc={self.proc.poll()}) before a line: {stderr}")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    def address(self) -> str:
        """Parse ``host:port`` from the first line the process prints."""
        line = self.read_line()
        match = ADDRESS.search(line)
        assert match, line
        return match.group(1)

    def terminate(self, timeout: float = TIMEOUT) -> tuple[int, str, str]:
        """SIGTERM, wait, return (exit code, rest of stdout, stderr)."""
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, self._buffer.decode() + out.decode(), err.decode()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=TIMEOUT)


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    """Start daemons with ``daemons.append(Daemon(...))``; every one is killed afterwards."""
    started: list[Daemon] = []
    try:
        yield started
    finally:
        for d in started:
            d.kill()


def serve(daemons: list[Daemon], name: str) -> str:
    d = Daemon("serve", "--port", "0", "--name", name, "--grace", "1")
    daemons.append(d)
    return d.address()


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call_json(*args: str) -> dict[str, Any]:
    result = rpcviz("call", *args, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert isinstance(report, dict)
    return report


def assert_one_line_error(result: subprocess.CompletedProcess[str]) -> None:
    """A user error: non-zero exit, exactly one line on stderr, no traceback."""
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].strip(), result.stderr


# --- serve ---------------------------------------------------------------------------


def test_serve_prints_its_address_answers_and_stops_on_sigterm(daemons: list[Daemon]) -> None:
    """serve --port 0 prints its bound address; grpcio and `call` get pod-7's answers; SIGTERM -> exit 0."""
    d = Daemon("serve", "--port", "0", "--name", "pod-7", "--grace", "1")
    daemons.append(d)
    address = d.address()
    assert int(address.rsplit(":", 1)[1]) > 0

    with grpc.insecure_channel(address) as channel:
        say_hello = channel.unary_unary(
            "/helloworld.Greeter/SayHello",
            request_serializer=HelloRequest.SerializeToString,
            response_deserializer=HelloReply.FromString,
        )
        reply, call = say_hello.with_call(HelloRequest(name="Ada"), timeout=5)
    assert reply.message == "Hello, Ada!"
    assert dict(call.initial_metadata()).get("rpcviz-server") == "pod-7"

    report = call_json(address, "-n", "5")
    assert report["by_backend"] == {"pod-7": 5}
    assert report["ok"] == 5

    code, out, err = d.terminate()
    assert code == 0, err
    assert "Traceback" not in err
    assert "stopped after 6 calls" in out


# --- call ------------------------------------------------------------------------------


def test_call_json_round_robin_over_two_servers_splits_evenly(daemons: list[Daemon]) -> None:
    """call --json has every documented key; round_robin over ipv4:a,b gives 5 and 5."""
    a = serve(daemons, "pod-a")
    b = serve(daemons, "pod-b")
    report = call_json(f"ipv4:{a},{b}", "--policy", "round_robin", "-n", "10")
    assert {"target", "policy", "calls", "ok", "failed", "by_backend", "rps", "latency_ms"} <= report.keys()
    assert set(report["latency_ms"]) == {"p50", "p99"}
    assert report["target"] == f"ipv4:{a},{b}"
    assert report["policy"] == "round_robin"
    assert (report["calls"], report["ok"], report["failed"]) == (10, 10, {})
    assert report["by_backend"] == {"pod-a": 5, "pod-b": 5}
    assert report["rps"] > 0
    assert 0 < report["latency_ms"]["p50"] <= report["latency_ms"]["p99"]


def test_call_pick_first_over_two_servers_uses_one(daemons: list[Daemon]) -> None:
    """pick_first over ipv4:a,b sends all calls to the first address."""
    a = serve(daemons, "pod-a")
    b = serve(daemons, "pod-b")
    report = call_json(f"ipv4:{a},{b}", "--policy", "pick_first", "-n", "10")
    assert report["by_backend"] == {"pod-a": 10}


# --- proxy -------------------------------------------------------------------------------


def test_proxy_on_port_0_pins_pick_first_to_one_backend(daemons: list[Daemon]) -> None:
    """proxy --listen 127.0.0.1:0 prints its bound address; pick_first through it lands on one backend."""
    a = serve(daemons, "pod-a")
    b = serve(daemons, "pod-b")
    proxy = Daemon("proxy", "--listen", "127.0.0.1:0", "--backend", a, "--backend", b)
    daemons.append(proxy)
    vip = proxy.address()
    assert not vip.endswith(":0")

    report = call_json(vip, "--policy", "pick_first", "-n", "20", "--concurrency", "4")
    assert report["ok"] == 20
    assert len(report["by_backend"]) == 1, report["by_backend"]
    assert list(report["by_backend"].values()) == [20]

    code, out, err = proxy.terminate()
    assert code == 0, err
    assert "Traceback" not in err
    totals = [int(m) for m in re.findall(r": (\d+) connections", out)]
    assert sorted(totals) == [0, 1], out


# --- demo ----------------------------------------------------------------------------------


def _demo(*args: str) -> dict[str, Any]:
    result = rpcviz("demo", *args, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"policy", "calls", "ok", "failed", "pods"} <= report.keys()
    assert len(report["pods"]) == 4
    for pod in report["pods"]:
        assert {"name", "connections", "calls", "share", "load"} <= pod.keys()
    assert isinstance(report, dict)
    return report


def test_demo_pick_first_pins_one_pod() -> None:
    """demo --policy pick_first: one pod gets all 40 calls (share 1.0), three get none."""
    report = _demo("--policy", "pick_first", "-n", "40", "--seed", "1")
    assert (report["policy"], report["calls"], report["ok"], report["failed"]) == ("pick_first", 40, 40, {})
    pods = sorted(report["pods"], key=lambda p: p["calls"])
    assert [p["calls"] for p in pods] == [0, 0, 0, 40]
    assert [p["share"] for p in pods] == [0.0, 0.0, 0.0, 1.0]


def test_demo_round_robin_spreads_evenly() -> None:
    """demo --policy round_robin: each of the four pods gets 10 ±1 of 40 calls."""
    report = _demo("--policy", "round_robin", "-n", "40")
    assert (report["policy"], report["calls"], report["ok"]) == ("round_robin", 40, 40)
    calls = [p["calls"] for p in report["pods"]]
    assert sum(calls) == 40
    assert all(9 <= n <= 11 for n in calls), calls
    assert all(p["share"] == pytest.approx(p["calls"] / 40) for p in report["pods"])


# --- bad input: one line on stderr, non-zero exit ---------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["call", "127.0.0.1:1", "--policy", "bogus"], id="call-unknown-policy"),
        pytest.param(["demo", "--policy", "bogus"], id="demo-unknown-policy"),
        pytest.param(["call", "bad target!", "-n", "1"], id="unparsable-target"),
        pytest.param(["call", "127.0.0.1:1", "-n", "0"], id="call-n-0"),
        pytest.param(["demo", "-n", "0"], id="demo-n-0"),
        pytest.param(["proxy", "--backend", "nonsense"], id="proxy-bad-backend"),
        pytest.param(["proxy", "--listen", "127.0.0.1:0", "--backend", "127.0.0.1:99999"], id="proxy-backend-port"),
        pytest.param(["serve", "--port", "70000"], id="serve-port-out-of-range"),
    ],
)
def test_bad_input_is_one_line_on_stderr(args: list[str]) -> None:
    """Every user error is one stderr line and a non-zero exit status, never a traceback."""
    assert_one_line_error(rpcviz(*args))


def test_serve_port_in_use_is_one_line() -> None:
    """serve on a port another socket holds: one readable line, non-zero exit."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = rpcviz("serve", "--port", str(port))
    assert_one_line_error(result)
    assert "address already in use" in result.stderr


def test_proxy_listen_port_in_use_is_one_line() -> None:
    """proxy --listen on a taken port: one readable line, non-zero exit."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = rpcviz("proxy", "--listen", f"127.0.0.1:{port}", "--backend", "127.0.0.1:1")
    assert_one_line_error(result)
    assert "address already in use" in result.stderr


def test_call_with_nothing_listening_is_one_line() -> None:
    """call to a closed port: 'cannot reach' in one line, non-zero exit, quickly."""
    result = rpcviz("call", f"127.0.0.1:{closed_port()}", "-n", "1", "--timeout", "3")
    assert_one_line_error(result)
    assert "cannot reach" in result.stderr


# --- issue 10 #15: the checkout stays clean ----------------------------------------------------


def test_no_egg_info_is_tracked_in_git() -> None:
    """`pip install -e .` writes rpcviz.egg-info/; it is ignored and must not be tracked."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=TIMEOUT)
    tracked = [path for path in listed.stdout.splitlines() if ".egg-info/" in path or path.endswith(".egg-info")]
    assert tracked == [], f"{len(tracked)} egg-info files tracked: {tracked[:3]}"
