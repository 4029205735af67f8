"""``rpcviz attach``: the visualizer on a deployment it does not own (a VIP, and the pods behind it)."""

from __future__ import annotations

import argparse
from typing import Any

from app.commands.errors import CliError
from transport.client.resolver import parse_target


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "attach",
        help="open the visualizer on an existing deployment",
        description="Open the visualizer against servers it does not start: pick_first dials the VIP, "
        "round_robin and least_request dial --pods. Pods are named by their rpcviz-server response "
        "metadata, else by address; kill, drain, slow and scale are off (the pods are not rpcviz's).",
    )
    p.add_argument("--vip", required=True, metavar="HOST:PORT", help="the balancer in front of the pods (L4 or L7)")
    p.add_argument(
        "--pods",
        default=None,
        metavar="TARGET",
        help="every pod: an ipv4:a:p,b:p list or a dns:///name:port target (needed for round_robin)",
    )


async def run(args: argparse.Namespace) -> int:
    from app.cluster.attached import AttachedCluster
    from app.ui import AttachApp

    for flag, target in (("--vip", args.vip), ("--pods", args.pods)):
        if target is None:
            continue
        try:
            parse_target(target)
        except ValueError as exc:
            raise CliError(f"{flag} {target!r}: {exc}") from None
    await AttachApp(AttachedCluster(args.vip, args.pods)).run_async()
    return 0
