"""round_robin: a subchannel per address, one pick per call over the READY ones."""

from __future__ import annotations

from collections.abc import Sequence

from transport.balancer.base import Helper, Picker, PickInfo, PickResult, Subchannel, register_policy
from transport.balancer.subchannel_list import MAX_EAGER_QUICK_LOSSES, SubchannelListBalancer

__all__ = ["MAX_EAGER_QUICK_LOSSES", "RoundRobin", "RoundRobinPicker"]


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
class RoundRobin(SubchannelListBalancer):
    """Connects to every address and rotates the calls over the READY ones, from a random start
    that carries over when the picker is rebuilt. Connectivity, sticky TRANSIENT_FAILURE and the
    IDLE handling are :class:`~transport.balancer.subchannel_list.SubchannelListBalancer`'s."""

    name = "round_robin"
    health_checking = True

    def __init__(self, helper: Helper) -> None:
        super().__init__(helper)
        self._picker: RoundRobinPicker | None = None

    def _ready_picker(self, ready: list[Subchannel], waiting: list[Subchannel]) -> Picker:
        start = self._picker.next if self._picker is not None else self.helper.rng.randrange(len(ready))
        self._picker = RoundRobinPicker(ready, start, waiting)
        return self._picker
