"""least_request (gRFC A48): sample ``choice_count`` READY subchannels, send the call to the one
with the fewest outstanding calls ("power of two choices" at the default of 2).

On identical backends it spreads like round_robin; a slow backend holds its calls longer, so its
count stays high and it loses most comparisons: it gets far less than its 1/N share.
"""

from __future__ import annotations

import operator
import random
from collections.abc import Mapping, Sequence

from transport.balancer.base import Helper, Picker, PickInfo, PickResult, Subchannel, register_policy
from transport.balancer.subchannel_list import SubchannelListBalancer
from transport.status import StatusCode

#: A48: "choice_count ... Optional, defaults to 2."
DEFAULT_CHOICE_COUNT = 2
#: A48 (as grpc-go's ``ParseConfig``): a larger choice_count is clamped to 10.
MAX_CHOICE_COUNT = 10


def parse_choice_count(value: object) -> int:
    """A48's rule: below 2 is rejected (ValueError naming the setting), above 10 becomes 10."""
    try:
        count = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(f"least_request choice_count must be an integer, not {value!r}") from None
    if count < DEFAULT_CHOICE_COUNT:
        raise ValueError(f"least_request choice_count must be at least {DEFAULT_CHOICE_COUNT}, not {value!r}")
    return min(count, MAX_CHOICE_COUNT)


class Outstanding:
    """One subchannel's outstanding calls: up at each pick, down in the pick's ``done``, whatever
    the status. It lives as long as the subchannel (A48), across pickers and READY spells, so a
    call that ends after the picker changed still counts down the right number."""

    __slots__ = ("calls",)

    def __init__(self) -> None:
        self.calls = 0

    def done(self, code: StatusCode) -> None:
        self.calls -= 1


class LeastRequestPicker(Picker):
    """A48's pick: ``choice_count`` samples, uniform **with replacement** over the READY
    subchannels; the fewest outstanding calls wins, a tie keeps the earlier sample. The results
    are prebuilt, one per subchannel, their ``done`` the subchannel's counter: a pick allocates
    nothing. Each pick also asks the ``waiting`` subchannels (IDLE until a call comes) to connect."""

    __slots__ = ("choice_count", "counters", "random", "results", "size", "waiting")

    def __init__(
        self,
        subchannels: Sequence[Subchannel],
        counters: Sequence[Outstanding],
        choice_count: int,
        rng: random.Random,
        waiting: Sequence[Subchannel] = (),
    ) -> None:
        if len(subchannels) != len(counters) or not subchannels:
            raise ValueError("a least_request picker needs one counter per READY subchannel, and at least one")
        self.results = [PickResult(sc, counter.done) for sc, counter in zip(subchannels, counters, strict=True)]
        self.counters = list(counters)
        self.size = len(self.results)
        self.choice_count = choice_count
        self.random = rng.random
        self.waiting = waiting

    def pick(self, info: PickInfo) -> PickResult | None:
        for idle in self.waiting:
            idle.request_connection()
        counters, size, rand = self.counters, self.size, self.random
        best = int(rand() * size)
        fewest = counters[best].calls
        left = self.choice_count - 1
        while left:
            sampled = int(rand() * size)
            calls = counters[sampled].calls
            if calls < fewest:
                best, fewest = sampled, calls
            left -= 1
        counters[best].calls = fewest + 1
        return self.results[best]


@register_policy
class LeastRequest(SubchannelListBalancer):
    """gRFC A48's ``least_request_experimental`` (grpc-go ``balancer/leastrequest``), registered as
    ``least_request``. Connectivity, sticky TRANSIENT_FAILURE and IDLE handling are round_robin's
    (:class:`~transport.balancer.subchannel_list.SubchannelListBalancer`).

    ``choice_count`` (default 2; below 2 a ValueError, above 10 clamped to 10) is set with
    ``LeastRequest(helper, choice_count=3)`` or, through a channel, with the policy's config::

        Channel(target, "least_request", options=ChannelOptions(lb_config={"choice_count": 3}))

    Sampling uses ``helper.rng`` (seeded by ``ChannelOptions.seed``), so it can be replayed.
    :meth:`outstanding` reads a subchannel's count (for a UI).
    """

    name = "least_request"
    health_checking = True

    def __init__(self, helper: Helper, choice_count: int = DEFAULT_CHOICE_COUNT) -> None:
        super().__init__(helper)
        self.choice_count = parse_choice_count(choice_count)
        self._counters: dict[Subchannel, Outstanding] = {}

    @classmethod
    def from_config(cls, helper: Helper, config: Mapping[str, object]) -> LeastRequest:
        unknown = sorted(set(config) - {"choice_count"})
        if unknown:
            raise ValueError(f"least_request has no setting {', '.join(unknown)} (it has: choice_count)")
        return cls(helper, parse_choice_count(config.get("choice_count", DEFAULT_CHOICE_COUNT)))

    def outstanding(self, subchannel: Subchannel) -> int:
        """Calls picked for ``subchannel`` that have not ended yet (0 for one never picked)."""
        counter = self._counters.get(subchannel)
        return counter.calls if counter is not None else 0

    def _ready_picker(self, ready: list[Subchannel], waiting: list[Subchannel]) -> Picker:
        counters = [self._counters.setdefault(sc, Outstanding()) for sc in ready]
        return LeastRequestPicker(ready, counters, self.choice_count, self.helper.rng, waiting)

    def _removed(self, subchannel: Subchannel) -> None:
        self._counters.pop(subchannel, None)
