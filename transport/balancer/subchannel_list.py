"""The subchannel-list logic round_robin and least_request share (gRFC A48: "the subchannel state
handling implemented in the round_robin policy will be re-used"; grpc-go's ``balancer/base``).

A subchannel per address, every one kept connected; the policy publishes a picker over the READY
ones, built by the subclass (:meth:`SubchannelListBalancer._ready_picker`), and otherwise the
aggregate state: CONNECTING while any not-yet-failed subchannel is connecting, IDLE when the only
ones left wait for a call, TRANSIENT_FAILURE (sticky) when all failed.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence

from transport.address import Address
from transport.balancer.base import FailPicker, Helper, IdlePicker, LoadBalancer, Picker, QueuePicker, Subchannel
from transport.connectivity import ConnectivityState

#: Quick losses in a row (see ``Subchannel``) after which a subchannel reconnects only when a
#: call comes, as pick_first does: the first is forgiven (a pod restarted just after we connected).
MAX_EAGER_QUICK_LOSSES = 1


class SubchannelListBalancer(LoadBalancer):
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
    pick_first (A62), and then no sooner than its backoff allows: the READY picker gets those
    ``waiting`` subchannels and asks them to connect on each pick.
    """

    def __init__(self, helper: Helper) -> None:
        super().__init__(helper)
        self._subchannels: dict[Address, Subchannel] = {}
        self._order: list[Subchannel] = []
        #: Subchannels that reported TRANSIENT_FAILURE and have not been READY since.
        self._failed: set[Subchannel] = set()

    @abstractmethod
    def _ready_picker(self, ready: list[Subchannel], waiting: list[Subchannel]) -> Picker:
        """The picker over the READY subchannels (in address order; never empty); each pick also
        asks the ``waiting`` ones to connect."""

    def _removed(self, subchannel: Subchannel) -> None:
        """``subchannel`` left the address list (and is shut down): forget what is kept for it."""

    def update_addresses(self, addresses: Sequence[Address]) -> None:
        wanted = list(dict.fromkeys(addresses))
        for address in list(self._subchannels):
            if address not in wanted:
                gone = self._subchannels.pop(address)
                self._failed.discard(gone)
                gone.shutdown()
                self._removed(gone)
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
            self.helper.update_state(ConnectivityState.READY, self._ready_picker(ready, waiting))
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
            self._removed(sc)
        self._order = []
        self._subchannels.clear()
        self._failed.clear()
