"""``rpcviz proxy``: the embedded L4 (per connection) or L7 (per call) balancer on its own, in front of any backends."""

from __future__ import annotations

import argparse
import asyncio
import math
import signal
from typing import Any

from app.commands.errors import CliError, listen_error
from app.commands.signals import shutdown_signal
from transport import Address
from transport.proxy import L4Proxy, L7Proxy


def _address(text: str) -> Address:
    try:
        return Address.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _grace(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, 0 or more, not {text!r}")
    return value


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "proxy",
        help="run the L4 (TCP) or L7 (gRPC) load balancer in front of backends",
        description="Run a proxy. --mode l4: each client CONNECTION goes to one backend, as ELB or nginx stream "
        "do. --mode l7: each CALL goes to a backend of its own, as Envoy, Linkerd or nginx grpc_pass do.",
    )
    p.add_argument(
        "--mode", choices=["l4", "l7"], default="l4", help="l4: balance connections (default); l7: balance calls"
    )
    p.add_argument(
        "--listen", type=_address, default=Address("127.0.0.1", 50050), help="HOST:PORT (default 127.0.0.1:50050)"
    )
    p.add_argument("--backend", type=_address, action="append", required=True, help="HOST:PORT of a backend (repeat)")
    p.add_argument(
        "--strategy", choices=["round_robin", "random"], default="round_robin", help="backend per connection"
    )
    p.add_argument("--seed", type=int, default=None, help="seed for --strategy random (l4)")
    p.add_argument(
        "--policy",
        choices=["round_robin", "pick_first"],
        default=None,
        help="l7 only: the upstream channel's policy, picking a backend per call (default round_robin)",
    )
    p.add_argument(
        "--grace",
        type=_grace,
        default=5.0,
        metavar="S",
        help="on SIGINT/SIGTERM, seconds open connections (l4) or running calls (l7) get to end by themselves "
        "before they are reset (default 5; a second signal resets them at once)",
    )


async def run(args: argparse.Namespace) -> int:
    if args.mode == "l7":
        return await _run_l7(args)
    if args.policy is not None:
        raise CliError("--policy is for --mode l7 (the L4 proxy balances connections: see --strategy)", 2)
    try:
        proxy = L4Proxy(
            args.backend, host=args.listen.host, port=args.listen.port, strategy=args.strategy, seed=args.seed
        )
    except ValueError as exc:
        raise CliError(str(exc), 2) from None
    try:
        address = await proxy.start()
    except OSError as exc:
        raise listen_error("the proxy", str(args.listen), exc) from None
    backends = ", ".join(str(b) for b in args.backend)
    stop = shutdown_signal()  # before the line below: a script may signal as soon as it reads it
    print(f"L4 proxy on {address} -> {backends} ({args.strategy} per connection)", flush=True)
    sig = await stop
    await _drain(proxy, args.grace, sig)
    for stats in proxy.backends:
        print(
            f"  {stats.address}: {stats.connections_total} connections, "
            f"{stats.bytes_up} bytes up, {stats.bytes_down} bytes down, {stats.connect_failures} refused",
            flush=True,
        )
    return 0


async def _run_l7(args: argparse.Namespace) -> int:
    """The L7 proxy: one upstream Channel over the backends, a backend picked per call."""
    policy = args.policy or "round_robin"
    try:
        proxy = L7Proxy(args.backend, policy, host=args.listen.host, port=args.listen.port)
    except ValueError as exc:
        raise CliError(str(exc), 2) from None
    try:
        address = await proxy.start()
    except OSError as exc:
        await proxy.stop()
        raise listen_error("the proxy", str(args.listen), exc) from None
    backends = ", ".join(str(b) for b in args.backend)
    stop = shutdown_signal()  # before the line below: a script may signal as soon as it reads it
    print(f"L7 proxy on {address} -> {backends} ({policy} per call)", flush=True)
    sig = await stop
    connections = proxy.server.stats.connections_total
    await _drain(proxy, args.grace, sig, "L7", "running calls")
    for stats in proxy.backends:
        counts = ", ".join(f"{n} {name}" for name, n in stats.status_counts().items()) or "none"
        print(f"  {stats.address}: {stats.calls_total} calls ({counts})", flush=True)
    print(
        f"  {connections} client connections, {proxy.calls_unrouted} calls no backend took",
        flush=True,
    )
    return 0


async def _drain(
    proxy: L4Proxy | L7Proxy, grace: float, sig: signal.Signals, mode: str = "L4", what: str = "open connections"
) -> None:
    """Stop with ``grace`` (open connections or calls end by themselves); a second SIGINT/SIGTERM resets them at once."""
    second = shutdown_signal()  # installed before we say a second signal works
    print(f"{mode} proxy: {sig.name}, stopping ({what} get {grace:g}s; signal again to reset them)", flush=True)
    stopping = asyncio.create_task(proxy.stop(grace=grace))
    try:
        waits: set[asyncio.Future[Any]] = {stopping, second}
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if not stopping.done():
            await proxy.stop()  # grace 0: reset what is left; the first stop() returns with it
        await stopping
    finally:
        second.cancel()  # removes its handlers
