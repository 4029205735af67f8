"""The Bench workloads of ``bench.clients`` (echo, download, upload, pingpong) for ours, grpclib and grpcio.

Each framework gets a :class:`BenchClient` with the same four operations; :func:`operations` turns
one into a closed loop's calls (one per concurrent worker; a ping-pong worker holds its own stream), and
:func:`closed_loop` runs them. A call returns the messages it moved, and raises :class:`WrongAnswer`
when what came back is not what was asked for.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bench.bench_service import DOWNLOAD, ECHO, PING_PONG, UPLOAD, blob
from bench.protos.bench_pb2 import Blob, DownloadRequest, UploadSummary

WORKLOADS = ("unary", "echo", "download", "upload", "pingpong")
#: Connecting longer than this fails the run.
CONNECT_TIMEOUT = 10.0

#: One call of a closed loop: the messages it moved.
Op = Callable[[], Awaitable[int]]


class WrongAnswer(Exception):
    """The server's answer does not match the request (sizes, counts)."""


class PingPong(ABC):
    """One open bidi stream: a Blob out, the same Blob back."""

    @abstractmethod
    async def round_trip(self, request: Blob) -> Blob: ...

    @abstractmethod
    async def close(self) -> None:
        """Half-close, then read to the end of the stream."""


class BenchClient(ABC):
    """One channel to a Bench server."""

    @abstractmethod
    async def echo(self, request: Blob) -> Blob: ...

    @abstractmethod
    async def download(self, request: DownloadRequest) -> tuple[int, int]:
        """(messages received, data bytes of the last)."""

    @abstractmethod
    async def upload(self, request: Blob, messages: int) -> UploadSummary: ...

    @abstractmethod
    async def ping_pong(self) -> PingPong: ...

    @abstractmethod
    async def close(self) -> None: ...


# --- ours -----------------------------------------------------------------------------


class _OursPingPong(PingPong):
    def __init__(self, call: Any) -> None:
        self._call = call

    async def round_trip(self, request: Blob) -> Blob:
        await self._call.write(request)
        reply: Blob = await self._call.read()
        return reply

    async def close(self) -> None:
        from transport import EOF

        await self._call.done_writing()
        while await self._call.read() is not EOF:
            pass


class OursClient(BenchClient):
    def __init__(self, channel: Any) -> None:
        from bench.protos.bench_rpcviz import BenchStub

        self._channel = channel
        self._stub = BenchStub(channel)

    @classmethod
    async def connect(cls, port: int) -> OursClient:
        from transport import Channel, ConnectivityState

        channel = Channel.dial(f"127.0.0.1:{port}", "pick_first")
        await channel.wait_for_state(ConnectivityState.READY, timeout=CONNECT_TIMEOUT)
        return cls(channel)

    async def echo(self, request: Blob) -> Blob:
        return await self._stub.Echo(request)

    async def download(self, request: DownloadRequest) -> tuple[int, int]:
        n = last = 0
        async for reply in self._stub.Download(request):
            n += 1
            last = len(reply.data)
        return n, last

    async def upload(self, request: Blob, messages: int) -> UploadSummary:
        return await self._stub.Upload(itertools.repeat(request, messages))

    async def ping_pong(self) -> PingPong:
        return _OursPingPong(self._stub.PingPong())

    async def close(self) -> None:
        await self._channel.close(grace=0)


# --- grpclib --------------------------------------------------------------------------


class _GrpclibPingPong(PingPong):
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def round_trip(self, request: Blob) -> Blob:
        await self._stream.send_message(request)
        reply: Blob | None = await self._stream.recv_message()
        if reply is None:
            raise WrongAnswer("the ping-pong stream ended early")
        return reply

    async def close(self) -> None:
        await self._stream.end()
        while await self._stream.recv_message() is not None:
            pass
        await self._stream.__aexit__(None, None, None)


class GrpclibClient(BenchClient):
    def __init__(self, port: int) -> None:
        from grpclib.client import Channel, StreamStreamMethod, StreamUnaryMethod, UnaryStreamMethod, UnaryUnaryMethod

        self._channel = channel = Channel("127.0.0.1", port)
        self._echo = UnaryUnaryMethod(channel, ECHO, Blob, Blob)
        self._download = UnaryStreamMethod(channel, DOWNLOAD, DownloadRequest, Blob)
        self._upload = StreamUnaryMethod(channel, UPLOAD, Blob, UploadSummary)
        self._ping_pong = StreamStreamMethod(channel, PING_PONG, Blob, Blob)

    async def echo(self, request: Blob) -> Blob:
        reply: Blob = await self._echo(request)
        return reply

    async def download(self, request: DownloadRequest) -> tuple[int, int]:
        n = last = 0
        async with self._download.open() as stream:
            await stream.send_message(request, end=True)
            async for reply in stream:
                n += 1
                last = len(reply.data)
        return n, last

    async def upload(self, request: Blob, messages: int) -> UploadSummary:
        async with self._upload.open() as stream:
            for _ in range(messages):
                await stream.send_message(request)
            await stream.end()
            reply: UploadSummary | None = await stream.recv_message()
        if reply is None:
            raise WrongAnswer("no upload summary")
        return reply

    async def ping_pong(self) -> PingPong:
        stream = self._ping_pong.open()
        await stream.__aenter__()
        await stream.send_request()
        return _GrpclibPingPong(stream)

    async def close(self) -> None:
        self._channel.close()


# --- grpcio ---------------------------------------------------------------------------


class _GrpcioPingPong(PingPong):
    def __init__(self, call: Any) -> None:
        self._call = call

    async def round_trip(self, request: Blob) -> Blob:
        await self._call.write(request)
        reply: Any = await self._call.read()
        if not isinstance(reply, Blob):
            raise WrongAnswer("the ping-pong stream ended early")
        return reply

    async def close(self) -> None:
        import grpc

        await self._call.done_writing()
        while await self._call.read() is not grpc.aio.EOF:
            pass


class GrpcioClient(BenchClient):
    def __init__(self, channel: Any) -> None:
        self._channel = channel
        blob_out, blob_in = Blob.SerializeToString, Blob.FromString
        self._echo = channel.unary_unary(ECHO, request_serializer=blob_out, response_deserializer=blob_in)
        self._download = channel.unary_stream(
            DOWNLOAD, request_serializer=DownloadRequest.SerializeToString, response_deserializer=blob_in
        )
        self._upload = channel.stream_unary(
            UPLOAD, request_serializer=blob_out, response_deserializer=UploadSummary.FromString
        )
        self._ping_pong = channel.stream_stream(PING_PONG, request_serializer=blob_out, response_deserializer=blob_in)

    @classmethod
    async def connect(cls, port: int) -> GrpcioClient:
        import grpc

        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        await asyncio.wait_for(channel.channel_ready(), CONNECT_TIMEOUT)
        return cls(channel)

    async def echo(self, request: Blob) -> Blob:
        reply: Blob = await self._echo(request)
        return reply

    async def download(self, request: DownloadRequest) -> tuple[int, int]:
        n = last = 0
        async for reply in self._download(request):
            n += 1
            last = len(reply.data)
        return n, last

    async def upload(self, request: Blob, messages: int) -> UploadSummary:
        reply: UploadSummary = await self._upload(itertools.repeat(request, messages))
        return reply

    async def ping_pong(self) -> PingPong:
        return _GrpcioPingPong(self._ping_pong())

    async def close(self) -> None:
        await self._channel.close(None)


async def connect(kind: str, port: int) -> BenchClient:
    if kind == "ours":
        return await OursClient.connect(port)
    if kind == "grpclib":
        return GrpclibClient(port)
    if kind == "grpcio":
        return await GrpcioClient.connect(port)
    raise ValueError(f"no Bench client for {kind!r}")


# --- the closed loop --------------------------------------------------------------------


async def operations(
    client: BenchClient, workload: str, size: int, messages: int, concurrency: int
) -> tuple[list[Op], list[PingPong]]:
    """One call per worker for ``workload``, and the streams they hold (ping-pong opens one per worker)."""
    request = blob(size)
    if workload == "echo":

        async def echo() -> int:
            reply = await client.echo(request)
            if len(reply.data) != size:
                raise WrongAnswer(f"echo of {size} bytes came back with {len(reply.data)}")
            return 1

        return [echo] * concurrency, []
    if workload == "download":
        ask = DownloadRequest(messages=messages, size=size)

        async def download() -> int:
            n, last = await client.download(ask)
            if n != messages or last != size:
                raise WrongAnswer(f"download of {messages} × {size} bytes gave {n} messages, the last {last} bytes")
            return n

        return [download] * concurrency, []
    if workload == "upload":
        expected = (messages, messages * size)

        async def upload() -> int:
            summary = await client.upload(request, messages)
            if (summary.messages, summary.bytes) != expected:
                raise WrongAnswer(f"upload of {expected} was counted as {(summary.messages, summary.bytes)}")
            return messages

        return [upload] * concurrency, []
    if workload == "pingpong":
        streams = [await client.ping_pong() for _ in range(concurrency)]
        return [_round_trips(stream, request, size) for stream in streams], streams
    raise ValueError(f"unknown workload {workload!r}")


def _round_trips(stream: PingPong, request: Blob, size: int) -> Op:
    async def round_trip() -> int:
        reply = await stream.round_trip(request)
        if len(reply.data) != size:
            raise WrongAnswer(f"ping of {size} bytes came back with {len(reply.data)}")
        return 1

    return round_trip


async def closed_loop(
    ops: Sequence[Op], calls: int, duration: float, latencies: list[int] | None
) -> tuple[int, int, int]:
    """Each op in its own worker, until ``calls`` started or ``duration`` passed; (ok, errors, messages)."""
    deadline = time.perf_counter() + duration
    started = ok = errors = moved = 0
    clock = time.perf_counter_ns

    async def worker(op: Op) -> None:
        nonlocal started, ok, errors, moved
        while started < calls and time.perf_counter() < deadline:
            started += 1
            t0 = clock()
            try:
                n = await op()  # bounded by the wait_for around the whole loop
            except Exception:
                errors += 1
                if errors > 100:
                    raise
                continue
            t1 = clock()
            if latencies is not None:
                latencies.append(t1 - t0)
            ok += 1
            moved += n

    await asyncio.gather(*(worker(op) for op in ops))
    return ok, errors, moved
