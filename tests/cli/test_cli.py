"""The ``rpcviz`` command as a user runs it: real processes, real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any, Self

import grpc
import pytest

from app.cli import build_parser
from app.commands import demo as demo_command
from app.commands import serve as serve_command
from app.commands.version import version
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
    assert set(report["latency_ms"]) == {"p50", "p90", "p99"}
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


def _demo(*args: str, pods: int = 4) -> dict[str, Any]:
    result = rpcviz("demo", *args, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"policy", "calls", "ok", "failed", "pods"} <= report.keys()
    assert len(report["pods"]) == pods
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


def test_demo_l7_balancer_spreads_one_client_connection() -> None:
    """demo --balancer l7 -n 400: one client connection opened, each pod 100 ± 1, with the new fields."""
    report = _demo("--balancer", "l7", "-n", "400", "--seed", "1")
    assert (report["balancer"], report["ok"], report["failed"]) == ("l7", 400, {})
    assert report["client_connections_opened"] == 1
    assert report["goaways"] == 0
    assert all(99 <= p["calls"] <= 101 for p in report["pods"]), report["pods"]
    for pod in report["pods"]:
        assert 0 < pod["p50_ms"] <= pod["p99_ms"]
    assert 0 < report["p50_ms"] <= report["p99_ms"]


def test_demo_steady_rate_with_max_connection_age_rotates() -> None:
    """demo --rate 200 -n 400 --max-connection-age 0.5: GOAWAYs for age, reconnects, no failed call."""
    report = _demo("--rate", "200", "-n", "400", "--max-connection-age", "0.5", "--seed", "1")
    assert (report["calls"], report["ok"], report["failed"]) == (400, 400, {})
    assert report["goaways"] >= 2, report
    assert report["client_connections_opened"] >= 3, report


def test_demo_slow_pod_is_reported() -> None:
    """demo --slow-pod 2: pod 2 carries slow_factor 10 (the default) and its median is its service time."""
    report = _demo("--policy", "round_robin", "--slow-pod", "2", "-n", "40")
    assert [p["slow_factor"] for p in report["pods"]] == [1.0, 10.0, 1.0, 1.0]
    assert report["pods"][1]["p50_ms"] >= 200.0  # 20 ms x 10


def test_demo_scale_to_6_after_200_pick_first_gives_new_pods_nothing() -> None:
    """demo --scale-to 6 --scale-after 200 (pick_first through the L4 VIP): six pods reported, the new
    pods 5 and 6 get 0 calls and no connection (the client's one connection stays pinned); one resolution."""
    report = _demo("--scale-to", "6", "--scale-after", "200", "-n", "600", "--rate", "200", "--seed", "1", pods=6)
    assert (report["calls"], report["ok"], report["failed"]) == (600, 600, {})
    assert [p["name"] for p in report["pods"]] == [f"pod #{i}" for i in range(1, 7)]
    assert [(p["calls"], p["connections"]) for p in report["pods"][4:]] == [(0, 0), (0, 0)], report["pods"]
    assert report["resolutions"] == 1
    assert report["client_connections_opened"] == 1


def test_demo_scale_to_6_round_robin_with_max_age_uses_new_pods() -> None:
    """demo --policy round_robin --max-connection-age 1 --min-reresolution-interval 0.5 --scale-to 6: GOAWAYs
    make the channel re-resolve, so pods 5 and 6 get calls and connections; nothing fails."""
    report = _demo(
        "--policy", "round_robin", "--max-connection-age", "1", "--min-reresolution-interval", "0.5",
        "--scale-to", "6", "--scale-after", "200", "-n", "600", "--rate", "200", "--seed", "1", pods=6,
    )  # fmt: skip
    assert (report["ok"], report["failed"]) == (600, {})
    assert all(p["calls"] > 0 for p in report["pods"][4:]), report["pods"]
    assert report["resolutions"] >= 2, report


# --- bad input: one line on stderr, non-zero exit ---------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["call", "127.0.0.1:1", "--policy", "bogus"], id="call-unknown-policy"),
        pytest.param(["demo", "--policy", "bogus"], id="demo-unknown-policy"),
        pytest.param(["call", "bad target!", "-n", "1"], id="unparsable-target"),
        pytest.param(["call", "127.0.0.1:1", "-n", "0"], id="call-n-0"),
        pytest.param(["demo", "-n", "0"], id="demo-n-0"),
        pytest.param(["demo", "--balancer", "l5"], id="demo-unknown-balancer"),
        pytest.param(["demo", "--max-connection-age", "0"], id="demo-age-0"),
        pytest.param(["demo", "--max-connection-age", "soon"], id="demo-age-not-a-number"),
        pytest.param(["demo", "--slow-pod", "9"], id="demo-slow-pod-out-of-range"),
        pytest.param(["demo", "--slow-pod", "2", "--slow-factor", "0.5"], id="demo-slow-factor-below-1"),
        pytest.param(["demo", "--slow-factor", "3"], id="demo-slow-factor-without-pod"),
        pytest.param(["demo", "--rate", "0"], id="demo-rate-0"),
        pytest.param(["demo", "--rate", "inf"], id="demo-rate-inf"),
        pytest.param(["demo", "--scale-to", "9"], id="demo-scale-to-over-8"),
        pytest.param(["demo", "--scale-to", "4"], id="demo-scale-to-not-up"),
        pytest.param(["demo", "--scale-after", "10"], id="demo-scale-after-without-scale-to"),
        pytest.param(["demo", "--scale-to", "6", "--scale-after", "101"], id="demo-scale-after-over-n"),
        pytest.param(["demo", "--min-reresolution-interval", "-1"], id="demo-reresolution-negative"),
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


# --- issue 10 #14: what a new user runs into ---------------------------------------------------

#: A name that is not UTF-8: on POSIX its argv bytes arrive surrogate-escaped (os.fsdecode).
NOT_UTF8 = os.fsdecode(b"p\xffd")


def test_call_with_a_name_that_is_not_utf8_is_one_line(daemons: list[Daemon]) -> None:
    """call --name <bytes that are not UTF-8> against a live server: one line, exit 2 (was a UnicodeEncodeError
    traceback from protobuf)."""
    address = serve(daemons, "pod-u")
    result = rpcviz("call", address, "-n", "1", "--name", NOT_UTF8)
    assert_one_line_error(result)
    assert result.returncode == 2
    assert "--name" in result.stderr and "not valid UTF-8" in result.stderr, result.stderr


@pytest.mark.parametrize("name", [NOT_UTF8, "pöd"], ids=["not-utf8", "not-ascii"])
def test_serve_with_a_name_that_is_not_ascii_is_one_line(name: str) -> None:
    """serve --name must be printable ASCII (it goes out as the rpcviz-server metadata value): one line saying
    so, exit 2 (was a UnicodeEncodeError traceback)."""
    result = rpcviz("serve", "--port", "0", "--name", name)
    assert_one_line_error(result)
    assert result.returncode == 2
    assert "printable ASCII" in result.stderr and "metadata" in result.stderr, result.stderr


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["serve", "--port", "0", "--grace", "-1"], id="serve-grace-negative"),
        pytest.param(["serve", "--port", "0", "--grace", "nan"], id="serve-grace-nan"),
        pytest.param(["serve", "--port", "0", "--grace", "soon"], id="serve-grace-not-a-number"),
        pytest.param(["serve", "--port", "0", "--max-connection-idle", "0"], id="serve-idle-0"),
        pytest.param(["serve", "--port", "0", "--max-connection-age", "-1"], id="serve-age-negative"),
        pytest.param(["serve", "--port", "0", "--max-connection-age", "inf"], id="serve-age-inf"),
        pytest.param(
            ["serve", "--port", "0", "--max-connection-age", "1", "--max-connection-age-grace", "0"], id="serve-grace-0"
        ),
        pytest.param(["serve", "--port", "0", "--max-connection-age-grace", "1"], id="serve-age-grace-without-age"),
        pytest.param(["serve", "--port", "0", "--max-connections", "0"], id="serve-max-connections-0"),
        pytest.param(["serve", "--port", "0", "--max-connections", "1.5"], id="serve-max-connections-fraction"),
        pytest.param(["call", "127.0.0.1:1", "--timeout", "0"], id="call-timeout-0"),
        pytest.param(["call", "127.0.0.1:1", "--timeout", "-2"], id="call-timeout-negative"),
        pytest.param(["call", "127.0.0.1:1", "--timeout", "nan"], id="call-timeout-nan"),
        pytest.param(["call", "127.0.0.1:1", "--concurrency", "0"], id="call-concurrency-0"),
        pytest.param(["call", "127.0.0.1:1", "-n", "-5"], id="call-n-negative"),
        pytest.param(["demo", "-n", "-1"], id="demo-n-negative"),
    ],
)
def test_numbers_out_of_range_are_one_line_errors(args: list[str]) -> None:
    """Every duration and count is checked: negative, zero where it must be positive, NaN, inf -> one line naming
    the flag, exit 2 (`serve --grace -1` used to start a server)."""
    result = rpcviz(*args, timeout=10)
    assert_one_line_error(result)
    assert result.returncode == 2, result.stderr
    flag = next(a for a in reversed(args) if a.startswith("-") and not a[1:].replace(".", "").isdigit())
    assert flag in result.stderr, result.stderr


def test_serve_help_lists_the_connection_flags() -> None:
    """serve --help shows gRFC A9's flags and that they are off by default."""
    result = rpcviz("serve", "--help")
    assert result.returncode == 0, result.stderr
    for flag in ("--max-connection-idle S", "--max-connection-age S", "--max-connection-age-grace S"):
        assert flag in result.stdout, result.stdout
    assert "--max-connections N" in result.stdout
    assert "off by default" in result.stdout


def test_serve_connection_flags_reach_the_server_options() -> None:
    """The flags become the ServerOptions `serve` builds its Server with; absent, they stay off (None)."""
    args = build_parser().parse_args(
        ["serve", "--max-connection-idle", "30", "--max-connection-age", "0.5"]
        + ["--max-connection-age-grace", "2", "--max-connections", "64"]
    )
    options = serve_command.options(args)
    assert (options.max_connection_idle, options.max_connection_age) == (30.0, 0.5)
    assert (options.max_connection_age_grace, options.max_connections) == (2.0, 64)
    off = serve_command.options(build_parser().parse_args(["serve"]))
    assert (off.max_connection_idle, off.max_connection_age, off.max_connection_age_grace) == (None, None, None)
    assert off.max_connections is None


def test_serve_prints_the_connection_flags_it_runs_with(daemons: list[Daemon]) -> None:
    """serve with the flags starts, says which it applies on its second line, and serves."""
    d = Daemon("serve", "--port", "0", "--name", "pod-k", "--max-connection-age", "30", "--max-connections", "8")
    daemons.append(d)
    address = d.address()
    assert d.read_line() == "pod-k: max-connection-age 30s, max-connections 8"
    assert call_json(address, "-n", "2")["ok"] == 2


def test_serve_max_connection_age_replaces_a_grpcio_connection(daemons: list[Daemon]) -> None:
    """serve --max-connection-age 0.5: a grpcio channel that made a call sees its connection sent away (the
    channel leaves READY) within 3 s, and its next call succeeds on a new connection."""
    d = Daemon("serve", "--port", "0", "--name", "pod-a9", "--max-connection-age", "0.5")
    daemons.append(d)
    address = d.address()
    d.read_line()  # the flags line
    left_ready = threading.Event()
    seen: list[grpc.ChannelConnectivity] = []

    def on_state(state: grpc.ChannelConnectivity) -> None:
        seen.append(state)
        if grpc.ChannelConnectivity.READY in seen and state is not grpc.ChannelConnectivity.READY:
            left_ready.set()

    with grpc.insecure_channel(address) as channel:
        say_hello = channel.unary_unary(
            "/helloworld.Greeter/SayHello",
            request_serializer=HelloRequest.SerializeToString,
            response_deserializer=HelloReply.FromString,
        )
        assert say_hello(HelloRequest(name="Ada"), timeout=5).message == "Hello, Ada!"
        channel.subscribe(on_state)
        try:
            assert left_ready.wait(3.0), f"connection still READY 3 s after a 0.5 s max age: {seen}"
            assert say_hello(HelloRequest(name="Ada"), timeout=5).message == "Hello, Ada!"
        finally:
            channel.unsubscribe(on_state)


def test_serve_ends_with_a_sentence_not_a_dict(daemons: list[Daemon]) -> None:
    """After SIGTERM serve's last line is `pod-h: stopped after 2 calls (OK 2)`, not `{'OK': 2}`."""
    d = Daemon("serve", "--port", "0", "--name", "pod-h", "--grace", "1")
    daemons.append(d)
    address = d.address()
    assert call_json(address, "-n", "2")["ok"] == 2
    code, out, err = d.terminate()
    assert code == 0, err
    assert out.splitlines()[-1] == "pod-h: stopped after 2 calls (OK 2)", out


def _wait_for(condition: Any, timeout: float = TIMEOUT, what: str = "condition") -> None:
    """Poll ``condition()`` every 10 ms; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


class HoldingGreeter:
    """A grpcio Greeter in this process: answers the first ``answer`` calls, holds the rest until released."""

    def __init__(self, answer: int) -> None:
        self.answer = answer
        self.calls = 0
        self.held = 0
        self.release = threading.Event()
        self._lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        handler = grpc.unary_unary_rpc_method_handler(
            self._say_hello,
            request_deserializer=HelloRequest.FromString,
            response_serializer=HelloReply.SerializeToString,
        )
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("helloworld.Greeter", {"SayHello": handler}),)
        )
        self.address = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"

    def _say_hello(self, request: HelloRequest, context: grpc.ServicerContext) -> HelloReply:
        with self._lock:
            self.calls += 1
            hold = self.calls > self.answer
            self.held += hold
        context.send_initial_metadata((("rpcviz-server", "grpcio-1"),))
        if hold:
            self.release.wait(TIMEOUT)
        return HelloReply(message=f"Hello, {request.name}!")


@pytest.fixture
def holding_greeter() -> Iterator[HoldingGreeter]:
    greeter = HoldingGreeter(answer=50)
    greeter.server.start()
    try:
        yield greeter
    finally:
        greeter.release.set()
        greeter.server.stop(0).wait(TIMEOUT)


def _interrupt(proc: subprocess.Popen[bytes], ready: Any, what: str) -> tuple[str, str]:
    """Wait for ``ready()``, send SIGINT (Ctrl-C), return (stdout, stderr); the process never outlives this."""
    try:
        _wait_for(ready, what=what)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=TIMEOUT)
    return out.decode(), err.decode()


def _popen_rpcviz(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "app", *args], cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def test_call_ctrl_c_prints_the_tally_of_what_finished(holding_greeter: HoldingGreeter) -> None:
    """Ctrl-C during `call -n 100000 --concurrency 4` once 50 calls were answered and 4 are held: exit 130 and the
    tally of the 50, saying 4 in flight were cancelled (it used to print nothing)."""
    proc = _popen_rpcviz("call", holding_greeter.address, "-n", "100000", "--concurrency", "4", "--timeout", "30")
    out, err = _interrupt(proc, lambda: holding_greeter.held == 4, "4 calls held by the server")
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err
    lines = out.splitlines()
    assert lines[0] == f"50 of 100000 calls to {holding_greeter.address} with pick_first (concurrency 4)", out
    assert lines[1] == "interrupted (Ctrl-C): 4 calls in flight were cancelled, 99946 not started", out
    assert lines[2].split()[:2] == ["grpcio-1", "50"], out
    assert lines[3] == "ok 50, failed: none", out


def test_call_ctrl_c_json_counts_ok_and_cancelled(holding_greeter: HoldingGreeter) -> None:
    """The same with --json: ok 50, cancelled 4, interrupted true, no failure, latencies of the 50."""
    proc = _popen_rpcviz(
        "call", holding_greeter.address, "-n", "100000", "--concurrency", "4", "--timeout", "30", "--json"
    )
    out, err = _interrupt(proc, lambda: holding_greeter.held == 4, "4 calls held by the server")
    assert proc.returncode == 130, err
    report = json.loads(out)
    assert (report["interrupted"], report["calls"], report["ok"], report["cancelled"]) == (True, 100000, 50, 4)
    assert report["failed"] == {} and report["by_backend"] == {"grpcio-1": 50}
    lat = report["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"], lat


def test_call_ctrl_c_while_connecting_is_one_line() -> None:
    """Ctrl-C before the first call (the server accepted TCP, never speaks HTTP/2): one line, exit 130."""
    with BrokenServer("silent") as broken:
        proc = _popen_rpcviz("call", broken.address, "-n", "1", "--timeout", "30")
        out, err = _interrupt(proc, lambda: broken.accepted >= 1, "the connection")
    assert proc.returncode == 130, err
    assert err == "rpcviz call: interrupted before the first call\n", err
    assert out == ""


# --- demo --kill-pod: the failures it causes on purpose ---------------------------------------------


def test_demo_kill_pod_exits_0_for_the_failures_the_kill_causes() -> None:
    """demo --seed 1 pins pod #2; killing it fails the 8 calls in flight UNAVAILABLE, as intended: exit 0 (was 1),
    and the output says these failures are the expected ones."""
    result = rpcviz("demo", "--policy", "pick_first", "--seed", "1", "--kill-pod", "2", "-n", "100", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert set(report["failed"]) == {"UNAVAILABLE"}, report["failed"]
    kill = report["kill"]
    assert kill["pod"] == 2 and kill["unexpected_failures"] == {}
    assert kill["expected_failures"] == report["failed"]["UNAVAILABLE"] == report["calls"] - report["ok"] > 0
    text = rpcviz("demo", "--policy", "pick_first", "--seed", "1", "--kill-pod", "2", "-n", "100")
    assert text.returncode == 0, text.stderr
    last = text.stdout.splitlines()[-1]
    assert last.startswith("pod #2 was killed after ") and "UNAVAILABLE failures are calls the kill cut off" in last


@pytest.mark.parametrize(
    ("before", "now", "in_flight", "expected", "unexpected"),
    [
        pytest.param({}, {"UNAVAILABLE": 8}, 8, 8, {}, id="in-flight-unavailable"),
        pytest.param({}, {}, 8, 0, {}, id="nothing-failed"),
        pytest.param({"UNAVAILABLE": 1}, {"UNAVAILABLE": 3}, 8, 2, {"UNAVAILABLE": 1}, id="failure-before-the-kill"),
        pytest.param({}, {"UNAVAILABLE": 2, "DEADLINE_EXCEEDED": 1}, 8, 2, {"DEADLINE_EXCEEDED": 1}, id="other-code"),
        pytest.param({}, {"UNAVAILABLE": 40}, 4, 0, {"UNAVAILABLE": 40}, id="more-than-the-kill-can-cut"),
    ],
)
def test_demo_kill_outcome_tells_expected_from_real_failures(
    before: dict[str, int], now: dict[str, int], in_flight: int, expected: int, unexpected: dict[str, int]
) -> None:
    """Expected: UNAVAILABLE after the kill, at most the calls in flight plus one per worker (8). Anything else —
    a failure before it, another code, a flood — is a real failure and exits 1."""
    outcome = demo_command.kill_outcome(demo_command.Kill(2, 50, in_flight, before), now)
    assert (outcome["expected_failures"], outcome["unexpected_failures"]) == (expected, unexpected)
    calls = 100
    ok = calls - sum(now.values())
    assert demo_command.succeeded({"calls": calls, "ok": ok, "kill": outcome}) is (not unexpected)


# --- --version ---------------------------------------------------------------------------------------


def test_version_prints_the_package_version() -> None:
    """rpcviz --version: `rpcviz X.Y.Z` from the package metadata (or pyproject.toml when not installed), exit 0."""
    result = rpcviz("--version")
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"rpcviz \d+\.\d+\.\d+\S*\n", result.stdout), result.stdout
    assert result.stdout == f"rpcviz {version()}\n"


def test_version_falls_back_to_pyproject_when_not_installed(tmp_path: Path) -> None:
    """Not installed: the checkout's pyproject.toml says; neither: `unknown`."""
    import tomllib

    checkout = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert version("rpcviz-not-installed", ROOT / "pyproject.toml") == checkout
    other = tmp_path / "pyproject.toml"
    other.write_text('[project]\nname = "x"\nversion = "9.8.7"\n')
    assert version("rpcviz-not-installed", other) == "9.8.7"
    assert version("rpcviz-not-installed", tmp_path / "missing.toml") == "unknown"


# --- call against servers that are not (or no longer) HTTP/2 ------------------------------------------

SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # an empty SETTINGS frame: a server's whole preface
SETTINGS_ACK = b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"
HTTP11_400 = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nBad Request"
#: Bytes whose first 9 would announce a 1.5 MB frame: an HTTP/2 reader waits for the rest, forever.
GARBAGE = b"\x17\x03\x03\x00\x20not http/2 at all, nor anything else\r\n"


class BrokenServer:
    """A TCP server in this process (a thread per connection, plain sockets) that breaks HTTP/2 as ``mode`` says.

    silent         accept, read, never answer
    http11         answer `HTTP/1.1 400 Bad Request` and keep the connection open (keep-alive)
    http11-close   the same, then close
    garbage        send bytes that are not HTTP/2 and keep the connection open
    settings-reset send SETTINGS, read the client's first calls, then reset the connection (RST)
    """

    def __init__(self, mode: str) -> None:
        import socketserver

        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                with outer._lock:
                    outer.accepted += 1
                try:
                    outer._serve(self.request, mode)
                except OSError:
                    pass

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            block_on_close = False

        self.accepted = 0
        self._lock = threading.Lock()
        self._server = Server(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})

    @staticmethod
    def _serve(sock: socket.socket, mode: str) -> None:
        sock.settimeout(TIMEOUT)
        if mode in ("http11", "http11-close"):
            sock.recv(65536)
            sock.sendall(HTTP11_400)
            if mode == "http11-close":
                return
        elif mode == "garbage":
            sock.sendall(GARBAGE)
        elif mode == "settings-reset":
            sock.recv(65536)
            sock.sendall(SETTINGS + SETTINGS_ACK)
            sock.recv(65536)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            return
        while sock.recv(65536):  # until the client closes
            pass

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(TIMEOUT)


#: What asyncio prints when a protocol writes to a transport that is already closing, and for a future
#: that failed with nobody awaiting it; neither may reach a user.
NOISE = ("socket.send() raised exception.", "Future exception was never retrieved", "Traceback", "Task exception")


def _call_against(mode: str, *args: str) -> subprocess.CompletedProcess[str]:
    with BrokenServer(mode) as broken:
        return rpcviz("call", broken.address, *args)


@pytest.mark.parametrize("mode", ["http11", "http11-close", "garbage"])
def test_call_against_a_server_that_is_not_http2_fails_quietly(mode: str) -> None:
    """64 calls at concurrency 32 against a server that never speaks HTTP/2: a non-zero exit and no asyncio noise."""
    result = _call_against(mode, "-n", "64", "--concurrency", "32", "--timeout", "1")
    assert result.returncode != 0, result.stdout
    noise = [line for line in result.stderr.splitlines() if line.startswith(NOISE)]
    assert not noise, f"{len(noise)} noise lines, first: {noise[0]!r}\n{result.stderr[-2000:]}"


def test_call_against_a_server_that_resets_after_the_handshake_fails_quietly() -> None:
    """A server that sends SETTINGS, reads the first calls and resets: 64 calls at concurrency 32 end non-zero
    with no asyncio noise on stderr. Today: `Future exception was never retrieved` and `socket.send() raised
    exception.` (up to ~60 lines) in most runs."""
    result = _call_against("settings-reset", "-n", "64", "--concurrency", "32", "--timeout", "1")
    assert result.returncode != 0, result.stdout
    noise = [line for line in result.stderr.splitlines() if line.startswith(NOISE)]
    assert not noise, f"{len(noise)} noise lines, first: {noise[0]!r}"


async def test_calls_started_while_the_transport_closes_are_not_written(caplog: pytest.LogCaptureFixture) -> None:
    """The deterministic core of the noise: 8 calls start after the transport began closing (as asyncio does on
    the server's EOF) but before connection_lost ran. They must fail UNAVAILABLE without writing: each write to
    a closing transport counts, and from the 5th asyncio logs `socket.send() raised exception.`."""
    from app.greeter.service import SAY_HELLO, Greeter
    from transport import RpcError, Server, StatusCode
    from transport.client.connection import ClientConnection
    from transport.client.outcome import stream_error
    from transport.wire import encode_message

    server = Server(name="pod-w")
    server.add_service(Greeter())
    address = await server.start("127.0.0.1", 0)
    try:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(lambda: ClientConnection(str(address)), address.host, address.port)
        await conn.ready
        request = encode_message(HelloRequest(name="Ada").SerializeToString())

        async def call() -> None:
            stream = conn.open_stream(conn.request_headers(SAY_HELLO.encode(), [], None), request)
            await stream.wait_closed()
            error = stream_error(stream)
            if error is not None:
                raise error

        calls = [asyncio.ensure_future(call()) for _ in range(8)]
        assert conn.transport is not None
        conn.transport.close()  # runs before the 8 calls' first step; connection_lost runs after them
        results = await asyncio.gather(*calls, return_exceptions=True)
    finally:
        await server.stop(grace=1)
    assert all(isinstance(r, RpcError) and r.code is StatusCode.UNAVAILABLE for r in results), results
    lost_writes = caplog.text.count("socket.send() raised exception.")
    assert lost_writes == 0, f"{lost_writes} writes after the transport began closing were logged"


async def test_a_connect_cancelled_in_create_connection_leaves_no_unretrieved_future() -> None:
    """Shutting a subchannel down while loop.create_connection waits for connection_made (the window in which
    `rpcviz call` closes its channel) fails ClientConnection.ready with nobody awaiting it: asyncio logs
    `Future exception was never retrieved` when it is collected."""
    import gc

    from app.greeter.service import Greeter
    from transport import Server
    from transport.client.connection import ClientConnection

    loop = asyncio.get_running_loop()
    reported: list[str] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(str(context.get("message"))))
    server = Server(name="pod-c")
    server.add_service(Greeter())
    address = await server.start("127.0.0.1", 0)
    created: list[ClientConnection] = []
    try:

        async def connect() -> None:
            task = asyncio.current_task()
            assert task is not None

            def factory() -> ClientConnection:
                created.append(ClientConnection(str(address)))
                task.cancel()  # lands in create_connection's wait for connection_made
                return created[0]

            await loop.create_connection(factory, address.host, address.port)

        with pytest.raises(asyncio.CancelledError):
            await connect()
        deadline = loop.time() + 5
        while not created[0].closed and loop.time() < deadline:
            await asyncio.sleep(0.005)
        assert created[0].closed
        created.clear()
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
        await server.stop(grace=1)
    assert "Future exception was never retrieved" not in reported, reported


@pytest.mark.parametrize(
    ("mode", "said"),
    [
        ("http11", "does not speak HTTP/2 (got 'HTTP/1.1 400 Bad Request')"),
        ("http11-close", "does not speak HTTP/2 (got 'HTTP/1.1 400 Bad Request')"),
        ("garbage", "sent bytes that are not HTTP/2"),
    ],
)
def test_call_names_the_protocol_error_of_a_server_that_is_not_http2(mode: str, said: str) -> None:
    """An HTTP/1.1 or garbage server: the error names what the server sent, at once, instead of
    `no connection within 2s` / `connection lost`."""
    result = _call_against(mode, "-n", "1", "--timeout", "2")
    assert_one_line_error(result)
    assert said in result.stderr, result.stderr


def test_call_that_times_out_connecting_names_the_last_error() -> None:
    """pick_first over [refusing, silent]: the first address refuses, the second accepts TCP and never speaks.
    After --timeout the line names the refusal instead of only `no connection within 1s`."""
    refusing = f"127.0.0.1:{closed_port()}"
    with BrokenServer("silent") as silent:
        result = rpcviz("call", f"ipv4:{refusing},{silent.address}", "-n", "1", "--timeout", "1")
    assert_one_line_error(result)
    assert (
        f"no connection within 1s (last error: failed to connect to {refusing}: connection refused)" in result.stderr
    ), result.stderr


# --- proxy drain (issue 10, point 3) -------------------------------------------------------------


@pytest.mark.parametrize("grace", ["-1", "nan", "soon"])
def test_proxy_bad_grace_is_one_line(grace: str) -> None:
    """proxy --grace -1 (or not a number): one line on stderr naming --grace, non-zero exit."""
    result = rpcviz("proxy", "--listen", "127.0.0.1:0", "--backend", "127.0.0.1:1", "--grace", grace)
    assert_one_line_error(result)
    assert "--grace" in result.stderr and "0 or more" in result.stderr, result.stderr


def test_proxy_sigterm_lets_an_open_connection_finish_then_exits_0(daemons: list[Daemon]) -> None:
    """SIGTERM with --grace 60: the open connection keeps carrying calls; once the client closes it the proxy
    exits 0 at once (not after 60 s) and prints its counters."""
    backend = serve(daemons, "pod-a")
    proxy = Daemon("proxy", "--listen", "127.0.0.1:0", "--backend", backend, "--grace", "60")
    daemons.append(proxy)
    vip = proxy.address()
    with grpc.insecure_channel(vip) as channel:
        say_hello = channel.unary_unary(
            "/helloworld.Greeter/SayHello",
            request_serializer=HelloRequest.SerializeToString,
            response_deserializer=HelloReply.FromString,
        )
        assert say_hello(HelloRequest(name="Ada"), timeout=5).message == "Hello, Ada!"
        proxy.proc.send_signal(signal.SIGTERM)
        assert "SIGTERM, stopping" in proxy.read_line()
        assert say_hello(HelloRequest(name="Bob"), timeout=5).message == "Hello, Bob!"
        assert proxy.proc.poll() is None, "the proxy exited while a client connection was open"
    stdout, stderr = proxy.proc.communicate(timeout=TIMEOUT)  # well inside the 60 s grace
    out, err = stdout.decode(), stderr.decode()
    assert proxy.proc.returncode == 0, err
    assert "Traceback" not in err
    assert re.search(r": 1 connections, \d+ bytes up, \d+ bytes down, 0 refused", out), out


def test_proxy_second_sigterm_resets_open_connections_at_once(daemons: list[Daemon]) -> None:
    """SIGTERM, then SIGTERM again during a 60 s grace: the proxy resets the open connection and exits 0 now."""
    backend = serve(daemons, "pod-a")
    proxy = Daemon("proxy", "--listen", "127.0.0.1:0", "--backend", backend, "--grace", "60")
    daemons.append(proxy)
    vip = proxy.address()
    with grpc.insecure_channel(vip) as channel:
        say_hello = channel.unary_unary(
            "/helloworld.Greeter/SayHello",
            request_serializer=HelloRequest.SerializeToString,
            response_deserializer=HelloReply.FromString,
        )
        assert say_hello(HelloRequest(name="Ada"), timeout=5).message == "Hello, Ada!"
        proxy.proc.send_signal(signal.SIGTERM)
        assert "signal again" in proxy.read_line()
        code, out, err = proxy.terminate()  # the second SIGTERM; well inside the 60 s grace
    assert code == 0, err
    assert "Traceback" not in err
    assert re.search(r": 1 connections, \d+ bytes up, \d+ bytes down, 0 refused", out), out


# --- proxy --mode l7 ---------------------------------------------------------------------------


def test_proxy_mode_l7_spreads_one_connections_calls_over_both_backends(daemons: list[Daemon]) -> None:
    """proxy --mode l7 with two serve processes: `call -n 100` (pick_first, one connection) reaches both
    pods, ~50 each, by the pods' own counts; on SIGTERM the proxy prints its per-backend counters."""
    a = serve(daemons, "pod-a")
    b = serve(daemons, "pod-b")
    proxy = Daemon("proxy", "--mode", "l7", "--listen", "127.0.0.1:0", "--backend", a, "--backend", b, "--grace", "1")
    daemons.append(proxy)
    line = proxy.read_line()
    assert line.endswith(f"-> {a}, {b} (round_robin per call)"), line
    match = ADDRESS.search(line)
    assert match, line
    vip = match.group(1)

    report = call_json(vip, "--policy", "pick_first", "-n", "100")
    assert report["ok"] == 100, report
    assert set(report["by_backend"]) == {"pod-a", "pod-b"}, report["by_backend"]
    assert all(40 <= n <= 60 for n in report["by_backend"].values()), report["by_backend"]

    code, out, err = proxy.terminate()
    assert code == 0, err
    assert "Traceback" not in err
    assert "1 client connections" in out, out
    per_backend = {m[0]: int(m[1]) for m in re.findall(r"(127\.0\.0\.1:\d+): (\d+) calls \(\d+ OK\)", out)}
    assert per_backend == {a: report["by_backend"]["pod-a"], b: report["by_backend"]["pod-b"]}, out
    for daemon, name in zip(daemons[:2], ("pod-a", "pod-b"), strict=True):
        code, out, err = daemon.terminate()
        assert code == 0, err
        assert f"stopped after {report['by_backend'][name]} calls" in out, out


def test_proxy_policy_without_mode_l7_is_one_line() -> None:
    """--policy picks the L7 proxy's upstream policy; with the L4 proxy it is a one-line error."""
    result = rpcviz(
        "proxy", "--listen", "127.0.0.1:0", "--backend", f"127.0.0.1:{closed_port()}", "--policy", "pick_first"
    )
    assert_one_line_error(result)
    assert "--mode l7" in result.stderr


# --- least_request ---------------------------------------------------------------------


def test_call_least_request_over_two_servers(daemons: list[Daemon]) -> None:
    """call --policy least_request over ipv4:a,b: listed in --help, every call OK, both servers used
    (one call at a time: every count is 0 at each pick, so the sample decides: 2^-39 to miss one)."""
    assert "least_request" in rpcviz("call", "--help").stdout
    a = serve(daemons, "pod-a")
    b = serve(daemons, "pod-b")
    report = call_json(f"ipv4:{a},{b}", "--policy", "least_request", "-n", "40")
    assert report["policy"] == "least_request"
    assert (report["calls"], report["ok"], report["failed"]) == (40, 40, {})
    assert set(report["by_backend"]) == {"pod-a", "pod-b"}, report["by_backend"]
    assert sum(report["by_backend"].values()) == 40
