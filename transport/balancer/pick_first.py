"""pick_first: one connection, every call on it; fail over to the next address on its loss."""

from __future__ import annotations

from collections.abc import Sequence

from transport.address import Address
from transport.balancer.base import (
    FailPicker,
    Helper,
    IdlePicker,
    LoadBalancer,
    Picker,
    PickInfo,
    PickResult,
    QueuePicker,
    Subchannel,
    register_policy,
)
from transport.connectivity import ConnectivityState


class _FixedPicker(Picker):
    """Every call on one subchannel: one prebuilt result, nothing allocated per pick."""

    __slots__ = ("result",)

    def __init__(self, subchannel: Subchannel) -> None:
        self.result = PickResult(subchannel)

    def pick(self, info: PickInfo) -> PickResult | None:
        return self.result


@register_policy
class PickFirst(LoadBalancer):
    """Connect to the addresses in order and keep the first that works.

    When that connection goes away the policy goes IDLE and does not reconnect by itself
    (gRFC A62; grpc-go ``pickfirstBalancer``: IDLE publishes an ``idlePicker``): the next call,
    or :meth:`exit_idle` (``Channel.connect``), starts a new pass from the first address, and
    that call waits for it. Behind a VIP there is one address, so the reconnection goes through
    the L4 balancer, which may put it on another backend.
    """

    name = "pick_first"

    def __init__(self, helper: Helper) -> None:
        super().__init__(helper)
        self._addresses: list[Address] = []
        self._subchannels: dict[Address, Subchannel] = {}
        self._index = 0
        self._failures = 0
        self._current: Subchannel | None = None
        #: The connection went away and nobody has asked for a new one yet (A62).
        self._idle = False

    def update_addresses(self, addresses: Sequence[Address]) -> None:
        self._addresses = list(addresses)
        for address in list(self._subchannels):
            if address not in self._addresses:
                self._subchannels.pop(address).shutdown()
        if self._current is not None and self._current.address in self._addresses:
            return  # keep the connection we have
        if not self._addresses:
            self.helper.update_state(ConnectivityState.TRANSIENT_FAILURE, FailPicker("resolver returned no addresses"))
            return
        self._try(0)

    def _subchannel(self, address: Address) -> Subchannel:
        sc = self._subchannels.get(address)
        if sc is None:
            sc = self._subchannels[address] = self.helper.create_subchannel(address)
        return sc

    def _try(self, index: int) -> None:
        self._idle = False
        self._index = index % len(self._addresses)
        self._current = self._subchannel(self._addresses[self._index])
        if self._current.state is ConnectivityState.READY:
            self.helper.update_state(ConnectivityState.READY, _FixedPicker(self._current))
            return
        if self._failures < len(self._addresses):
            self.helper.update_state(ConnectivityState.CONNECTING, QueuePicker())
        self._current.request_connection()

    def subchannel_state_changed(self, subchannel: Subchannel, old: ConnectivityState, new: ConnectivityState) -> None:
        if subchannel is not self._current:
            return
        if new is ConnectivityState.READY:
            self._failures = 0
            self.helper.update_state(ConnectivityState.READY, _FixedPicker(subchannel))
        elif new is ConnectivityState.TRANSIENT_FAILURE:
            self._failures += 1
            if self._failures % len(self._addresses) == 0:
                # Every address failed once: report it, wait out this one's backoff.
                self.helper.update_state(ConnectivityState.TRANSIENT_FAILURE, FailPicker(subchannel.last_error))
                self.helper.request_reresolution()
            else:
                self._try(self._index + 1)
        elif new is ConnectivityState.IDLE:
            if old is ConnectivityState.TRANSIENT_FAILURE:  # backoff over: try this address again
                subchannel.request_connection()
            else:
                # Our connection is gone (READY, or established and lost before READY): IDLE
                # until a call comes (A62), never a reconnection by ourselves.
                self.helper.request_reresolution()
                self._idle = True
                self._failures = 0
                self.helper.update_state(ConnectivityState.IDLE, IdlePicker(self.exit_idle))

    def exit_idle(self) -> None:
        """A call (or ``Channel.connect``) wants a connection: a new pass from the first address."""
        if self._idle and self._addresses:
            self._try(0)

    def shutdown(self) -> None:
        for sc in self._subchannels.values():
            sc.shutdown()
        self._subchannels.clear()
        self._current = None
        self._idle = False
