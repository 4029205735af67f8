"""grpc-js as a bench peer: its client and server interoperate with ours both ways, for every workload.

Real processes on 127.0.0.1: ``python -m bench.clients grpcjs`` (node) against our Server in this process,
our Channel against ``python -m bench.servers grpcjs`` (node). A few calls each; no speed assertions.
Skipped with the reason when node or grpc-js's packages are missing. The install's failure path runs
with a stand-in npm and needs neither.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.greeter.helloworld_pb2 import HelloRequest
from app.greeter.service import Greeter
from app.greeter.stub import GreeterStub
from bench import grpcjs, pairs
from bench.procs import ROOT, Child
from bench.protos.bench_pb2 import Blob, DownloadRequest, UploadSummary
from bench.protos.bench_rpcviz import BenchServicer, BenchStub
from transport import Channel, ConnectivityState, Server
from transport.server import ServicerContext
from transport.status import StatusCode

SIZE, MESSAGES, CALLS = 1000, 5, 12
MiB = 1024 * 1024
#: (workload, --size, --messages): every workload, and one 1 MiB echo (many frames, flow control both ways).
CASES = [
    ("unary", SIZE, MESSAGES),
    ("echo", SIZE, MESSAGES),
    ("echo", MiB, MESSAGES),
    ("download", SIZE, MESSAGES),
    ("upload", SIZE, MESSAGES),
    ("pingpong", SIZE, MESSAGES),
]


@pytest.fixture(scope="module")
def grpcjs_ready() -> None:
    reason = grpcjs.note()  # installs the pinned packages into the cache the first time
    if reason is not None:
        pytest.skip(f"grpc-js unavailable: {reason}")


class Bench(BenchServicer):
    """rpcviz.bench.Bench on our Server, as the bench's contract says each kind serves it."""

    async def Echo(self, request: Blob, context: ServicerContext) -> Blob:
        return request

    async def Download(self, request: DownloadRequest, context: ServicerContext) -> AsyncIterator[Blob]:
        blob = Blob(data=b"x" * request.size)
        for _ in range(request.messages):
            yield blob

    async def Upload(self, request_iterator: AsyncIterator[Blob], context: ServicerContext) -> UploadSummary:
        messages = size = 0
        async for blob in request_iterator:
            messages += 1
            size += len(blob.data)
        return UploadSummary(messages=messages, bytes=size)

    async def PingPong(self, request_iterator: AsyncIterator[Blob], context: ServicerContext) -> AsyncIterator[Blob]:
        async for blob in request_iterator:
            yield blob


def expected_messages(workload: str, calls: int, messages: int) -> int:
    """Messages the client counts: received for download, sent for upload, one per call otherwise."""
    return calls * messages if workload in ("download", "upload") else calls


@pytest.mark.parametrize(("workload", "size", "messages"), CASES)
async def test_grpcjs_client_against_our_server(grpcjs_ready: None, workload: str, size: int, messages: int) -> None:
    server = Server()
    server.add_service(Greeter())
    server.add_service(Bench())
    address = await server.start("127.0.0.1", 0)
    try:
        argv = [sys.executable, "-m", "bench.clients", "grpcjs", "--port", str(address.port), "--concurrency", "3"]
        argv += ["--calls", str(CALLS), "--duration", "10", "--warmup", "3", "--server-pid", str(os.getpid())]
        argv += ["--workload", workload, "--size", str(size), "--messages", str(messages)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    finally:
        await server.stop(grace=0)
    assert proc.returncode == 0, err.decode()[-2000:]
    row: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    assert row["client"] == "grpcjs" and row["workload"] == workload
    assert row["errors"] == 0
    assert row["calls"] == row["ok"] == CALLS
    assert row["messages"] == expected_messages(workload, CALLS, messages)
    payload = 0 if workload == "unary" else size
    assert row["size"] == payload and row["bytes"] == row["messages"] * payload
    assert row["client_cpu_us"] > 0 and row["server_cpu_us"] is not None  # this process served them


@pytest.fixture(scope="module")
def grpcjs_server(grpcjs_ready: None) -> Iterator[Child]:
    server = Child("bench.servers", ["grpcjs"], None)
    try:
        yield server
    finally:
        server.stop()


async def ours_against(port: int, workload: str, size: int, messages: int) -> tuple[int, int]:
    """CALLS calls of ``workload`` from our Channel, 3 at a time: (right answers, messages counted)."""
    channel = Channel.dial(f"127.0.0.1:{port}", "pick_first")
    try:
        await channel.wait_for_state(ConnectivityState.READY, timeout=10)
        bench, greeter = BenchStub(channel), GreeterStub(channel)
        blob = Blob(data=bytes(range(256)) * (size // 256) + b"x" * (size % 256))

        async def one() -> tuple[bool, int]:
            if workload == "unary":
                return (await greeter.SayHello(HelloRequest(name="world"))).message == "Hello, world!", 1
            if workload == "echo":
                return (await bench.Echo(blob)).data == blob.data, 1
            if workload == "download":
                replies = [r async for r in bench.Download(DownloadRequest(messages=messages, size=size))]
                return all(len(r.data) == size for r in replies), len(replies)
            if workload == "upload":
                summary = await bench.Upload(iter([blob] * messages))
                return (summary.messages, summary.bytes) == (messages, messages * size), messages
            call = bench.PingPong()
            for _ in range(messages):
                await call.write(blob)
                if (await call.read()).data != blob.data:  # type: ignore[union-attr]
                    return False, 0
            await call.done_writing()
            return await call.code() == StatusCode.OK, messages

        results = []
        for _ in range(CALLS // 3):
            results += await asyncio.wait_for(asyncio.gather(one(), one(), one()), 30)
    finally:
        await channel.close(grace=0)
    return sum(ok for ok, _ in results), sum(n for _, n in results)


@pytest.mark.parametrize(("workload", "size", "messages"), CASES)
async def test_our_client_against_the_grpcjs_server(
    grpcjs_server: Child, workload: str, size: int, messages: int
) -> None:
    ok, counted = await ours_against(grpcjs_server.port, workload, size, messages)
    assert ok == CALLS
    per_call = messages if workload in ("download", "upload", "pingpong") else 1
    assert counted == CALLS * per_call


def test_a_failed_install_is_one_line_and_not_retried_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in npm that fails: grpc-js is unavailable with npm's first error line, and the next
    process (a fresh ``note``) reads the kept note instead of running npm again."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "npm-calls"
    (bin_dir / "node").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "npm").write_text(
        f"#!/bin/sh\necho run >> {calls}\necho 'npm warn config x' >&2\n"
        "echo 'npm error code ENOTFOUND' >&2\necho 'npm error network' >&2\nexit 1\n"
    )
    for tool in ("node", "npm"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    grpcjs.note.cache_clear()
    try:
        assert grpcjs.note() == "npm ci failed: npm error code ENOTFOUND"
        assert not grpcjs.available()
        assert pairs.unavailable("grpcjs") == "grpc-js: npm ci failed: npm error code ENOTFOUND"
        grpcjs.note.cache_clear()
        assert grpcjs.note() == "npm ci failed: npm error code ENOTFOUND"
        assert calls.read_text().count("run") == 1
        assert not grpcjs.cache_dir().exists()  # no half-made install left behind
        assert [p.name for p in grpcjs.cache_dir().parent.iterdir()] == [grpcjs.cache_dir().name + ".failed"]

        (bin_dir / "node").unlink()
        grpcjs.note.cache_clear()
        assert grpcjs.note() == "no node on PATH"
    finally:
        grpcjs.note.cache_clear()


def test_grpcjs_targets_are_na_without_its_rows() -> None:
    """No grpc-js rows (node missing): its targets say n/a, and the others are still judged."""
    from bench import report

    row = {"calls": 10, "throughput": 100.0, "p50_us": 500.0, "client_cpu_us": 100.0, "server_cpu_us": 90.0}
    rows = [{**row, "pair": "ours → ours", "concurrency": c} for c in (1, 32)]
    rows += [{**row, "pair": "grpclib → grpclib", "concurrency": c, "throughput": 20.0} for c in (1, 32)]
    items = {t.name: t for t in report.targets(rows, {"client_cpu_us": 50.0, "server_cpu_us": 50.0}, None)}
    for name in ("C=32 throughput vs grpc-js", "C=1 p50 latency vs grpc-js"):
        assert (items[name].verdict, items[name].detail) == ("n/a", "grpc-js not measured")
    assert items["C=32 throughput vs grpclib (round 2)"].verdict == "PASS"  # 5×
    assert items["C=32 throughput vs grpclib"].verdict == "PASS"
