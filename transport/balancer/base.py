"""The load-balancing plug-in interface (after grpc-go's ``balancer`` package).

A :class:`LoadBalancer` gets the resolved addresses, creates subchannels
through its :class:`Helper`, watches their states and publishes a
:class:`Picker`: the per-call decision, swapped whole whenever the picture
changes so that picking stays a cheap synchronous call. A pick returns a
:class:`PickResult` whose ``done`` callback tells the policy how the call
ended, so a policy can count calls without reaching into the channel.

This package imports nothing from ``transport.client``: :class:`Subchannel`
here is the part of a subchannel that policies use, which the client's
concrete subchannel satisfies structurally.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol, Self

from transport.address import Address
from transport.connectivity import ConnectivityState
from transport.metadata import Metadata
from transport.status import RpcError, StatusCode


class Subchannel(Protocol):
    """One connection to one address, as a policy sees it (grpc-go ``balancer.SubConn``)."""

    @property
    def address(self) -> Address: ...

    @property
    def state(self) -> ConnectivityState: ...

    @property
    def last_error(self) -> str:
        """Why the last connection attempt failed or the connection went away ("" if none)."""
        ...

    @property
    def quick_losses(self) -> int:
        """Connections in a row that went away before they proved themselves."""
        ...

    def request_connection(self) -> None:
        """Connect if IDLE (respecting backoff); otherwise nothing."""

    def shutdown(self) -> None:
        """Stop reconnecting and close the connection once its calls are done."""


@dataclass(frozen=True, slots=True)
class PickInfo:
    """What the channel knows about the call being picked for (grpc-go ``balancer.PickInfo``)."""

    #: The full method path, "/package.Service/Method".
    method: str
    #: The call's request metadata.
    metadata: Metadata


@dataclass(frozen=True, slots=True)
class PickResult:
    """A pick (grpc-go ``balancer.PickResult``): the subchannel, and ``done(status)``, which the
    channel runs exactly once when the call ends on it, whatever the status (UNAVAILABLE if the
    call could not go there after all, e.g. a transparent retry). A picker without ``done`` may
    return the same prebuilt result for every call."""

    subchannel: Subchannel
    done: Callable[[StatusCode], None] | None = None


class Picker(ABC):
    """Chooses the subchannel for one call."""

    @abstractmethod
    def pick(self, info: PickInfo) -> PickResult | None:
        """A READY subchannel, or None to wait for the next picker; raise RpcError to fail the call."""


class QueuePicker(Picker):
    """Nothing is READY yet: calls wait for a new picker."""

    def pick(self, info: PickInfo) -> PickResult | None:
        return None


class IdlePicker(Picker):
    """Nothing is connected or connecting: a pick asks the policy to connect and the call waits
    for the next picker (grpc-go pickfirst's ``idlePicker``)."""

    __slots__ = ("exit_idle",)

    def __init__(self, exit_idle: Callable[[], None]) -> None:
        self.exit_idle = exit_idle

    def pick(self, info: PickInfo) -> PickResult | None:
        self.exit_idle()
        return None


class FailPicker(Picker):
    """Everything failed: calls fail fast with UNAVAILABLE (unless wait_for_ready)."""

    def __init__(self, details: str) -> None:
        self.details = details

    def pick(self, info: PickInfo) -> PickResult | None:
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

    @classmethod
    def from_config(cls, helper: Helper, config: Mapping[str, object]) -> Self:
        """The policy built with its settings (``ChannelOptions.lb_config``, grpc's
        ``loadBalancingConfig`` entry); ValueError for a bad one. A policy without settings
        accepts only an empty config."""
        if config:
            raise ValueError(f"{cls.name} has no settings (lb_config: {', '.join(sorted(config))})")
        return cls(helper)

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
