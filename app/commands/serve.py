"""``rpcviz serve``: one Greeter server, stopped gracefully by SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
from typing import Any

from app.cluster.load import LoadModel
from app.commands.args import at_least, metadata_text, non_negative_seconds, positive_seconds
from app.commands.errors import CliError, listen_error
from app.commands.load_report import LoadSampler
from app.commands.serving import add_health_and_reflection
from app.commands.signals import shutdown_signal
from app.greeter.service import Greeter
from transport import Server, ServerOptions
from transport.orca import OrcaService, ServerMetricsRecorder, enable_call_metrics
from transport.server import ServerStats

#: Workers of the load model when --service-time is given without --workers (the visualizer's pods').
DEFAULT_WORKERS = 4

#: The gRFC A9 connection flags, as (flag, ServerOptions field).
KEEPALIVE_FLAGS = (
    ("--max-connection-idle", "max_connection_idle"),
    ("--max-connection-age", "max_connection_age"),
    ("--max-connection-age-grace", "max_connection_age_grace"),
)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="run one Greeter server (a pod)", description="Run one helloworld Greeter server.")
    p.add_argument("--port", type=int, default=50051, help="TCP port (0 picks a free one; default 50051)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument(
        "--name",
        type=metadata_text,
        default="pod-1",
        help="the name the server reports to callers, printable ASCII (default pod-1)",
    )
    p.add_argument(
        "--grace",
        type=non_negative_seconds,
        default=5.0,
        metavar="S",
        help="seconds in-flight calls get on shutdown (default 5)",
    )
    load = p.add_argument_group("load model and load reports (ORCA, gRFC A51)")
    load.add_argument(
        "--service-time",
        type=positive_seconds,
        metavar="S",
        help="each greet holds one of --workers workers for S seconds, queueing while all are busy (the "
        "visualizer's pod load model); default: none, greets answer at once",
    )
    load.add_argument(
        "--workers",
        type=at_least(1),
        metavar="N",
        help=f"workers of the load model (with --service-time; default {DEFAULT_WORKERS})",
    )
    load.add_argument(
        "--orca",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="report this server's load: an endpoint-load-metrics-bin trailer (an xds.data.orca.v3.OrcaLoadReport) "
        "on every response, and the out-of-band xds.service.orca.v3.OpenRcaService stream. It carries "
        "cpu_utilization (this process's CPU time over wall time: a fraction of one core), rps_fractional and "
        "eps (calls and errors per second) and, with --service-time, utilization['busy'] (the workers' busy "
        "fraction). On by default",
    )
    load.add_argument(
        "--orca-interval",
        type=positive_seconds,
        default=1.0,
        metavar="S",
        help="sample the load every S seconds; also the shortest out-of-band report interval a client gets "
        "(default 1; gRPC's own services default to 30)",
    )
    conn = p.add_argument_group("connection management (gRFC A9; each off by default, as in grpc)")
    conn.add_argument(
        "--max-connection-idle",
        type=positive_seconds,
        metavar="S",
        help="send a connection with no call for S seconds away (GOAWAY), so idle clients reconnect",
    )
    conn.add_argument(
        "--max-connection-age",
        type=positive_seconds,
        metavar="S",
        help="send every connection away after S seconds (±10%% jitter), so clients behind an L4 balancer "
        "reconnect and load spreads",
    )
    conn.add_argument(
        "--max-connection-age-grace",
        type=positive_seconds,
        metavar="S",
        help="after --max-connection-age, give its calls S more seconds before closing (default: as long as needed)",
    )
    conn.add_argument(
        "--max-connections",
        type=at_least(1),
        metavar="N",
        help="serve at most N connections at once; more wait to be accepted (default: from the fd limit)",
    )


def options(args: argparse.Namespace) -> ServerOptions:
    """The ServerOptions the flags ask for."""
    if args.max_connection_age_grace is not None and args.max_connection_age is None:
        raise CliError("--max-connection-age-grace needs --max-connection-age", 2)
    return ServerOptions(
        max_connection_idle=args.max_connection_idle,
        max_connection_age=args.max_connection_age,
        max_connection_age_grace=args.max_connection_age_grace,
        max_connections=args.max_connections,
    )


def describe_options(args: argparse.Namespace) -> str:
    """The connection flags that were given, for the start-up output ('' when none)."""
    given = [f"{flag[2:]} {getattr(args, field):g}s" for flag, field in KEEPALIVE_FLAGS if getattr(args, field)]
    if args.max_connections is not None:
        given.append(f"max-connections {args.max_connections}")
    return ", ".join(given)


def stopped_line(name: str, stats: ServerStats) -> str:
    """E.g. ``pod-1: stopped after 2 calls (OK 2)``."""
    counts = ", ".join(f"{code} {n}" for code, n in stats.status_counts().items())
    noun = "call" if stats.calls_served == 1 else "calls"
    return f"{name}: stopped after {stats.calls_served} {noun}" + (f" ({counts})" if counts else "")


def load_model(args: argparse.Namespace) -> LoadModel | None:
    """The load model the flags ask for, or None."""
    if args.service_time is None:
        if args.workers is not None:
            raise CliError("--workers needs --service-time", 2)
        return None
    return LoadModel(args.service_time, args.workers or DEFAULT_WORKERS)


def describe_load(args: argparse.Namespace) -> str:
    """The load model and the load reports, for the start-up output ('' when neither)."""
    parts = []
    if args.service_time is not None:
        parts.append(f"service time {args.service_time * 1000:g}ms on {args.workers or DEFAULT_WORKERS} workers")
    if args.orca:
        busy = ", busy" if args.service_time is not None else ""
        parts.append(f"ORCA load reports (cpu, rps, eps{busy}) sampled every {args.orca_interval:g}s")
    return ", ".join(parts)


async def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise listen_error("the server", f"{args.host}:{args.port}", OSError(0, "port must be 0-65535"))
    server = Server(name=args.name, options=options(args))
    model = load_model(args)
    server.add_service(Greeter(work=model.work if model is not None else None))
    health = add_health_and_reflection(server)
    orca: OrcaService | None = None
    sampler: LoadSampler | None = None
    if args.orca:
        recorder = ServerMetricsRecorder()
        enable_call_metrics(server, recorder)
        orca = OrcaService(recorder, min_report_interval=args.orca_interval)
        server.add_service(orca)
        sampler = LoadSampler(recorder, server.stats, model)
    try:
        address = await server.start(args.host, args.port)
    except OSError as exc:
        raise listen_error("the server", f"{args.host}:{args.port}", exc) from None
    if sampler is not None:
        sampler.start(args.orca_interval)
    stop = shutdown_signal()  # before the line below: a script may signal as soon as it reads it
    print(f"{args.name} serving helloworld.Greeter on {address}", flush=True)
    if connection_options := describe_options(args):
        print(f"{args.name}: {connection_options}", flush=True)
    if load := describe_load(args):
        print(f"{args.name}: {load}", flush=True)
    sig = await stop
    print(f"{args.name}: {sig.name}, stopping (in-flight calls get {args.grace:g}s)", flush=True)
    health.shutdown()  # NOT_SERVING before the drain starts: probes and Watch clients see it
    if orca is not None:
        orca.shutdown()  # the out-of-band streams end now: the drain does not wait for them
    await server.stop(grace=args.grace)
    if sampler is not None:
        sampler.stop()
    print(stopped_line(args.name, server.stats), flush=True)
    return 0
