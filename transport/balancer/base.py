"""The load-balancing plug-in interface (after grpc-go's ``balancer`` package).

A :class:`LoadBalancer` gets the resolved addresses, creates subchannels
through its :class:`Helper`, watches their states and publishes a
:class:`Picker`: the per-call decision, swapped whole whenever the picture
changes so that picking stays a cheap synchronous call.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import ClassVar, Protocol

from transport.address import Address
from transport.client.subchannel import Subchannel
from transport.connectivity import ConnectivityState
from transport.status import RpcError, StatusCode


class Picker(ABC):
    """Chooses the subchannel for one call."""

    @abstractmethod
    def pick(self) -> Subchannel | None:
        """A READY subchannel, or None to wait for the next picker; raise RpcError to fail the call."""


class QueuePicker(Picker):
    """Nothing is READY yet: calls wait for a new picker."""

    def pick(self) -> Subchannel | None:
        return None


class IdlePicker(Picker):
    """Nothing is connected or connecting: a pick asks the policy to connect and the call waits
    for the next picker (grpc-go pickfirst's ``idlePicker``)."""

    __slots__ = ("exit_idle",)

    def __init__(self, exit_idle: Callable[[], None]) -> None:
        self.exit_idle = exit_idle

    def pick(self) -> Subchannel | None:
        self.exit_idle()
        return None


class FailPicker(Picker):
    """Everything failed: calls fail fast with UNAVAILABLE (unless wait_for_ready)."""

    def __init__(self, details: str) -> None:
        self.details = details

    def pick(self) -> Subchannel | None:
        raise RpcError(StatusCode.UNAVAILABLE, self.details)


class Helper(Protocol):
    """What the channel offers a policy."""

    #: Seeded by the channel's options, so balancing can be reproduced.
    rng: random.Random

    def create_subchannel(self, address: Address) -> Subchannel: ...

    def update_state(self, state: ConnectivityState, picker: Picker) -> None: ...

    def request_reresolution(self) -> None: ...


class LoadBalancer(ABC):
    """A policy, registered by ``name``. Adding one must not touch the channel."""

    name: ClassVar[str]
    #: Whether subchannels should run client-side health checks (gRPC A17) when
    #: the channel has a health-check service configured.
    health_checking: ClassVar[bool] = False

    def __init__(self, helper: Helper) -> None:
        self.helper = helper

    @abstractmethod
    def update_addresses(self, addresses: Sequence[Address]) -> None:
        """The resolver produced (new) addresses."""

    @abstractmethod
    def subchannel_state_changed(self, subchannel: Subchannel, old: ConnectivityState, new: ConnectivityState) -> None:
        """One of our subchannels changed state."""

    def exit_idle(self) -> None:
        """Connect if the policy is IDLE (``Channel.connect``; grpc-go ``Balancer.ExitIdle``)."""

    @abstractmethod
    def shutdown(self) -> None:
        """Shut down every subchannel."""


_POLICIES: dict[str, type[LoadBalancer]] = {}


def register_policy(cls: type[LoadBalancer]) -> type[LoadBalancer]:
    """Class decorator: make a policy available by its ``name``."""
    _POLICIES[cls.name] = cls
    return cls


def policy_names() -> list[str]:
    return sorted(_POLICIES)


def get_policy(name: str) -> type[LoadBalancer]:
    try:
        return _POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown load-balancing policy {name!r} (known: {', '.join(policy_names())})") from None
