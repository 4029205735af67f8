"""grpc's interop flag ``--use_tls``: accepted, as long as it says plaintext."""

from __future__ import annotations

import argparse
from typing import Any

from app.commands.errors import CliError

_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


def _boolean(text: str) -> bool:
    try:
        return _BOOLEANS[text.lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}") from None


def add_use_tls(parser: Any) -> None:
    """``--use_tls=false`` (the default) as the interop matrices pass it; a bare ``--use_tls`` means true."""
    parser.add_argument(
        "--use_tls", type=_boolean, nargs="?", const=True, default=False, metavar="BOOL", help="only false is supported"
    )


def require_plaintext(args: argparse.Namespace) -> None:
    if args.use_tls:
        raise CliError("--use_tls=true is not supported: rpcviz speaks plaintext HTTP/2 (h2c) only", 2)
