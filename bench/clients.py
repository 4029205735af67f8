"""A closed-loop client (ours, grpclib or grpcio) on one channel: unary SayHello, or a Bench workload.

``python -m bench.clients KIND --port P --concurrency C [--calls N] [--duration S] [--server-pid PID]
[--workload unary|echo|download|upload|pingpong] [--size BYTES] [--messages M]``
warms up, then keeps C calls in flight until N calls or S seconds, whichever comes first, and prints one
JSON line: throughput, p50/p99 latency, CPU µs per call of this process and (from /proc) of the server,
and per message: messages moved, messages/s, payload bytes one way, MiB/s, CPU µs per message each side.

Workloads (:mod:`bench.workloads`): ``unary`` (the default) is SayHello; ``echo`` is one Echo of a
``--size``-byte Blob per call; ``download`` a Download of M Blobs of ``--size`` per call (messages:
those received); ``upload`` M Blobs of ``--size`` then the summary per call (messages: those sent);
``pingpong`` holds C bidi streams, a call being one round trip of a ``--size``-byte Blob.

With ``--via PORT`` it measures two channels at C=1 instead, one to ``--port`` (direct) and one to
``--via`` (e.g. a proxy in front of the same server), alternating small batches of calls between them,
so that both see the same machine at the same moments; it prints ``{"direct": ..., "via": ...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from app.greeter.helloworld_pb2 import HelloReply, HelloRequest
from bench import grpcjs, profiling, workloads
from bench.procs import proc_cpu_seconds

SAY_HELLO = "/helloworld.Greeter/SayHello"
KINDS = ("ours", "grpclib", "grpcio")
#: Connecting longer than this fails the run.
CALL_TIMEOUT = 10.0
#: The payload of the unary workload's request (HelloRequest(name="world")), in bytes.
UNARY_SIZE = len(HelloRequest(name="world").SerializeToString())

Call = Callable[[HelloRequest], Awaitable[HelloReply]]
Close = Callable[[], Awaitable[None]]


async def connect_ours(port: int) -> tuple[Call, Close]:
    from app.greeter.stub import GreeterStub
    from transport import Channel, ConnectivityState

    channel = Channel.dial(f"127.0.0.1:{port}", "pick_first")
    await channel.wait_for_state(ConnectivityState.READY, timeout=CALL_TIMEOUT)
    stub = GreeterStub(channel)
    return stub.SayHello, lambda: channel.close(grace=0)


async def connect_grpclib(port: int) -> tuple[Call, Close]:
    from grpclib.client import Channel, UnaryUnaryMethod

    channel = Channel("127.0.0.1", port)
    method: UnaryUnaryMethod[HelloRequest, HelloReply] = UnaryUnaryMethod(channel, SAY_HELLO, HelloRequest, HelloReply)

    async def close() -> None:
        channel.close()

    return method, close


async def connect_grpcio(port: int) -> tuple[Call, Close]:
    import grpc

    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    await asyncio.wait_for(channel.channel_ready(), CALL_TIMEOUT)
    method = channel.unary_unary(
        SAY_HELLO, request_serializer=HelloRequest.SerializeToString, response_deserializer=HelloReply.FromString
    )
    return method, lambda: channel.close(None)


CONNECT = {"ours": connect_ours, "grpclib": connect_grpclib, "grpcio": connect_grpcio}


async def closed_loop(
    call: Call, concurrency: int, calls: int, duration: float, latencies: list[int] | None
) -> tuple[int, int]:
    """Keep ``concurrency`` calls in flight until ``calls`` started or ``duration`` passed; (ok, errors)."""
    request = HelloRequest(name="world")
    deadline = time.perf_counter() + duration
    started = ok = errors = 0
    clock = time.perf_counter_ns

    async def worker() -> None:
        nonlocal started, ok, errors
        while started < calls and time.perf_counter() < deadline:
            started += 1
            t0 = clock()
            try:
                reply = await call(request)  # bounded by the wait_for around the whole loop
            except Exception:
                errors += 1
                if errors > 100:
                    raise
                continue
            t1 = clock()
            if latencies is not None:
                latencies.append(t1 - t0)
            ok += reply.message == "Hello, world!"

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok, errors


def percentile(sorted_ns: list[int], q: float) -> float:
    """The q-quantile (nearest rank) of sorted nanoseconds, in µs."""
    if not sorted_ns:
        return float("nan")
    index = min(len(sorted_ns) - 1, max(0, round(q * len(sorted_ns) + 0.5) - 1))
    return sorted_ns[index] / 1000


async def measure(
    kind: str, port: int, concurrency: int, calls: int, duration: float, warmup: int, server_pid: int | None
) -> dict[str, Any]:
    call, close = await CONNECT[kind](port)
    try:
        await asyncio.wait_for(closed_loop(call, concurrency, warmup, max(1.0, duration), None), 60)
        latencies: list[int] = []
        server_cpu0 = proc_cpu_seconds(server_pid) if server_pid else None
        with profiling.window(server_pid):
            cpu0, wall0 = time.process_time(), time.perf_counter()
            loop = closed_loop(call, concurrency, calls, duration, latencies)
            ok, errors = await asyncio.wait_for(loop, duration + 60)
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        server_cpu1 = proc_cpu_seconds(server_pid) if server_pid else None
    finally:
        await close()
    server_cpu = None if server_cpu0 is None or server_cpu1 is None else server_cpu1 - server_cpu0
    return summary(kind, concurrency, latencies, ok, errors, wall, cpu, server_cpu)


async def measure_workload(
    kind: str,
    port: int,
    workload: str,
    size: int,
    messages: int,
    concurrency: int,
    calls: int,
    duration: float,
    warmup: int,
    server_pid: int | None,
) -> dict[str, Any]:
    """One Bench workload (:mod:`bench.workloads`), measured like :func:`measure`."""
    client = await workloads.connect(kind, port)
    try:
        ops, streams = await workloads.operations(client, workload, size, messages, concurrency)
        await asyncio.wait_for(workloads.closed_loop(ops, warmup, max(1.0, duration), None), 60)
        latencies: list[int] = []
        server_cpu0 = proc_cpu_seconds(server_pid) if server_pid else None
        with profiling.window(server_pid):
            cpu0, wall0 = time.process_time(), time.perf_counter()
            ok, errors, moved = await asyncio.wait_for(
                workloads.closed_loop(ops, calls, duration, latencies), duration + 60
            )
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        server_cpu1 = proc_cpu_seconds(server_pid) if server_pid else None
        for stream in streams:
            await asyncio.wait_for(stream.close(), CALL_TIMEOUT)
    finally:
        await client.close()
    server_cpu = None if server_cpu0 is None or server_cpu1 is None else server_cpu1 - server_cpu0
    return summary(kind, concurrency, latencies, ok, errors, wall, cpu, server_cpu, workload, size, moved)


def summary(
    kind: str,
    concurrency: int,
    latencies: list[int],
    ok: int,
    errors: int,
    wall: float,
    cpu: float,
    server_cpu: float | None,
    workload: str = "unary",
    size: int = UNARY_SIZE,
    messages: int | None = None,
) -> dict[str, Any]:
    """The JSON row for one measured window (``latencies`` in ns; times in seconds).

    ``messages``: moved in the window (None: one per call); ``size`` bytes of payload each, one way.
    """
    n = len(latencies)
    latencies.sort()
    moved = n if messages is None else messages
    payload = moved * size
    return {
        "client": kind,
        "concurrency": concurrency,
        "calls": n,
        "ok": ok,
        "errors": errors,
        "seconds": wall,
        "throughput": n / wall if wall else 0.0,
        "p50_us": percentile(latencies, 0.50),
        "p99_us": percentile(latencies, 0.99),
        "client_cpu_us": cpu / n * 1e6 if n else None,
        "server_cpu_us": server_cpu / n * 1e6 if n and server_cpu is not None else None,
        "workload": workload,
        "size": size,
        "messages": moved,
        "messages_per_s": moved / wall if wall else 0.0,
        "bytes": payload,
        "mb_per_s": payload / 2**20 / wall if wall else 0.0,
        "client_cpu_us_per_message": cpu / moved * 1e6 if moved else None,
        "server_cpu_us_per_message": server_cpu / moved * 1e6 if moved and server_cpu is not None else None,
    }


#: Calls per turn when two channels alternate (small: both sample the same noise; large: few switches).
INTERLEAVE_BATCH = 10


async def measure_interleaved(
    kind: str, port: int, via: int, calls: int, duration: float, warmup: int
) -> dict[str, dict[str, Any]]:
    """C=1 on a direct and a ``via`` channel, alternating batches; a summary per channel.

    (No server CPU here: /proc counts in 10 ms ticks, far coarser than a batch.)
    """
    channels = {"direct": await CONNECT[kind](port), "via": await CONNECT[kind](via)}
    latencies: dict[str, list[int]] = {name: [] for name in channels}
    cpu = dict.fromkeys(channels, 0.0)
    wall = dict.fromkeys(channels, 0.0)
    ok = dict.fromkeys(channels, 0)
    errors = dict.fromkeys(channels, 0)
    try:
        for call, _ in channels.values():
            await asyncio.wait_for(closed_loop(call, 1, warmup, max(1.0, duration), None), 60)
        end = time.perf_counter() + duration
        while time.perf_counter() < end and len(latencies["via"]) < calls // 2:
            for name, (call, _) in channels.items():
                cpu0, wall0 = time.process_time(), time.perf_counter()
                batch = closed_loop(call, 1, INTERLEAVE_BATCH, duration, latencies[name])
                batch_ok, batch_errors = await asyncio.wait_for(batch, 60)
                ok[name] += batch_ok
                errors[name] += batch_errors
                cpu[name] += time.process_time() - cpu0
                wall[name] += time.perf_counter() - wall0
    finally:
        for _, close in channels.values():
            await close()
    return {
        name: summary(kind, 1, latencies[name], ok[name], errors[name], wall[name], cpu[name], None)
        for name in channels
    }


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["grpcjs"]:  # the grpc-js client (bench/grpcjs/client.js) takes the same arguments
        grpcjs.exec_node("client.js", argv[1:])
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--calls", type=int, default=1_000_000, help="stop after this many calls")
    parser.add_argument("--duration", type=float, default=3.0, help="stop after this many seconds")
    parser.add_argument("--warmup", type=int, default=500, help="calls before measuring")
    parser.add_argument("--server-pid", type=int, help="read this process's CPU time over the window")
    parser.add_argument("--via", type=int, help="also measure through this port, interleaved (C=1)")
    parser.add_argument("--workload", choices=workloads.WORKLOADS, default="unary", help="what a call is")
    parser.add_argument("--size", type=int, default=100, help="Blob data bytes per message (not unary)")
    parser.add_argument("--messages", type=int, default=100, help="messages per download/upload call")
    args = parser.parse_args(argv)
    if args.via is not None:
        both = asyncio.run(measure_interleaved(args.kind, args.port, args.via, args.calls, args.duration, args.warmup))
        print(json.dumps(both), flush=True)
        return
    if args.workload != "unary":
        row = asyncio.run(
            measure_workload(
                args.kind,
                args.port,
                args.workload,
                args.size,
                args.messages,
                args.concurrency,
                args.calls,
                args.duration,
                args.warmup,
                args.server_pid,
            )
        )
        print(json.dumps(row), flush=True)
        return
    result = asyncio.run(
        measure(args.kind, args.port, args.concurrency, args.calls, args.duration, args.warmup, args.server_pid)
    )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
