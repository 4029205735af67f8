"""``rpcviz cluster up``: real ``rpcviz serve`` processes behind a real balancer (our proxy, nginx
``stream``, nginx ``grpc_pass``), called by real ``rpcviz call`` processes, stopped by SIGTERM with
no process left behind. One ``cluster up`` per balancer kind, several assertions each."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_cli import ROOT, TIMEOUT, Daemon, _env, assert_one_line_error, rpcviz

NGINX = shutil.which("nginx", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"]))
needs_nginx = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (.ci/run installs nginx-full)")
PODS = ["pod-1", "pod-2", "pod-3", "pod-4"]
POD_IPS = ["127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14"]


@dataclass
class Cluster:
    """A running ``cluster up``: what it printed, and every pid it said it started."""

    daemon: Daemon
    output: list[str] = field(default_factory=list)

    def line(self, prefix: str) -> str:
        found = [line for line in self.output if line.startswith(prefix)]
        assert found, (prefix, self.output)
        return found[0]

    @property
    def vip(self) -> str:
        return self.line("VIP ").split()[1]

    @property
    def pods_target(self) -> str:
        return self.line("pods ").split()[1]

    @property
    def headless(self) -> tuple[str, str]:
        """(the dns:/// target, the hosts file to set RPCVIZ_HOSTS to)."""
        match = re.match(r"headless\s+(\S+)\s+\(RPCVIZ_HOSTS=(\S+)\)", self.line("headless "))
        assert match, self.output
        return match.group(1), match.group(2)

    @property
    def pids(self) -> dict[str, int]:
        """{pod-1: pid, ..., balancer: pid}, from the start-up table."""
        rows = (re.match(r"\s+(\S+)\s+\S+\s+pid (\d+)", line) for line in self.output)
        return {m.group(1): int(m.group(2)) for m in rows if m}

    @property
    def workdir(self) -> Path:
        """Its temp dir (where it wrote the hosts file)."""
        return Path(self.headless[1]).parent


def cluster_up(clusters: list[Cluster], *args: str) -> Cluster:
    """Start ``rpcviz cluster up --base-port 0 ARGS`` and read its output up to the Ctrl-C line."""
    cluster = Cluster(Daemon("cluster", "up", "--base-port", "0", "--grace", "2", *args))
    clusters.append(cluster)
    while not (line := cluster.daemon.read_line(timeout=TIMEOUT)).startswith("cluster up: Ctrl-C"):
        cluster.output.append(line)
    return cluster


def stop(cluster: Cluster, watched: dict[str, int]) -> str:
    """SIGTERM ``cluster up``; assert it exits 0 and every process in ``watched`` is gone; its output."""
    starts = {name: _start_time(pid) for name, pid in watched.items()}
    assert all(starts.values()), f"not running before SIGTERM: {starts}"
    code, out, err = cluster.daemon.terminate(timeout=TIMEOUT)
    assert code == 0, (code, err)
    assert err == "", err
    cluster.output += out.splitlines()
    left = {name: pid for name, pid in watched.items() if _start_time(pid) == starts[name]}
    assert left == {}, f"still running after cluster up exited: {left}"
    assert f"cluster up: everything stopped; removed {cluster.workdir}" in out, out
    assert not cluster.workdir.exists(), cluster.workdir
    return out


def _start_time(pid: int) -> str | None:
    """The process's start time (field 22 of /proc/PID/stat), None if it is gone or a zombie (it
    exited; its new parent has not reaped it yet): a pid reused by another process is not ours."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else fields[19]


def _children(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (nginx's workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def calls(*runs: tuple[list[str], dict[str, str]]) -> list[dict[str, Any]]:
    """``rpcviz call ARGS --json`` for each (ARGS, extra env), all at once; their reports."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "app", "call", *args, "--json"],
            cwd=ROOT,
            env=dict(_env(), **extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args, extra in runs
    ]
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0, err
        reports.append(json.loads(out))
    return reports


@pytest.fixture
def clusters() -> Iterator[list[Cluster]]:
    """Every ``cluster up`` a test starts is killed afterwards (its pods get SIGTERM from the
    kernel when it dies: PR_SET_PDEATHSIG), and a temp dir a kill left behind is removed."""
    started: list[Cluster] = []
    try:
        yield started
    finally:
        for cluster in started:
            cluster.daemon.kill()
            shutil.rmtree(cluster.workdir, ignore_errors=True)


def test_builtin_balancer_pins_the_vip_and_round_robin_spreads_over_the_pods(clusters: list[Cluster]) -> None:
    """4 pods on 127.0.0.11-14 (one port) behind our L4 proxy: 100 calls to the VIP land on one pod;
    round_robin over the ipv4: list and over the dns:/// name (RPCVIZ_HOSTS) lands 25 on each;
    SIGTERM stops the proxy and all 4 pods and removes the temp dir."""
    cluster = cluster_up(clusters, "--pods", "4")
    pids = cluster.pids
    assert sorted(pids) == ["balancer", *PODS], cluster.output
    pods = cluster.pods_target.removeprefix("ipv4:").split(",")
    assert [p.rpartition(":")[0] for p in pods] == POD_IPS
    assert len({p.rpartition(":")[2] for p in pods}) == 1, pods  # one port: pod IPs, as behind a headless Service
    target, hosts = cluster.headless
    assert target == f"dns:///pods.rpcviz.test:{pods[0].rpartition(':')[2]}"

    vip, spread, dns = calls(
        ([cluster.vip, "-n", "100"], {}),
        ([cluster.pods_target, "--policy", "round_robin", "-n", "100"], {}),
        ([target, "--policy", "round_robin", "-n", "100"], {"RPCVIZ_HOSTS": hosts}),
    )
    assert list(vip["by_backend"].values()) == [100], vip  # pinned: the L4 trap
    assert spread["by_backend"] == dict.fromkeys(PODS, 25), spread
    assert dns["by_backend"] == dict.fromkeys(PODS, 25), dns

    out = stop(cluster, pids)
    for pod in PODS:
        assert re.search(rf"^{pod}: stopped after \d+ calls", out, re.MULTILINE), out
    assert "L4 proxy: SIGTERM" in out, out


@needs_nginx
def test_nginx_stream_pins_every_call_on_one_pod(clusters: list[Cluster]) -> None:
    """nginx stream as the VIP: 100 calls on one connection land on one pod; its config keeps every
    file it writes in the temp dir; SIGTERM stops nginx's master and worker and the pods."""
    cluster = cluster_up(clusters, "--pods", "4", "--balancer", "nginx")
    pids = cluster.pids
    workers = _children(pids["balancer"])
    assert len(workers) == 1, workers  # worker_processes 1
    conf = Path(cluster.line("  balancer").rpartition("config ")[2])
    workdir = str(conf.parent)
    text = conf.read_text()
    assert "stream {" in text and "proxy_pass pods;" in text, text
    for directive in ("pid", "lock_file", "error_log"):
        assert re.search(rf"^{directive} {re.escape(workdir)}/", text, re.MULTILINE), (directive, text)

    (vip,) = calls(([cluster.vip, "-n", "100"], {}))
    assert list(vip["by_backend"].values()) == [100], vip

    out = stop(cluster, {**pids, "nginx worker": workers[0]})
    assert "nginx: stopped" in out, out


@needs_nginx
def test_nginx_grpc_pass_balances_per_request(clusters: list[Cluster]) -> None:
    """nginx grpc_pass (L7) as the VIP: 100 calls on one client connection spread 25 per pod
    (nginx picks an upstream per request, round robin); SIGTERM leaves no process."""
    cluster = cluster_up(clusters, "--pods", "4", "--balancer", "nginx-l7")
    pids = cluster.pids
    workers = _children(pids["balancer"])
    (vip,) = calls(([cluster.vip, "-n", "100"], {}))
    assert vip["by_backend"] == dict.fromkeys(PODS, 25), vip
    stop(cluster, {**pids, **{f"nginx worker {pid}": pid for pid in workers}})


def test_a_pod_that_dies_stops_the_rest_with_one_line(clusters: list[Cluster]) -> None:
    """SIGKILL one pod of a running cluster: cluster up stops the other and the balancer, exits 1
    with one line naming the pod."""
    cluster = cluster_up(clusters, "--pods", "2")
    pids = cluster.pids
    starts = {name: _start_time(pid) for name, pid in pids.items()}
    os.kill(pids["pod-2"], 9)
    code, _, err = _wait(cluster)
    assert code == 1, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"pod-2 (pid {pids['pod-2']}) exited: killed by SIGKILL; stopped the rest" in err, err
    assert {n for n, pid in pids.items() if _start_time(pid) == starts[n]} == set()


def test_sigkill_of_cluster_up_still_stops_its_children(clusters: list[Cluster]) -> None:
    """Even SIGKILL, which cluster up cannot handle, leaves no pod or balancer running: the kernel
    sends each child SIGTERM when its parent dies (PR_SET_PDEATHSIG)."""
    cluster = cluster_up(clusters, "--pods", "2")
    pids = cluster.pids
    starts = {name: _start_time(pid) for name, pid in pids.items()}
    cluster.daemon.proc.kill()
    cluster.daemon.proc.wait(timeout=TIMEOUT)
    assert cluster.workdir.exists()  # nothing can clean up after SIGKILL: the fixture removes it
    deadline = time.monotonic() + TIMEOUT
    while left := {n for n, pid in pids.items() if _start_time(pid) == starts[n]}:
        assert time.monotonic() < deadline, f"still running {TIMEOUT}s after cluster up was killed: {left}"
        time.sleep(0.02)


def _wait(cluster: Cluster) -> tuple[int, str, str]:
    out, err = cluster.daemon.proc.communicate(timeout=TIMEOUT)
    return cluster.daemon.proc.returncode, out.decode(), err.decode()


def test_start_up_failing_half_way_stops_what_started(clusters: list[Cluster]) -> None:
    """pod-3's address is taken: pods 1, 2 and 4 start, then cluster up stops them and exits 1
    with one line; no ``serve`` process on that port is left."""
    with socket.socket() as taken:
        vip = _pair_with_free_vip(taken)
        port = vip + 1
        result = rpcviz("cluster", "up", "--pods", "4", "--base-port", str(vip), "--grace", "1", timeout=TIMEOUT)
    assert_one_line_error(result)
    assert "pod-3 did not start" in result.stderr and "address already in use" in result.stderr, result.stderr
    assert _serve_processes(port) == [], "pods left running"


def _pair_with_free_vip(taken: socket.socket) -> int:
    """Bind ``taken`` to 127.0.0.13:Q (listening) with 127.0.0.1:Q-1 free; return Q-1 (the VIP port)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            vip = int(probe.getsockname()[1])
        try:
            taken.bind(("127.0.0.13", vip + 1))
        except OSError:
            continue
        taken.listen()
        return vip
    raise AssertionError("no free pair of ports in 50 tries")


def _serve_processes(port: int) -> list[int]:
    """Pids of ``rpcviz serve`` processes whose command line has ``--port PORT``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"serve" in argv and b"--port" in argv and str(port).encode() in argv:
                found.append(int(entry.name))
    return found


def test_nginx_asked_for_and_absent_is_one_line() -> None:
    result = rpcviz("cluster", "up", "--balancer", "nginx", "--nginx", "/nonexistent/nginx")
    assert_one_line_error(result)
    assert result.stderr == "rpcviz cluster: nginx not found at '/nonexistent/nginx'\n"


def test_vip_port_in_use_is_one_line_before_any_pod_starts() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = rpcviz("cluster", "up", "--base-port", str(port))
    assert_one_line_error(result)
    assert result.stderr == f"rpcviz cluster: cannot listen on 127.0.0.1:{port} for the VIP: address already in use\n"
    assert result.stdout == ""  # nothing started
