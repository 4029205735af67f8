"""``rpcviz.bench.Bench`` served alike by ours, grpclib and grpcio (bench/protos/bench.proto).

Echo returns the request itself; Download sends one prebuilt Blob of ``size`` bytes ``messages``
times; Upload counts messages and data bytes; PingPong answers each Blob with itself. Every framework
does exactly this, so the rows measure the framework, not the handler.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from bench.protos.bench_pb2 import Blob, DownloadRequest, UploadSummary

SERVICE = "rpcviz.bench.Bench"
ECHO = f"/{SERVICE}/Echo"
DOWNLOAD = f"/{SERVICE}/Download"
UPLOAD = f"/{SERVICE}/Upload"
PING_PONG = f"/{SERVICE}/PingPong"


def blob(size: int) -> Blob:
    """A Blob of ``size`` data bytes."""
    return Blob(data=b"\x5a" * size)


def ours_servicer() -> Any:
    """Our servicer, from the generated base class."""
    from bench.protos.bench_rpcviz import BenchServicer
    from transport.server import ServicerContext

    class Bench(BenchServicer):
        async def Echo(self, request: Blob, context: ServicerContext) -> Blob:
            return request

        async def Download(self, request: DownloadRequest, context: ServicerContext) -> AsyncIterator[Blob]:
            reply = blob(request.size)
            for _ in range(request.messages):
                yield reply

        async def Upload(self, request_iterator: AsyncIterator[Blob], context: ServicerContext) -> UploadSummary:
            messages = size = 0
            async for request in request_iterator:
                messages += 1
                size += len(request.data)
            return UploadSummary(messages=messages, bytes=size)

        async def PingPong(
            self, request_iterator: AsyncIterator[Blob], context: ServicerContext
        ) -> AsyncIterator[Blob]:
            async for request in request_iterator:
                yield request

    return Bench()


def grpclib_handler() -> Any:
    """grpclib's low-level API: a ``__mapping__`` of method path to Handler, as its generated base has."""
    from grpclib.const import Cardinality, Handler
    from grpclib.server import Stream

    class Bench:
        async def echo(self, stream: Stream[Blob, Blob]) -> None:
            request = await stream.recv_message()
            assert request is not None
            await stream.send_message(request)

        async def download(self, stream: Stream[DownloadRequest, Blob]) -> None:
            request = await stream.recv_message()
            assert request is not None
            reply = blob(request.size)
            for _ in range(request.messages):
                await stream.send_message(reply)

        async def upload(self, stream: Stream[Blob, UploadSummary]) -> None:
            messages = size = 0
            async for request in stream:
                messages += 1
                size += len(request.data)
            await stream.send_message(UploadSummary(messages=messages, bytes=size))

        async def ping_pong(self, stream: Stream[Blob, Blob]) -> None:
            async for request in stream:
                await stream.send_message(request)

        def __mapping__(self) -> dict[str, Handler]:
            return {
                ECHO: Handler(self.echo, Cardinality.UNARY_UNARY, Blob, Blob),
                DOWNLOAD: Handler(self.download, Cardinality.UNARY_STREAM, DownloadRequest, Blob),
                UPLOAD: Handler(self.upload, Cardinality.STREAM_UNARY, Blob, UploadSummary),
                PING_PONG: Handler(self.ping_pong, Cardinality.STREAM_STREAM, Blob, Blob),
            }

    return Bench()


def grpcio_handler() -> Any:
    """grpcio (grpc.aio): a generic handler of the four methods."""
    import grpc

    async def echo(request: Blob, context: Any) -> Blob:
        return request

    async def download(request: DownloadRequest, context: Any) -> AsyncIterator[Blob]:
        reply = blob(request.size)
        for _ in range(request.messages):
            yield reply

    async def upload(request_iterator: AsyncIterator[Blob], context: Any) -> UploadSummary:
        messages = size = 0
        async for request in request_iterator:
            messages += 1
            size += len(request.data)
        return UploadSummary(messages=messages, bytes=size)

    async def ping_pong(request_iterator: AsyncIterator[Blob], context: Any) -> AsyncIterator[Blob]:
        async for request in request_iterator:
            yield request

    blob_in, blob_out = Blob.FromString, Blob.SerializeToString
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Echo": grpc.unary_unary_rpc_method_handler(echo, blob_in, blob_out),
            "Download": grpc.unary_stream_rpc_method_handler(download, DownloadRequest.FromString, blob_out),
            "Upload": grpc.stream_unary_rpc_method_handler(upload, blob_in, UploadSummary.SerializeToString),
            "PingPong": grpc.stream_stream_rpc_method_handler(ping_pong, blob_in, blob_out),
        },
    )
