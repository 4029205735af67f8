"""argparse ``type=`` checks shared by the commands: a bad value is argparse's one-line usage error (exit 2)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number of seconds")
    return value


def at_least(minimum: int) -> Callable[[str], int]:
    """A whole number >= ``minimum`` (a count: calls, concurrency, connections)."""

    def check(text: str) -> int:
        value = _integer(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return check


def positive_seconds(text: str) -> float:
    """A duration that must be > 0 (a deadline, a connection age)."""
    value = _seconds(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def non_negative_seconds(text: str) -> float:
    """A duration that may be 0 (a grace period: 0 = at once)."""
    value = _seconds(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, got {text}")
    return value


def utf8_text(text: str) -> str:
    """Text that encodes as UTF-8: on POSIX, argv bytes that are not UTF-8 arrive
    surrogate-escaped, which protobuf cannot serialize."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(f"{_shown(text)} is not valid UTF-8") from None
    return text


def metadata_text(text: str) -> str:
    """Text allowed in an ASCII gRPC metadata value: printable ASCII (0x20-0x7E)."""
    if not all(" " <= ch <= "~" for ch in text):
        raise argparse.ArgumentTypeError(
            f"{_shown(text)} must be printable ASCII: it is sent to callers as gRPC metadata"
        )
    return text


def _shown(text: str) -> str:
    """``text`` for an error line, the argv bytes that are not UTF-8 escaped (``'p\\xffd'``)."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return ascii(text)
    try:
        return repr(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return repr(raw)[1:]  # b'p\\xffd' -> 'p\\xffd'
