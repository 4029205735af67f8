"""One server (ours, grpclib or grpcio), or our L4 proxy, in this process.

``python -m bench.servers KIND [--backend PORT]`` binds 127.0.0.1:0, prints ``READY <port>`` and serves
until SIGTERM/SIGINT. Every kind answers ``Hello, <name>!`` like ``app.greeter.Greeter``, and serves
``rpcviz.bench.Bench`` (:mod:`bench.bench_service`) for the streaming and size rows.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from app.greeter.helloworld_pb2 import HelloReply, HelloRequest
from bench import bench_service, grpcjs, profiling

SAY_HELLO = "/helloworld.Greeter/SayHello"
KINDS = ("ours", "grpclib", "grpcio", "l4proxy", "ours+l4proxy")

Stopper = Callable[[], Awaitable[None]]


async def start_ours() -> tuple[int, Stopper]:
    from app.greeter.service import Greeter
    from transport import Server

    server = Server()
    server.add_service(Greeter())
    server.add_service(bench_service.ours_servicer())
    address = await server.start("127.0.0.1", 0)
    return address.port, lambda: server.stop(grace=0.5)


async def start_grpclib() -> tuple[int, Stopper]:
    """grpclib's low-level API: a ``__mapping__`` of method path to Handler (what its generated base does)."""
    from grpclib.const import Cardinality, Handler
    from grpclib.server import Server, Stream

    class Greeter:
        async def say_hello(self, stream: Stream[HelloRequest, HelloReply]) -> None:
            request = await stream.recv_message()
            assert request is not None
            await stream.send_message(HelloReply(message=f"Hello, {request.name}!"))

        def __mapping__(self) -> dict[str, Handler]:
            return {SAY_HELLO: Handler(self.say_hello, Cardinality.UNARY_UNARY, HelloRequest, HelloReply)}

    server = Server([Greeter(), bench_service.grpclib_handler()])
    # proto=IPPROTO_TCP, or grpclib (and asyncio) skip TCP_NODELAY on accepted sockets: 40 ms delayed ACKs.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    await server.start(sock=sock)

    async def stop() -> None:
        server.close()
        await server.wait_closed()

    return sock.getsockname()[1], stop


async def start_grpcio() -> tuple[int, Stopper]:
    import grpc

    async def say_hello(request: HelloRequest, context: Any) -> HelloReply:
        return HelloReply(message=f"Hello, {request.name}!")

    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(
        say_hello, request_deserializer=HelloRequest.FromString, response_serializer=HelloReply.SerializeToString
    )
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler("helloworld.Greeter", {"SayHello": handler}),
            bench_service.grpcio_handler(),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return port, lambda: server.stop(0.5)


async def start_l4proxy(backend: int) -> tuple[int, Stopper]:
    from transport import Address
    from transport.proxy import L4Proxy

    proxy = L4Proxy([Address("127.0.0.1", backend)])
    address = await proxy.start()
    return address.port, proxy.stop


async def start_ours_behind_embedded_proxy() -> tuple[list[int], Stopper]:
    """Our server and an L4Proxy in front of it on one event loop, as rpcviz's cluster runs them."""
    server_port, stop_server = await start_ours()
    proxy_port, stop_proxy = await start_l4proxy(server_port)

    async def stop() -> None:
        await stop_proxy()
        await stop_server()

    return [proxy_port, server_port], stop


async def serve(kind: str, backend: int | None) -> None:
    ports: list[int] = []
    if kind == "ours+l4proxy":
        ports, stop = await start_ours_behind_embedded_proxy()
        port = ports[0]
    elif kind == "l4proxy":
        if backend is None:
            raise SystemExit("l4proxy needs --backend PORT")
        port, stop = await start_l4proxy(backend)
    else:
        port, stop = await {"ours": start_ours, "grpclib": start_grpclib, "grpcio": start_grpcio}[kind]()
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    profiling.install_server_hooks(loop)
    print(f"READY {' '.join(str(p) for p in ports or [port])}", flush=True)
    try:
        await done.wait()
    finally:
        await asyncio.wait_for(stop(), 5)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["grpcjs"]:  # the grpc-js server: bench/grpcjs/server.js
        grpcjs.exec_node("server.js", argv[1:])
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--backend", type=int, help="the backend port (l4proxy only)")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.kind, args.backend))


if __name__ == "__main__":
    main()
