"""``rpcviz interop-server``: grpc's interop TestService, stopped gracefully by SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
from typing import Any

from app.commands.errors import listen_error
from app.commands.plaintext import add_use_tls, require_plaintext
from app.commands.signals import shutdown_signal
from transport import Server


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "interop-server",
        help="serve grpc.testing.TestService for grpc's interop cases",
        description="Serve grpc.testing.TestService as grpc's interop-test-descriptions.md specifies.",
    )
    p.add_argument("--port", type=int, required=True, help="TCP port (0 picks a free one)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--grace", type=float, default=5.0, help="seconds in-flight calls get on shutdown (default 5)")
    add_use_tls(p)


async def run(args: argparse.Namespace) -> int:
    require_plaintext(args)
    if not 0 <= args.port <= 65535:
        raise listen_error("the interop server", f"{args.host}:{args.port}", OSError(0, "port must be 0-65535"))
    from app.interop.service import TestService  # the protos load only for this command

    server = Server(name="interop")
    server.add_service(TestService())
    try:
        address = await server.start(args.host, args.port)
    except OSError as exc:
        raise listen_error("the interop server", f"{args.host}:{args.port}", exc) from None
    stop = shutdown_signal()  # before the line below: a test may signal as soon as it reads it
    print(f"interop server on {address}", flush=True)
    sig = await stop
    print(f"interop server: {sig.name}, stopping (in-flight calls get {args.grace:g}s)", flush=True)
    await server.stop(grace=args.grace)
    print(f"interop server: stopped after {server.stats.calls_served} calls", flush=True)
    return 0
