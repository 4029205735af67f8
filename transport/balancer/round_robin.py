"""round_robin: a subchannel per address, one pick per call over the READY ones."""

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

#: Quick losses in a row (see ``Subchannel``) after which a subchannel reconnects only when a
#: call comes, as pick_first does: the first is forgiven (a pod restarted just after we connected).
MAX_EAGER_QUICK_LOSSES = 1


class RoundRobinPicker(Picker):
    """Rotate over a fixed list of READY subchannels (the scene's ``pickSubchannel``); each pick
    also asks the ``waiting`` subchannels (IDLE until a call comes) to connect. The results are
    prebuilt, one per subchannel: nothing is allocated per pick."""

    __slots__ = ("next", "results", "waiting")

    def __init__(self, subchannels: Sequence[Subchannel], start: int, waiting: Sequence[Subchannel] = ()) -> None:
        self.results = [PickResult(sc) for sc in subchannels]
        self.next = start
        self.waiting = waiting

    def pick(self, info: PickInfo) -> PickResult | None:
        for idle in self.waiting:
            idle.request_connection()
        result = self.results[self.next % len(self.results)]
        self.next += 1
        return result


@register_policy
class RoundRobin(LoadBalancer):
    """Connects to every address; a non-READY subchannel is skipped and reconnects with backoff.

    A subchannel that failed counts as failed until it is READY again, even while it
    retries (gRPC's "sticky" TRANSIENT_FAILURE): with every backend down the channel
    stays in TRANSIENT_FAILURE, so calls fail fast with UNAVAILABLE instead of queueing
    through each reconnect attempt (``wait_for_ready`` calls still wait).

    A subchannel that goes IDLE reconnects at once (grpc's round_robin; grpc-js #2667), its
    subchannel pacing the attempt after a quick loss. grpc's round_robin stops there, so a server
    that GOAWAYs every connection after the handshake gets one per round trip; here a subchannel
    whose connections keep going away before they prove themselves (more than
    ``MAX_EAGER_QUICK_LOSSES`` quick losses in a row) waits IDLE until a call is picked, like
    pick_first (A62), and then no sooner than its backoff allows.
    """

    name = "round_robin"
    health_checking = True

    def __init__(self, helper: Helper) -> None:
        super().__init__(helper)
        self._subchannels: dict[Address, Subchannel] = {}
        self._order: list[Subchannel] = []
        self._picker: RoundRobinPicker | None = None
        #: Subchannels that reported TRANSIENT_FAILURE and have not been READY since.
        self._failed: set[Subchannel] = set()

    def update_addresses(self, addresses: Sequence[Address]) -> None:
        wanted = list(dict.fromkeys(addresses))
        for address in list(self._subchannels):
            if address not in wanted:
                gone = self._subchannels.pop(address)
                self._failed.discard(gone)
                gone.shutdown()
        for address in wanted:
            if address not in self._subchannels:
                self._subchannels[address] = self.helper.create_subchannel(address)
        self._order = [self._subchannels[a] for a in wanted]
        for sc in self._order:
            sc.request_connection()
        self._update_picker()

    def subchannel_state_changed(self, subchannel: Subchannel, old: ConnectivityState, new: ConnectivityState) -> None:
        if subchannel not in self._order:
            return
        if new is ConnectivityState.IDLE and old is not ConnectivityState.TRANSIENT_FAILURE:
            # A connection went away: the backend set may have changed (grpc-core round_robin
            # asks on IDLE and on TRANSIENT_FAILURE; grpc-go on every connection loss).
            self.helper.request_reresolution()
        if new is ConnectivityState.IDLE and subchannel.quick_losses <= MAX_EAGER_QUICK_LOSSES:
            subchannel.request_connection()  # reconnect now (or when its backoff says, after a quick loss)
        elif new is ConnectivityState.TRANSIENT_FAILURE:
            self._failed.add(subchannel)
            self.helper.request_reresolution()
        elif new is ConnectivityState.READY:
            self._failed.discard(subchannel)
        self._update_picker()

    def _waiting(self) -> list[Subchannel]:
        """IDLE subchannels that reconnect only when a call comes."""
        return [
            sc for sc in self._order if sc.state is ConnectivityState.IDLE and sc.quick_losses > MAX_EAGER_QUICK_LOSSES
        ]

    def exit_idle(self) -> None:
        for sc in self._waiting():
            sc.request_connection()

    def _update_picker(self) -> None:
        ready = [sc for sc in self._order if sc.state is ConnectivityState.READY]
        waiting = self._waiting()
        if ready:
            start = self._picker.next if self._picker is not None else self.helper.rng.randrange(len(ready))
            self._picker = RoundRobinPicker(ready, start, waiting)
            self.helper.update_state(ConnectivityState.READY, self._picker)
        elif not self._order:
            self.helper.update_state(ConnectivityState.TRANSIENT_FAILURE, FailPicker("resolver returned no addresses"))
        elif any(sc.state is ConnectivityState.CONNECTING and sc not in self._failed for sc in self._order) or any(
            sc.state is ConnectivityState.IDLE and sc not in self._failed and sc not in waiting for sc in self._order
        ):
            self.helper.update_state(
                ConnectivityState.CONNECTING, IdlePicker(self.exit_idle) if waiting else QueuePicker()
            )
        elif waiting:
            self.helper.update_state(ConnectivityState.IDLE, IdlePicker(self.exit_idle))
        else:
            errors = "; ".join(sc.last_error for sc in self._order if sc.last_error)
            self.helper.update_state(
                ConnectivityState.TRANSIENT_FAILURE, FailPicker(errors or "no backend is reachable")
            )

    def shutdown(self) -> None:
        for sc in self._order:
            sc.shutdown()
        self._order = []
        self._subchannels.clear()
        self._failed.clear()
