"""The ``rpcviz`` command: the visualizer by default, plus headless sub-commands.

Every failure a user can cause ends as one line on stderr and a non-zero
exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from app.commands import attach, call, cluster_up, demo, interop_client, interop_server, proxy, serve
from app.commands.errors import CliError
from app.commands.version import version

COMMANDS = {
    "serve": serve,
    "call": call,
    "proxy": proxy,
    "demo": demo,
    "attach": attach,
    "cluster": cluster_up,
    "interop-client": interop_client,
    "interop-server": interop_server,
}


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, not a usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _Version(argparse.Action):
    """``--version``: looked up only when asked for (importlib.metadata is not free)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        print(f"rpcviz {version()}")
        parser.exit(0)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rpcviz",
        description="See gRPC load balancing: the L4 pinning trap and client-side round_robin, "
        "live from a real gRPC transport. With no command, opens the visualizer.",
    )
    parser.add_argument("--version", action=_Version)
    parser.add_argument(
        "--replay", action="store_true", help="open the visualizer with the guided replay of the scene running"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed the L4 balancer's pod choice (default: the scene's, which pins pod #3)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in COMMANDS.values():
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        return _run_app(args.replay, args.seed)
    module = COMMANDS[args.command]
    try:
        code: int = asyncio.run(module.run(args))
        return code
    except CliError as exc:
        print(f"rpcviz {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def _run_app(replay: bool, seed: int | None) -> int:
    try:
        from app.scene import SCENE_SEED
        from app.ui import run_app
    except ImportError:
        print("rpcviz: the visualizer is not built yet; try `rpcviz demo` or `rpcviz serve`", file=sys.stderr)
        return 1
    return run_app(replay=replay, seed=SCENE_SEED if seed is None else seed)


if __name__ == "__main__":
    sys.exit(main())
