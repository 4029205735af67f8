"""least_request (gRFC A48): the picker on fake subchannels, then the policy against real servers,
a slow pod among them (the issue's measured claim, in a bounded form)."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest

from app.cluster.load import LoadModel
from app.greeter.service import Greeter
from tests.helpers import FAST, greet, ipv4_target, served_by, wait_until
from transport import Address, Channel, ChannelOptions, ConnectivityState, RpcError, Server, StatusCode
from transport.balancer import Picker, PickInfo, get_policy, policy_names
from transport.balancer.least_request import LeastRequest, LeastRequestPicker, Outstanding

READY = ConnectivityState.READY
INFO = PickInfo("/helloworld.Greeter/SayHello", ())


# --- fakes for the picker and the policy (no sockets) ------------------------------------


@dataclass(eq=False)
class FakeSubchannel:
    """The part of a subchannel a policy uses; the test sets its state."""

    address: Address
    state: ConnectivityState = ConnectivityState.IDLE
    last_error: str = ""
    quick_losses: int = 0
    connects: int = 0
    shut: bool = False

    def request_connection(self) -> None:
        self.connects += 1

    def shutdown(self) -> None:
        self.shut = True


@dataclass
class FakeHelper:
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    created: list[FakeSubchannel] = field(default_factory=list)
    states: list[tuple[ConnectivityState, Picker]] = field(default_factory=list)
    reresolutions: int = 0

    def create_subchannel(self, address: Address) -> FakeSubchannel:
        sc = FakeSubchannel(address)
        self.created.append(sc)
        return sc

    def update_state(self, state: ConnectivityState, picker: Picker) -> None:
        self.states.append((state, picker))

    def request_reresolution(self) -> None:
        self.reresolutions += 1

    @property
    def picker(self) -> Picker:
        return self.states[-1][1]


class ScriptedRandom(random.Random):
    """``random()`` yields the centre of bucket i of n for each scripted index i: the samples."""

    def __init__(self, indices: Sequence[int], n: int) -> None:
        super().__init__(0)
        self._values = iter([(i + 0.5) / n for i in indices])

    def random(self) -> float:
        return next(self._values)


def subchannels(n: int) -> list[FakeSubchannel]:
    return [FakeSubchannel(Address("127.0.0.1", 1000 + i), READY) for i in range(n)]


def picker_with(calls: Sequence[int], samples: Sequence[int], choice_count: int = 2) -> LeastRequestPicker:
    """A picker over len(calls) READY subchannels with those outstanding counts, sampling ``samples``."""
    counters = [Outstanding() for _ in calls]
    for counter, n in zip(counters, calls, strict=True):
        counter.calls = n
    return LeastRequestPicker(subchannels(len(calls)), counters, choice_count, ScriptedRandom(samples, len(calls)))


def picked_index(picker: LeastRequestPicker) -> int:
    result = picker.pick(INFO)
    assert result is not None
    return picker.results.index(result)


def ready_policy(n: int, choice_count: int = 2, seed: int = 7) -> tuple[LeastRequest, FakeHelper]:
    helper = FakeHelper(random.Random(seed))
    policy = LeastRequest(helper, choice_count)
    policy.update_addresses([Address("127.0.0.1", 2000 + i) for i in range(n)])
    for sc in helper.created:
        old, sc.state = sc.state, READY
        policy.subchannel_state_changed(sc, old, READY)
    assert helper.states[-1][0] is READY
    return policy, helper


# --- the picker ----------------------------------------------------------------------------


def test_samples_with_replacement() -> None:
    """The same subchannel sampled twice is picked even though another has fewer calls (A48:
    "random selection will allow a subchannel to be sampled multiple times")."""
    picker = picker_with(calls=[0, 5], samples=[1, 1])
    assert picked_index(picker) == 1
    assert [c.calls for c in picker.counters] == [0, 6]


def test_fewest_outstanding_wins() -> None:
    """Of the sampled subchannels the one with the fewest outstanding calls wins, wherever sampled."""
    assert picked_index(picker_with(calls=[0, 5], samples=[1, 0])) == 0
    assert picked_index(picker_with(calls=[3, 1, 2], samples=[0, 2, 1], choice_count=3)) == 1
    assert picked_index(picker_with(calls=[3, 1, 2], samples=[0, 2], choice_count=2)) == 2


def test_tie_goes_to_the_first_sampled() -> None:
    """Equal counts: the first sample wins (A48's pseudo-code replaces only on strictly fewer)."""
    assert picked_index(picker_with(calls=[0, 0, 0], samples=[2, 0])) == 2
    assert picked_index(picker_with(calls=[0, 0, 0], samples=[0, 2])) == 0
    assert picked_index(picker_with(calls=[4, 1, 1, 1], samples=[3, 1, 2, 0], choice_count=4)) == 3


def test_pick_allocates_no_result() -> None:
    """Every pick for a subchannel returns its one prebuilt result, ``done`` bound to its counter."""
    picker = picker_with(calls=[0, 0], samples=[0, 0] * 3)
    results = {id(picker.pick(INFO)) for _ in range(3)}
    assert results == {id(picker.results[0])}
    assert picker.counters[0].calls == 3
    assert picker.results[0].done == picker.counters[0].done


def test_sampling_is_uniform_and_seeded() -> None:
    """With every call ending at once (all counts 0) the first sample always wins, so the picks show
    the sampling itself: uniform over 4 subchannels (each 1000 ± 100 of 4000), and the same seed
    replays the same picks."""

    def run(seed: int) -> list[int]:
        _policy, helper = ready_policy(4, seed=seed)
        order = helper.created
        picks = []
        for _ in range(4000):
            result = helper.picker.pick(INFO)
            assert result is not None and result.done is not None
            result.done(StatusCode.OK)
            picks.append(order.index(result.subchannel))  # type: ignore[arg-type]
        return picks

    picks = run(7)
    shares = Counter(picks)
    assert all(900 <= shares[i] <= 1100 for i in range(4)), f"picks per subchannel of 4000: {dict(shares)}"
    assert run(7) == picks
    assert run(8) != picks


def test_two_choices_balance_outstanding_calls() -> None:
    """400 picks that never end, over 4 subchannels: two choices keep the outstanding counts within
    a few of each other (random choice would spread them by ~±20)."""
    policy, helper = ready_policy(4)
    for _ in range(400):
        assert helper.picker.pick(INFO) is not None
    counts = [policy.outstanding(sc) for sc in helper.created]
    assert sum(counts) == 400
    assert max(counts) - min(counts) <= 4, f"outstanding per subchannel: {counts}"


@pytest.mark.parametrize("code", list(StatusCode), ids=lambda c: c.name)
def test_counter_up_on_pick_down_on_done_whatever_the_status(code: StatusCode) -> None:
    """The count goes up at the pick and down in ``done``, for every status a call can end with."""
    policy, helper = ready_policy(2)
    result = helper.picker.pick(INFO)
    assert result is not None and result.done is not None
    assert policy.outstanding(result.subchannel) == 1
    result.done(code)
    assert [policy.outstanding(sc) for sc in helper.created] == [0, 0]


def test_counters_outlive_pickers_and_go_with_their_subchannel() -> None:
    """A call picked before the picker changed counts down the same counter after; a subchannel
    that leaves READY and comes back keeps its count; a removed subchannel's counter is dropped."""
    policy, helper = ready_policy(2)
    a, b = helper.created
    held = [helper.picker.pick(INFO) for _ in range(4)]
    before = [policy.outstanding(a), policy.outstanding(b)]
    assert sum(before) == 4
    b.state = ConnectivityState.IDLE
    policy.subchannel_state_changed(b, READY, ConnectivityState.IDLE)
    b.state = READY
    policy.subchannel_state_changed(b, ConnectivityState.IDLE, READY)
    assert [policy.outstanding(a), policy.outstanding(b)] == before
    for result in held:
        assert result is not None and result.done is not None
        result.done(StatusCode.UNAVAILABLE)
    assert [policy.outstanding(a), policy.outstanding(b)] == [0, 0]
    helper.picker.pick(INFO)
    policy.update_addresses([a.address])
    assert b.shut and policy.outstanding(b) == 0 and b not in policy._counters


def test_only_ready_subchannels_are_sampled() -> None:
    """A subchannel that is not READY is never picked, whatever its count."""
    policy, helper = ready_policy(3)
    down = helper.created[1]
    down.state = ConnectivityState.TRANSIENT_FAILURE
    policy.subchannel_state_changed(down, READY, ConnectivityState.TRANSIENT_FAILURE)
    picks: Counter[Address] = Counter()
    for _ in range(300):
        result = helper.picker.pick(INFO)
        assert result is not None
        picks[result.subchannel.address] += 1
    assert down.address not in picks and sum(picks.values()) == 300
    assert helper.reresolutions == 1


@pytest.mark.parametrize("value", [1, 0, -3, "3", 2.5, None, True])
def test_choice_count_below_two_or_not_an_integer_is_rejected(value: object) -> None:
    """choice_count < 2 (or not an integer) is a ValueError naming the setting (A48)."""
    with pytest.raises(ValueError, match="choice_count"):
        LeastRequest(FakeHelper(), value)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="choice_count"):
        LeastRequest.from_config(FakeHelper(), {"choice_count": value})


@pytest.mark.parametrize(("value", "used"), [(2, 2), (3, 3), (10, 10), (11, 10), (1000, 10)])
def test_choice_count_above_ten_is_clamped(value: int, used: int) -> None:
    """choice_count > 10 becomes 10 (A48; grpc-go ``ParseConfig``)."""
    assert LeastRequest(FakeHelper(), value).choice_count == used
    assert LeastRequest.from_config(FakeHelper(), {"choice_count": value}).choice_count == used


def test_config_defaults_and_unknown_settings() -> None:
    """No config or an empty one means choice_count 2; an unknown setting is a ValueError naming it."""
    assert LeastRequest(FakeHelper()).choice_count == 2
    assert LeastRequest.from_config(FakeHelper(), {}).choice_count == 2
    with pytest.raises(ValueError, match="choiceCont"):
        LeastRequest.from_config(FakeHelper(), {"choiceCont": 3})


async def test_channel_lb_config_reaches_the_policy() -> None:
    """ChannelOptions.lb_config configures the channel's policy; a bad one fails Channel(); a policy
    without settings rejects one; least_request is listed (``rpcviz call --policy``)."""
    assert "least_request" in policy_names() and get_policy("least_request") is LeastRequest
    target = "ipv4:127.0.0.1:1"
    async with Channel(target, "least_request", options=ChannelOptions(lb_config={"choice_count": 3})) as channel:
        assert isinstance(channel.balancer, LeastRequest) and channel.balancer.choice_count == 3
    async with Channel(target, "least_request") as channel:
        assert isinstance(channel.balancer, LeastRequest) and channel.balancer.choice_count == 2
    with pytest.raises(ValueError, match="choice_count must be at least 2, not 1"):
        Channel(target, "least_request", options=ChannelOptions(lb_config={"choice_count": 1}))
    with pytest.raises(ValueError, match="round_robin has no settings"):
        Channel(target, "round_robin", options=ChannelOptions(lb_config={"choice_count": 3}))


# --- against real servers ------------------------------------------------------------------

#: Service times of the slow-pod setup. Ten times slower, and long enough that the client's own
#: per-call cost (one event loop for client and pods) does not shrink the ratio much.
FAST_SERVICE = 0.020
SLOW_SERVICE = 0.200
#: Steady load: this many calls, CONCURRENCY at a time. With replacement, the slow pod is picked
#: whenever it is sampled twice (1/16 of the picks): A48's floor. A simulation of ideal P2C on this
#: setup gives 7-8 % at 1600 calls (and 7.5-10 % at 800: too close to the 10 % bound).
CALLS = 1600
CONCURRENCY = 32


async def pods(service_times: Sequence[float]) -> list[Server]:
    servers = []
    for i, service_time in enumerate(service_times):
        server = Server(name=f"pod-{i + 1}")
        server.add_service(Greeter(work=LoadModel(service_time=service_time, workers=CONCURRENCY).work))
        await server.start("127.0.0.1", 0)
        servers.append(server)
    return servers


@pytest.fixture
async def slow_pod_2() -> AsyncIterator[list[Server]]:
    """4 pods; pod-2 takes ten times as long per call (200 ms against 20 ms)."""
    servers = await pods([FAST_SERVICE, SLOW_SERVICE, FAST_SERVICE, FAST_SERVICE])
    yield servers
    for server in servers:
        await server.stop(grace=0.5)


@pytest.fixture
async def even_pods() -> AsyncIterator[list[Server]]:
    servers = await pods([0.002] * 4)
    yield servers
    for server in servers:
        await server.stop(grace=0.5)


async def all_ready(channel: Channel, n: int) -> None:
    await wait_until(
        lambda: len(channel.subchannels) == n and all(sc.state is READY for sc in channel.subchannels),
        what=f"{n} READY subchannels",
    )


async def steady_load(channel: Channel, calls: int = CALLS, concurrency: int = CONCURRENCY) -> Counter[str]:
    """``calls`` calls, ``concurrency`` at a time (each worker starts its next as one ends): per pod."""
    served: Counter[str] = Counter()
    left = calls

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            served[served_by(await greet(channel, timeout=5))] += 1

    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), 60)
    assert sum(served.values()) == calls
    return served


def shares(served: Counter[str]) -> str:
    total = sum(served.values())
    return ", ".join(f"{pod} {n} ({n / total:.1%})" for pod, n in sorted(served.items()))


@pytest.mark.parametrize("policy", ["least_request", "round_robin"])
async def test_slow_pod_gets_little_under_least_request_a_quarter_under_round_robin(
    slow_pod_2: list[Server], policy: str
) -> None:
    """The issue's claim, bounded: 1600 calls at concurrency 32 over 4 pods, pod-2 ×10 slower.
    least_request sends pod-2 under 10 % of the calls; round_robin 25 ± 2 %, blind to its slowness."""
    async with Channel(ipv4_target(slow_pod_2), policy, options=FAST) as channel:
        await all_ready(channel, 4)
        served = await steady_load(channel)
        share = served["pod-2"] / CALLS
        if policy == "least_request":
            assert share < 0.10, f"least_request gave the slow pod-2 {share:.1%} (want < 10 %): {shares(served)}"
            assert isinstance(channel.balancer, LeastRequest)
            assert [channel.balancer.outstanding(sc) for sc in channel.subchannels] == [0, 0, 0, 0]
        else:
            assert abs(share - 0.25) <= 0.02, f"round_robin gave pod-2 {share:.1%} (want 25 ± 2 %): {shares(served)}"
        assert channel.stats.calls_succeeded == CALLS


async def test_identical_pods_share_evenly(even_pods: list[Server]) -> None:
    """On identical pods least_request looks like round_robin: each of 4 gets 100 ± 25 of 400."""
    async with Channel(ipv4_target(even_pods), "least_request", options=FAST) as channel:
        await all_ready(channel, 4)
        served = await steady_load(channel, 400, 16)
    assert set(served) == {f"pod-{i}" for i in range(1, 5)}, shares(served)
    assert all(75 <= n <= 125 for n in served.values()), f"want each 100 ± 25: {shares(served)}"


async def fire(channel: Channel, n: int) -> Counter[str]:
    results = await asyncio.gather(*(greet(channel, timeout=5) for _ in range(n)))
    return Counter(served_by(r) for r in results)


async def test_dead_pod_is_skipped_and_rejoins(greeters: list[Server]) -> None:
    """A killed pod leaves READY and gets no calls, every call still succeeds on the others; restarted
    on its port it is READY again and gets calls."""
    async with Channel(ipv4_target(greeters), "least_request", options=FAST) as channel:
        await all_ready(channel, 4)
        old = greeters[1]
        port = old.port
        (sc,) = [sc for sc in channel.subchannels if sc.address.port == port]
        old.kill()
        await wait_until(lambda: sc.state is not READY, what="dead subchannel leaves READY")
        counts = await fire(channel, 90)
        assert "pod-2" not in counts and sum(counts.values()) == 90, counts
        await wait_until(lambda: sc.state is ConnectivityState.TRANSIENT_FAILURE, what="TRANSIENT_FAILURE")
        assert channel.state is READY
        reborn = Server(name="pod-2b")
        reborn.add_service(Greeter())
        await reborn.start("127.0.0.1", port)
        try:
            await wait_until(lambda: sc.state is READY, what="rejoined subchannel READY")
            assert channel.subchannels.count(sc) == 1 and len(channel.subchannels) == 4
            counts = await fire(channel, 100)
            assert counts["pod-2b"] > 0 and sum(counts.values()) == 100, counts
        finally:
            await reborn.stop(grace=0.5)


async def test_failure_is_sticky_until_a_pod_is_ready() -> None:
    """Every pod down: the channel stays TRANSIENT_FAILURE through the retries and calls fail fast with
    UNAVAILABLE; one pod coming up makes it READY and calls go there."""
    servers = await pods([FAST_SERVICE, FAST_SERVICE])
    ports = [s.port for s in servers]
    states: list[ConnectivityState] = []
    channel = Channel(ipv4_target(servers), "least_request", options=FAST)
    channel.add_listener(lambda ch, kind, data: states.append(data) if kind == "state" else None)
    late = None
    try:
        await all_ready(channel, 2)
        for server in servers:
            server.kill()
        await channel.wait_for_state(ConnectivityState.TRANSIENT_FAILURE, timeout=5)
        failed_at = len(states)
        retries = sum(sc.stats.connect_failures for sc in channel.subchannels)
        await wait_until(
            lambda: sum(sc.stats.connect_failures for sc in channel.subchannels) >= retries + 4,
            what="several reconnect attempts",
        )
        assert set(states[failed_at:]) <= {ConnectivityState.TRANSIENT_FAILURE}, states[failed_at:]
        with pytest.raises(RpcError) as info:
            await asyncio.wait_for(greet(channel), 1.0)
        assert info.value.code is StatusCode.UNAVAILABLE
        late = Server(name="pod-late")
        late.add_service(Greeter())
        await late.start("127.0.0.1", ports[1])
        await channel.wait_for_state(READY, timeout=5)
        assert served_by(await greet(channel, timeout=5)) == "pod-late"
    finally:
        await channel.close(grace=0)
        if late is not None:
            await late.stop(grace=0.5)
