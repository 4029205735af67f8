"""``rpcviz cluster up``: N ``rpcviz serve`` processes behind a real L4 (or L7) balancer, on this machine.

The scene's cluster as separate processes: pods are ``rpcviz serve`` processes, each on a loopback
"pod IP" of its own (127.0.0.11, 127.0.0.12, ... on one port, as behind a headless Service), and
the VIP is our ``rpcviz proxy`` or nginx (``stream``: L4, a pod per connection; ``http`` +
``grpc_pass``: L7, a pod per request). It prints the VIP, the pods and a ``dns:///`` name for them,
stays in the foreground, and on Ctrl-C/SIGTERM stops everything it started, balancer first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import ipaddress
import re
import shutil
import signal
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.commands import nginx
from app.commands.args import at_least, non_negative_seconds
from app.commands.children import Child, Children, python_argv
from app.commands.errors import CliError, listen_error
from app.commands.signals import shutdown_signal
from app.greeter.stub import GreeterStub
from transport import Address, Channel, RpcError
from transport.client.hosts import HOSTS_ENV
from transport.health import health_pb2
from transport.health.health_rpcviz import HealthStub

#: Pod K's IP with --pod-ips: 127.0.0.(10+K).
FIRST_POD_IP = ipaddress.IPv4Address("127.0.0.11")
MAX_PODS = 200
#: The headless Service's name in the hosts file cluster up writes.
HEADLESS_NAME = "pods.rpcviz.test"
VIP_HOST = "127.0.0.1"
#: How long a pod, the balancer and the first call through the VIP get to come up.
STARTUP_TIMEOUT = 15.0
#: Beyond the grace period, how long a child gets to exit before its process group is killed.
STOP_MARGIN = 5.0
BALANCERS = {
    "builtin": "rpcviz proxy (L4: a pod per connection)",
    "nginx": "nginx stream (L4: a pod per connection)",
    "nginx-l7": "nginx grpc_pass (L7: a pod per request)",
}
#: How nginx marks the error that stopped it.
EMERG = "[emerg]"
_SERVING = re.compile(r" on (\S+:\d+)$")
_PROXY = re.compile(r"^L4 proxy on (\S+:\d+) ")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "cluster",
        help="run pods as real processes behind a real balancer (cluster up)",
        description="Run the scene's cluster as processes on this machine.",
    )
    verbs = p.add_subparsers(dest="cluster_command", metavar="up", required=True, parser_class=type(p))
    up = verbs.add_parser(
        "up",
        help="start N rpcviz serve pods and a balancer in front; Ctrl-C stops them all",
        description="Start N `rpcviz serve` pods and an L4 balancer in front (the VIP): our `rpcviz proxy` or nginx "
        "stream, or nginx grpc_pass as an L7 one. Prints the VIP, the pods and a dns:/// name for them, and "
        "stops everything it started on Ctrl-C or SIGTERM.",
    )
    up.add_argument("--pods", type=at_least(1), default=4, help=f"how many pods (default 4, at most {MAX_PODS})")
    up.add_argument(
        "--balancer",
        choices=list(BALANCERS),
        default="builtin",
        help="the VIP: " + "; ".join(f"{name}: {what}" for name, what in BALANCERS.items()),
    )
    up.add_argument(
        "--base-port",
        type=at_least(0),
        default=50050,
        metavar="P",
        help="the VIP listens on 127.0.0.1:P, the pods on port P+1 (default 50050; 0 picks free ports)",
    )
    up.add_argument(
        "--pod-ips",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="pod K binds 127.0.0.(10+K) on one port, as pod IPs behind a headless Service (default); "
        "--no-pod-ips: every pod on 127.0.0.1, ports P+1..P+N",
    )
    up.add_argument(
        "--strategy",
        choices=["round_robin", "random"],
        default="round_robin",
        help="how the balancer picks a pod per connection (L4) or per request (L7) (default round_robin)",
    )
    up.add_argument("--seed", type=int, default=None, help="seed for --strategy random (builtin balancer)")
    up.add_argument(
        "--grace",
        type=non_negative_seconds,
        default=5.0,
        metavar="S",
        help="on Ctrl-C/SIGTERM, seconds the balancer's connections and the pods' calls get (default 5)",
    )
    up.add_argument(
        "--service-time",
        type=non_negative_seconds,
        default=0.02,
        metavar="S",
        help="each pod serves a greet in S seconds on 4 workers, as the app's pods do, and reports how busy "
        "they are in its ORCA load reports (default 0.02; 0: answer at once, no busy figure)",
    )
    up.add_argument(
        "--nginx", metavar="PATH", default=None, help="the nginx binary (default: nginx on PATH or in sbin)"
    )


@dataclass(frozen=True, slots=True)
class Plan:
    """Where everything listens (port 0: the OS picks)."""

    vip: Address
    pods: list[Address]
    pod_ips: bool


def plan(args: argparse.Namespace) -> Plan:
    if args.pods > MAX_PODS:
        raise CliError(f"--pods: at most {MAX_PODS}, got {args.pods}", 2)
    base = args.base_port
    if base and base + args.pods > 65535:
        raise CliError(f"--base-port {base} leaves no room for {args.pods} pods below port 65536", 2)
    if args.seed is not None and (args.balancer != "builtin" or args.strategy != "random"):
        raise CliError("--seed is for --balancer builtin --strategy random", 2)
    if args.pod_ips:
        port = base + 1 if base else 0
        pods = [Address(str(FIRST_POD_IP + k), port) for k in range(args.pods)]
    else:
        pods = [Address(VIP_HOST, base + 1 + k if base else 0) for k in range(args.pods)]
    return Plan(Address(VIP_HOST, base), pods, args.pod_ips)


async def run(args: argparse.Namespace) -> int:
    layout = plan(args)
    build = await nginx.probe(args.nginx) if args.balancer != "builtin" else None
    if layout.vip.port:
        _check_free(layout.vip)  # before any pod starts: the common "already running" case
    stop = shutdown_signal()  # before anything starts: a signal during start-up stops what started
    workdir = Path(tempfile.mkdtemp(prefix="rpcviz-cluster-"))
    children = Children()
    stopping = False
    try:
        startup = asyncio.ensure_future(_start(args, layout, build, workdir, children))
        first: set[asyncio.Future[Any]] = {startup, stop}
        await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
        if not startup.done():
            startup.cancel()
            with contextlib.suppress(asyncio.CancelledError, CliError):
                await startup
            sig = stop.result()
            raise CliError(f"{sig.name} during start-up: stopped what had started", 128 + sig)
        pods, balancer = startup.result()
        sig = await _until_stopped(stop, [balancer, *pods])
        print(f"cluster up: {sig.name}, stopping the balancer, then the pods", flush=True)
        stopping = True
        return 0
    finally:
        stop.cancel()
        await _stop_all(children, args.grace, balancer_kind=args.balancer)
        shutil.rmtree(workdir, ignore_errors=True)
        if stopping:
            print(f"cluster up: everything stopped; removed {workdir}", flush=True)


async def _until_stopped(stop: asyncio.Future[signal.Signals], children: list[Child]) -> signal.Signals:
    """Print the children's output until the signal comes; CliError if one of them exits first."""
    for child in children:
        child.forward()
    exits: set[asyncio.Future[Any]] = {asyncio.ensure_future(child.proc.wait()) for child in children}
    try:
        await asyncio.wait({stop, *exits}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in exits:
            wait.cancel()
    died = next((child for child in children if not child.running), None)
    if died is not None:
        raise CliError(f"{died.name} (pid {died.pid}) exited: {await died.last_error()}; stopped the rest")
    return stop.result()


async def _start(
    args: argparse.Namespace, layout: Plan, build: nginx.NginxBuild | None, workdir: Path, children: Children
) -> tuple[list[Child], Child]:
    """Start the pods, wait until each is SERVING, then the balancer, and greet through it."""
    pods = await _start_pods(args, layout, children)
    addresses = [address for _, address in pods]
    for child, address in pods:
        print(f"  {child.name:<9} {address!s:<21} pid {child.pid}  SERVING", flush=True)
    if build is None:
        balancer, vip = await _start_builtin(args, layout.vip, addresses, children)
    else:
        balancer, vip = await _start_nginx(args, build, layout.vip, addresses, workdir, children)
    try:
        await _greet(vip)
    except CliError:
        if balancer.running:
            raise
        await balancer.proc.wait()
        raise CliError(f"{balancer.name} did not start: {await balancer.last_error(EMERG)}") from None
    _print_summary(args, vip, addresses, layout.pod_ips, workdir, balancer)
    return [child for child, _ in pods], balancer


async def _start_pods(args: argparse.Namespace, layout: Plan, children: Children) -> list[tuple[Child, Address]]:
    """Start every pod (all at once); with pod IPs on port 0, the first pod picks the port the others share."""
    targets = list(layout.pods)
    first: list[tuple[Child, Address]] = []
    if layout.pod_ips and targets[0].port == 0:
        first = [await _start_pod(args, 1, targets[0], children)]
        port = first[0][1].port
        targets = [Address(a.host, port) for a in targets[1:]]
    offset = len(first) + 1
    rest = await _all(_start_pod(args, offset + k, address, children) for k, address in enumerate(targets))
    return first + rest


async def _all(coroutines: Any) -> list[Any]:
    """Run them at once; on the first failure cancel the others and raise it (children stay tracked)."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()


async def _start_pod(args: argparse.Namespace, k: int, address: Address, children: Children) -> tuple[Child, Address]:
    name = f"pod-{k}"
    argv = python_argv(
        "serve",
        "--host",
        address.host,
        "--port",
        str(address.port),
        "--name",
        name,
        "--grace",
        f"{args.grace:g}",
        *(("--service-time", f"{args.service_time:g}", "--workers", "4") if args.service_time > 0 else ()),
    )
    child = await children.spawn(name, argv)
    bound = await _wait_line(child, _SERVING, "serving")
    await _check_serving(name, bound)
    return child, bound


async def _wait_line(child: Child, pattern: re.Pattern[str], what: str) -> Address:
    """Read ``child``'s stdout until ``pattern`` matches (its address); CliError if it exits or is silent."""

    async def read() -> Address:
        while (line := await child.read_line()) is not None:
            if match := pattern.search(line):
                return Address.parse(match.group(1))
        await child.proc.wait()
        raise CliError(f"{child.name} did not start: {await child.last_error(EMERG)}")

    try:
        return await asyncio.wait_for(read(), STARTUP_TIMEOUT)
    except TimeoutError:
        raise CliError(f"{child.name} printed no '{what}' line within {STARTUP_TIMEOUT:g}s") from None


async def _check_serving(name: str, address: Address) -> None:
    """The readiness probe: ``grpc.health.v1.Health/Check`` answers SERVING."""
    async with Channel.dial(f"ipv4:{address}") as channel:
        try:
            reply = await HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5.0)
        except RpcError as exc:
            raise CliError(f"{name} on {address} failed its health check: {exc}") from None
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        raise CliError(f"{name} on {address} is {status}, not SERVING")


async def _start_builtin(
    args: argparse.Namespace, vip: Address, pods: list[Address], children: Children
) -> tuple[Child, Address]:
    argv = python_argv("proxy", "--mode", "l4", "--listen", str(vip), "--strategy", args.strategy)
    for pod in pods:
        argv += ["--backend", str(pod)]
    if args.seed is not None:
        argv += ["--seed", str(args.seed)]
    argv += ["--grace", f"{args.grace:g}"]
    child = await children.spawn("balancer", argv)
    return child, await _wait_line(child, _PROXY, "L4 proxy on")


async def _start_nginx(
    args: argparse.Namespace,
    build: nginx.NginxBuild,
    vip: Address,
    pods: list[Address],
    workdir: Path,
    children: Children,
) -> tuple[Child, Address]:
    if vip.port == 0:
        vip = Address(vip.host, _free_port(vip.host))
    l7 = args.balancer == "nginx-l7"
    conf = nginx.config(build, l7, vip, pods, args.strategy, args.grace, workdir)
    (workdir / "nginx.conf").write_text(conf, encoding="utf-8")
    child = await children.spawn("nginx", nginx.command(build, workdir))
    await _wait_accepting(child, vip)
    return child, vip


def _check_free(address: Address) -> None:
    """CliError if ``address`` cannot be bound now (SO_REUSEADDR, as servers and nginx bind)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address.host, address.port))
        except OSError as exc:
            raise listen_error("the VIP", str(address), exc) from None


def _free_port(host: str) -> int:
    """A port the OS considers free on ``host`` now (nginx needs one written in its config)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


async def _wait_accepting(child: Child, address: Address) -> None:
    """Poll until ``address`` accepts a connection; CliError if ``child`` exits first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_TIMEOUT
    while loop.time() < deadline:
        if not child.running:
            break
        try:
            _, writer = await asyncio.open_connection(address.host, address.port)
        except OSError as exc:
            if exc.errno not in (errno.ECONNREFUSED, None):
                raise CliError(f"cannot connect to {child.name} on {address}: {exc.strerror}") from None
            await asyncio.sleep(0.02)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return
    if child.running:
        raise CliError(f"{child.name} did not accept connections on {address} within {STARTUP_TIMEOUT:g}s")
    await child.proc.wait()
    raise CliError(f"{child.name} did not start: {await child.last_error(EMERG)}")


async def _greet(vip: Address) -> None:
    """One SayHello through the VIP: the balancer reaches a pod."""
    async with Channel.dial(str(vip)) as channel:
        try:
            await GreeterStub(channel).say_hello("cluster up", timeout=STARTUP_TIMEOUT)
        except RpcError as exc:
            raise CliError(f"a call through the VIP {vip} failed: {exc}") from None


def _print_summary(
    args: argparse.Namespace, vip: Address, pods: list[Address], pod_ips: bool, workdir: Path, balancer: Child
) -> None:
    kind = BALANCERS[args.balancer]
    config = f", config {workdir / 'nginx.conf'}" if args.balancer != "builtin" else ""
    print(f"  {'balancer':<9} {vip!s:<21} pid {balancer.pid}  {kind}, {args.strategy}{config}", flush=True)
    ipv4 = "ipv4:" + ",".join(str(p) for p in pods)
    lines = [f"VIP       {vip}", f"pods      {ipv4}"]
    tries = [f"rpcviz call {vip} -n 100", f"rpcviz call {ipv4} --policy round_robin -n 100"]
    if pod_ips:
        hosts = workdir / "hosts"
        hosts.write_text(
            f"# rpcviz cluster up: the headless Service {HEADLESS_NAME}, one line per pod IP\n"
            + "".join(f"{p.host} {HEADLESS_NAME}\n" for p in pods),
            encoding="utf-8",
        )
        target = f"dns:///{HEADLESS_NAME}:{pods[0].port}"
        lines.append(f"headless  {target}  ({HOSTS_ENV}={hosts})")
        tries.append(f"{HOSTS_ENV}={hosts} rpcviz call {target} --policy round_robin -n 100")
    lines.append("try       " + "\n          ".join(tries))
    lines.append("cluster up: Ctrl-C or SIGTERM stops everything it started")
    print("\n".join(lines), flush=True)


async def _stop_all(children: Children, grace: float, balancer_kind: str) -> None:
    """Stop the balancer, then every pod at once; a second Ctrl-C/SIGTERM kills what is left."""
    started = await children.started()
    if not started:
        return
    urgent = asyncio.Event()
    second = shutdown_signal()

    def kill_the_rest(signalled: asyncio.Future[signal.Signals]) -> None:
        if not signalled.cancelled():
            print(f"cluster up: {signalled.result().name} again, killing what is left", flush=True)
            urgent.set()

    second.add_done_callback(kill_the_rest)
    timeout = grace + STOP_MARGIN
    try:
        front = [child for child in started if child.name in ("balancer", "nginx")]
        # nginx: SIGQUIT is its graceful stop (connections get worker_shutdown_timeout)
        sig = signal.SIGQUIT if balancer_kind != "builtin" else signal.SIGTERM
        for child in front:
            code = await child.stop(sig, timeout, urgent)
            if child.name == "nginx" and child.forwarding:
                print(f"nginx: stopped (pid {child.pid}, exit status {code})", flush=True)
        await asyncio.gather(*(child.stop(signal.SIGTERM, timeout, urgent) for child in started if child not in front))
    finally:
        second.cancel()
