"""``rpcviz serve``: one Greeter server, stopped gracefully by SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
from typing import Any

from app.commands.errors import listen_error
from app.commands.serving import add_health_and_reflection
from app.commands.signals import wait_for_shutdown_signal
from app.greeter.service import Greeter
from transport import Server


def add_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="run one Greeter server (a pod)", description="Run one helloworld Greeter server.")
    p.add_argument("--port", type=int, default=50051, help="TCP port (0 picks a free one; default 50051)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--name", default="pod-1", help="the name the server reports to callers (default pod-1)")
    p.add_argument("--grace", type=float, default=5.0, help="seconds in-flight calls get on shutdown (default 5)")


async def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise listen_error("the server", f"{args.host}:{args.port}", OSError(0, "port must be 0-65535"))
    server = Server(name=args.name)
    server.add_service(Greeter())
    health = add_health_and_reflection(server)
    try:
        address = await server.start(args.host, args.port)
    except OSError as exc:
        raise listen_error("the server", f"{args.host}:{args.port}", exc) from None
    print(f"{args.name} serving helloworld.Greeter on {address}", flush=True)
    sig = await wait_for_shutdown_signal()
    print(f"{args.name}: {sig.name}, stopping (in-flight calls get {args.grace:g}s)", flush=True)
    health.shutdown()  # NOT_SERVING before the drain starts: probes and Watch clients see it
    await server.stop(grace=args.grace)
    stats = server.stats
    print(f"{args.name}: stopped after {stats.calls_served} calls {stats.status_counts() or ''}".rstrip(), flush=True)
    return 0
