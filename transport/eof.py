"""``EOF``: what ``read()`` returns once the other side has ended its messages (as ``grpc.aio.EOF``)."""

from __future__ import annotations

from typing import Any


class _End:
    __slots__ = ()

    def __repr__(self) -> str:
        return "EOF"

    def __bool__(self) -> bool:
        return False


EOF: Any = _End()
