"""``EOF``: what ``read()`` returns once the other side has ended its messages (as ``grpc.aio.EOF``).

An enum member, so that ``if message is EOF`` narrows the type for mypy.
"""

from __future__ import annotations

import enum


class _End(enum.Enum):
    EOF = "EOF"

    def __repr__(self) -> str:
        return "EOF"

    def __bool__(self) -> bool:
        return False


EOF = _End.EOF
