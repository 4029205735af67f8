"""``rpcviz interop-client``: run one of grpc's 14 standard interop cases with our Channel.

The flags are grpc's own (``--server_host --server_port --test_case``), so it drops into
any interop matrix. It prints ``OK: NAME`` and exits 0, or one line naming what differed
and exits 1.
"""

from __future__ import annotations

import argparse
from typing import Any

from app.commands.errors import CliError
from app.commands.plaintext import add_use_tls, require_plaintext

#: The case names, as grpc's clients spell them (app.interop.cases.CASES has the same keys).
CASE_NAMES = (
    "empty_unary",
    "large_unary",
    "client_streaming",
    "server_streaming",
    "ping_pong",
    "empty_stream",
    "cancel_after_begin",
    "cancel_after_first_response",
    "timeout_on_sleeping_server",
    "custom_metadata",
    "status_code_and_message",
    "special_status_message",
    "unimplemented_service",
    "unimplemented_method",
)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "interop-client",
        help="run one of grpc's interop cases against a TestService",
        description="Run one of grpc's 14 standard interop cases against a grpc.testing.TestService server.",
    )
    p.add_argument("--server_host", default="localhost", help="the server's host name or address (default localhost)")
    p.add_argument("--server_port", type=int, required=True, help="the server's port")
    p.add_argument("--test_case", required=True, choices=CASE_NAMES, metavar="NAME", help=", ".join(CASE_NAMES))
    p.add_argument(
        "--case_timeout", type=float, default=30.0, help="seconds the case may take before it fails (default 30)"
    )
    add_use_tls(p)


async def run(args: argparse.Namespace) -> int:
    require_plaintext(args)
    if not 1 <= args.server_port <= 65535:
        raise CliError(f"--server_port must be 1-65535, not {args.server_port}", 2)
    if args.case_timeout <= 0:
        raise CliError("--case_timeout must be positive", 2)
    from app.interop.run import run_case  # the protos load only for this command

    failure = await run_case(args.test_case, args.server_host, args.server_port, args.case_timeout)
    if failure is not None:
        raise CliError(f"FAIL: {args.test_case}: {failure}")
    print(f"OK: {args.test_case}", flush=True)
    return 0
