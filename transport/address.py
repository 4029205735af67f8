"""A network address: the unit resolvers produce and subchannels connect to."""

from __future__ import annotations

from typing import NamedTuple


class Address(NamedTuple):
    """A TCP endpoint, ``host:port``. IPv6 hosts are printed in brackets."""

    host: str
    port: int

    def __str__(self) -> str:
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, text: str) -> Address:
        """Parse ``host:port`` or ``[v6]:port``; raise ValueError with a readable sentence."""
        text = text.strip()
        if text.startswith("["):
            host, sep, rest = text[1:].partition("]")
            if not sep or not rest.startswith(":"):
                raise ValueError(f"{text!r} is not an address of the form [host]:port")
            port_text = rest[1:]
        else:
            host, sep, port_text = text.rpartition(":")
            if not sep or not host:
                raise ValueError(f"{text!r} is not an address of the form host:port")
        if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            raise ValueError(f"{text!r} has no valid port (0-65535)")
        return cls(host, int(port_text))
