"""A service's endpoints that can change, and the ``endpoints:///NAME`` resolver that reads them.

:class:`Endpoints` stands for a Kubernetes headless service whose pods come and go: a named,
mutable, observable set of addresses the in-process cluster controls. ``dns:///`` cannot carry a
port per pod on 127.0.0.1, so the channel reaches it through its own scheme::

    pods = Endpoints.register("pods", [a1, a2])
    channel = Channel("endpoints:///pods", "round_robin")
    pods.add(a3)                    # the channel does not see it yet...

The resolver answers when the channel asks (at start, and on re-resolution: a connection lost,
at most once per ``min_reresolution_interval``), never when the set changes. That is how DNS of
a headless service behaves, and why a round_robin client sees a new pod only after it
re-resolves (grpc/grpc#12295). A watching resolver (kuberesolver's ``kubernetes:///``, xDS)
would push every change; this one deliberately does not: its listeners are for a UI.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable

from transport.address import Address
from transport.client.resolver import Resolver, register_scheme

log = logging.getLogger(__name__)

#: The target scheme: ``endpoints:///NAME`` (``endpoints://authority/NAME`` likewise; the
#: authority is ignored, as for ``dns:``).
SCHEME = "endpoints"

_NAME = re.compile(r"[A-Za-z0-9._-]+")

EndpointsListener = Callable[["Endpoints"], None]

_REGISTRY: dict[str, Endpoints] = {}


class Endpoints:
    """A named, ordered set of addresses; each change bumps :attr:`generation` and tells the
    listeners. Registered process-wide by name so ``endpoints:///NAME`` can find it."""

    def __init__(self, name: str, addresses: Iterable[Address] = ()) -> None:
        _check_name(name)
        self.name = name
        self._addresses: list[Address] = list(dict.fromkeys(addresses))
        #: Bumped by every change; a resolver remembers the one it last saw.
        self.generation = 0
        self._listeners: list[EndpointsListener] = []

    # --- the process-wide registry -----------------------------------------

    @classmethod
    def register(cls, name: str, addresses: Iterable[Address] = ()) -> Endpoints:
        """A new set registered as ``name``; ValueError if the name is taken."""
        if name in _REGISTRY:
            raise ValueError(f"endpoints {name!r} are already registered")
        endpoints = _REGISTRY[name] = cls(name, addresses)
        return endpoints

    @staticmethod
    def lookup(name: str) -> Endpoints | None:
        return _REGISTRY.get(name)

    def unregister(self) -> None:
        """Forget this name (resolving it fails from now on); nothing if it is not registered."""
        if _REGISTRY.get(self.name) is self:
            del _REGISTRY[self.name]

    @property
    def target(self) -> str:
        """The channel target that resolves to this set."""
        return f"{SCHEME}:///{self.name}"

    # --- the set ------------------------------------------------------------

    @property
    def addresses(self) -> list[Address]:
        return list(self._addresses)

    def set(self, addresses: Iterable[Address]) -> None:
        """Replace the whole set (in this order; duplicates dropped)."""
        new = list(dict.fromkeys(addresses))
        if new != self._addresses:
            self._addresses = new
            self._changed()

    def add(self, address: Address) -> None:
        if address not in self._addresses:
            self._addresses.append(address)
            self._changed()

    def remove(self, address: Address) -> None:
        """Drop ``address``; nothing if it is not listed."""
        if address in self._addresses:
            self._addresses.remove(address)
            self._changed()

    def __contains__(self, address: object) -> bool:
        return address in self._addresses

    def __len__(self) -> int:
        return len(self._addresses)

    def __repr__(self) -> str:
        return f"Endpoints({self.name!r}, {[str(a) for a in self._addresses]}, generation={self.generation})"

    # --- observers ----------------------------------------------------------

    def add_listener(self, listener: EndpointsListener) -> None:
        """``listener(endpoints)`` after every change (for a UI; resolvers do not listen)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: EndpointsListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _changed(self) -> None:
        self.generation += 1
        for listener in list(self._listeners):
            try:
                listener(self)
            except Exception:
                log.exception("endpoints listener failed")


class EndpointsResolver(Resolver):
    """Resolves ``endpoints:///NAME`` to the registered set's addresses at that moment."""

    def __init__(self, target: str, name: str) -> None:
        super().__init__(target, name)
        self.name = name
        #: The generation of the set the last resolution returned (-1: none yet).
        self.generation = -1

    async def resolve(self) -> list[Address]:
        endpoints = _REGISTRY.get(self.name)
        if endpoints is None:
            raise OSError(f"no endpoints named {self.name!r} are registered (target {self.target!r})")
        self.generation = endpoints.generation
        return endpoints.addresses

    @property
    def can_reresolve(self) -> bool:
        return True


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not an endpoints name: use letters, digits, '-', '.' or '_'")


def _endpoints(target: str, body: str) -> Resolver:
    if body.startswith("//"):
        body = body[2:].partition("/")[2]
    try:
        _check_name(body)
    except ValueError:
        raise ValueError(f"target {target!r}: use {SCHEME}:///NAME") from None
    return EndpointsResolver(target, body)


register_scheme(SCHEME, _endpoints)
