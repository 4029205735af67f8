"""Name resolution: a gRPC target string becomes a list of addresses.

Target syntax (gRPC's naming doc):
- ``host:port``            one address: a single name, e.g. a VIP in front of an L4 balancer
- ``ipv4:a:p,b:p,...``     every listed address (``ipv6:[::1]:p,...`` likewise)
- ``dns:///host:port``     every address DNS returns, e.g. a Kubernetes headless service
                           (a name listed in ``$RPCVIZ_HOSTS`` resolves from that file: ``hosts.py``)
- ``endpoints:///NAME``    a registered, changing set of addresses (``transport/client/endpoints.py``)

Resolvers are registered by scheme, so others (xds, a cluster's own) can be added.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable

from transport.address import Address
from transport.client import hosts

DEFAULT_PORT = 443
_HOSTNAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?\Z")


class Resolver(ABC):
    """Resolves one target. ``authority`` is sent as ``:authority`` on every call."""

    def __init__(self, target: str, authority: str) -> None:
        self.target = target
        self.authority = authority

    @abstractmethod
    async def resolve(self) -> list[Address]:
        """The current addresses; raise OSError (with a readable message) on failure."""

    @property
    def can_reresolve(self) -> bool:
        """Whether asking again could give a different answer."""
        return False


class StaticResolver(Resolver):
    """Addresses written in the target itself (``ipv4:``/``ipv6:``, or an IP literal)."""

    def __init__(self, target: str, addresses: list[Address]) -> None:
        super().__init__(target, str(addresses[0]))
        self.addresses = addresses

    async def resolve(self) -> list[Address]:
        return list(self.addresses)


class DnsResolver(Resolver):
    """Looks the name up in ``$RPCVIZ_HOSTS`` (re-read each time), else with getaddrinfo;
    ``all_addresses=False`` keeps the first only."""

    def __init__(self, target: str, host: str, port: int, all_addresses: bool) -> None:
        super().__init__(target, f"{host}:{port}")
        self.host = host
        self.port = port
        self.all_addresses = all_addresses

    async def resolve(self) -> list[Address]:
        if listed := hosts.lookup(self.host):
            addresses = [Address(host, self.port) for host in listed]
            return addresses if self.all_addresses else addresses[:1]
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        except socket.gaierror as exc:
            path = hosts.hosts_path()
            unlisted = f" (nor listed in {hosts.HOSTS_ENV}={path})" if path else ""
            raise OSError(f"DNS resolution failed for {self.host!r}: {exc.strerror}{unlisted}") from exc
        addresses = list(dict.fromkeys(Address(str(info[4][0]), int(info[4][1])) for info in infos))
        if not addresses:
            raise OSError(f"DNS returned no addresses for {self.host!r}")
        return addresses if self.all_addresses else addresses[:1]

    @property
    def can_reresolve(self) -> bool:
        return True


def _split_host_port(text: str, target: str) -> tuple[str, int]:
    try:
        address = Address.parse(text)
    except ValueError:
        if _HOSTNAME.match(text):
            return text, DEFAULT_PORT
        raise ValueError(f"target {target!r}: {text!r} is not host:port") from None
    if not address.host or not (_HOSTNAME.match(address.host) or _is_ip(address.host)):
        raise ValueError(f"target {target!r}: {address.host!r} is not a host name or IP address")
    return address.host, address.port


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _ip_list(version: int) -> Callable[[str, str], Resolver]:
    """The ``ipv4:``/``ipv6:`` scheme: a comma-separated list of that family's literals."""

    def parse(target: str, body: str) -> Resolver:
        if not body:
            raise ValueError(f"target {target!r} lists no addresses")
        addresses = []
        for part in body.split(","):
            host, port = _split_host_port(part.strip(), target)
            try:
                family = ipaddress.ip_address(host).version
            except ValueError:
                raise ValueError(f"target {target!r}: {host!r} is not an IP address") from None
            if family != version:
                raise ValueError(f"target {target!r}: {host!r} is an IPv{family} address, not IPv{version}")
            addresses.append(Address(host, port))
        return StaticResolver(target, addresses)

    return parse


def _dns(target: str, body: str) -> Resolver:
    # dns:///host:port or dns://authority/host:port (the DNS server is not configurable here)
    if body.startswith("//"):
        body = body[2:].partition("/")[2]
    host, port = _split_host_port(body, target)
    return DnsResolver(target, host, port, all_addresses=True)


_SCHEMES: dict[str, Callable[[str, str], Resolver]] = {
    "ipv4": _ip_list(4),
    "ipv6": _ip_list(6),
    "dns": _dns,
}


def register_scheme(scheme: str, factory: Callable[[str, str], Resolver]) -> None:
    """Make ``scheme:...`` targets resolvable by ``factory(target, rest)``."""
    _SCHEMES[scheme] = factory


def parse_target(target: str) -> Resolver:
    """The resolver for ``target``; ValueError with a readable sentence if it is not one."""
    target = target.strip()
    if not target:
        raise ValueError("target is empty: use host:port, ipv4:host:port,... or dns:///host:port")
    scheme, sep, rest = target.partition(":")
    if sep and scheme in _SCHEMES:
        return _SCHEMES[scheme](target, rest)
    try:
        host, port = _split_host_port(target, target)
    except ValueError:
        raise ValueError(
            f"{target!r} is not a target: use host:port, ipv4:host:port,host:port or dns:///host:port"
        ) from None
    if _is_ip(host):
        return StaticResolver(target, [Address(host, port)])
    return DnsResolver(target, host, port, all_addresses=False)


async def resolve_all(target: str) -> list[Address]:
    """Every address of ``target`` (the scene's headless-service lookup)."""
    resolver = parse_target(target)
    if isinstance(resolver, DnsResolver):
        resolver.all_addresses = True
    return await resolver.resolve()


async def resolve_one(target: str) -> Address:
    """One address of ``target`` (the scene's VIP lookup)."""
    return (await parse_target(target).resolve())[0]
