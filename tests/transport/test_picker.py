"""The picker interface (grpc-go ``balancer.PickResult``): a pick's ``done`` runs exactly once with
the status the call ended with on it, so a policy can count calls without reaching into the channel."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import ClassVar

import h2.connection
import pytest

from app.greeter.service import SAY_HELLO, Greeter
from tests.helpers import FAST, greet, served_by, wait_until
from tests.transport.test_goaway import goaway_before_processing, refuse, start_raw
from transport import Address, Channel, ConnectivityState, RpcError, Server, ServicerContext, StatusCode, unary_unary
from transport.balancer import (
    Helper,
    LoadBalancer,
    Picker,
    PickInfo,
    PickResult,
    QueuePicker,
    Subchannel,
    base,
    register_policy,
)
from transport.balancer.pick_first import _FixedPicker
from transport.balancer.round_robin import RoundRobinPicker
from transport.client.subchannel import Subchannel as ClientSubchannel

READY = ConnectivityState.READY
WAIT = "/test.T/Wait"
MISSING = "/test.T/Missing"

#: One ended pick: (pick number, method, subchannel address, status).
Ended = tuple[int, str, Address, StatusCode]


class CountingPolicy(LoadBalancer):
    """A least_request-like policy: every call on the first usable subchannel (in address order),
    counted up at the pick and down in the pick's ``done``."""

    name = "test_counting"
    instances: ClassVar[list[CountingPolicy]] = []

    def __init__(self, helper: Helper) -> None:
        super().__init__(helper)
        self.subchannels: list[Subchannel] = []
        self.calls_in_flight = 0
        self.picks = 0
        self.ended: list[Ended] = []
        self.infos: list[PickInfo] = []
        #: Pick subchannels before they are READY too: the channel must end those picks itself.
        self.eager = False
        #: ``done`` raises after recording (a policy bug must not change the call's outcome).
        self.explode = False
        self.instances.append(self)

    def update_addresses(self, addresses: Sequence[Address]) -> None:
        for address in addresses:
            sc = self.helper.create_subchannel(address)
            self.subchannels.append(sc)
            sc.request_connection()
        self._publish()

    def subchannel_state_changed(self, subchannel: Subchannel, old: ConnectivityState, new: ConnectivityState) -> None:
        self._publish()  # never reconnects: a subchannel that went IDLE stays out of the picks

    def _publish(self) -> None:
        usable = [sc for sc in self.subchannels if self.eager or sc.state is READY]
        if usable:
            self.helper.update_state(READY, _CountingPicker(self, usable[0]))
        else:
            self.helper.update_state(ConnectivityState.CONNECTING, QueuePicker())

    def done(self, pick: int, method: str, address: Address, code: StatusCode) -> None:
        self.calls_in_flight -= 1
        self.ended.append((pick, method, address, code))
        if self.explode:
            raise RuntimeError("the policy's done callback is broken")

    def shutdown(self) -> None:
        for sc in self.subchannels:
            sc.shutdown()

    def codes(self) -> list[StatusCode]:
        return [code for _, _, _, code in self.ended]

    def assert_each_pick_ended_once(self) -> None:
        assert sorted(pick for pick, _, _, _ in self.ended) == list(range(1, self.picks + 1)), self.ended
        assert self.calls_in_flight == 0, f"{self.calls_in_flight} calls in flight after every call ended"


class _CountingPicker(Picker):
    def __init__(self, policy: CountingPolicy, subchannel: Subchannel) -> None:
        self.policy = policy
        self.subchannel = subchannel

    def pick(self, info: PickInfo) -> PickResult | None:
        policy = self.policy
        policy.calls_in_flight += 1
        policy.picks += 1
        policy.infos.append(info)
        done = functools.partial(policy.done, policy.picks, info.method, self.subchannel.address)
        return PickResult(self.subchannel, done)


@pytest.fixture
def policies(monkeypatch: pytest.MonkeyPatch) -> list[CountingPolicy]:
    """Register the counting policy for this test only; the policies it creates."""
    monkeypatch.setattr(base, "_POLICIES", dict(base._POLICIES))
    register_policy(CountingPolicy)
    instances: list[CountingPolicy] = []
    monkeypatch.setattr(CountingPolicy, "instances", instances)
    return instances


@pytest.fixture
async def server() -> AsyncIterator[tuple[Server, list[str]]]:
    """pod-1: Greeter, and WAIT, which holds every call until the test ends (entries logged)."""
    entered: list[str] = []
    release = asyncio.Event()

    async def wait(request: bytes, context: ServicerContext) -> bytes:
        entered.append(WAIT)
        await release.wait()
        return request

    server = Server(name="pod-1")
    server.add_service(Greeter())
    server.add_method(WAIT, unary_unary(wait))
    await server.start("127.0.0.1", 0)
    yield server, entered
    release.set()
    await server.stop(grace=0.5)


async def test_done_gets_every_calls_final_status(
    server: tuple[Server, list[str]], policies: list[CountingPolicy]
) -> None:
    """Success, a server error, a deadline and a client cancel: each pick ends once, with its code."""
    real, entered = server
    channel = Channel.dial(str(real.address), CountingPolicy.name, options=FAST)
    [policy] = policies
    try:
        assert served_by(await greet(channel, timeout=5, metadata=(("x-user", "ada"),))) == "pod-1"
        assert policy.calls_in_flight == 0
        with pytest.raises(RpcError) as unknown:
            await channel.unary_unary(MISSING).with_call(b"", timeout=5)
        assert unknown.value.code is StatusCode.UNIMPLEMENTED
        assert policy.calls_in_flight == 0
        with pytest.raises(RpcError) as late:
            await channel.unary_unary(WAIT).with_call(b"", timeout=0.2)
        assert late.value.code is StatusCode.DEADLINE_EXCEEDED
        assert policy.calls_in_flight == 0

        call = asyncio.ensure_future(channel.unary_unary(WAIT).with_call(b"", timeout=30))
        await wait_until(lambda: len(entered) == 2, 5, "the second WAIT call to reach the server")
        assert policy.calls_in_flight == 1
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call

        address = real.address
        assert policy.ended == [
            (1, SAY_HELLO, address, StatusCode.OK),
            (2, MISSING, address, StatusCode.UNIMPLEMENTED),
            (3, WAIT, address, StatusCode.DEADLINE_EXCEEDED),
            (4, WAIT, address, StatusCode.CANCELLED),
        ]
        policy.assert_each_pick_ended_once()
        assert [info.metadata for info in policy.infos] == [(("x-user", "ada"),), (), (), ()]
        assert channel.stats.status_counts() == {"OK": 1, "UNIMPLEMENTED": 1, "DEADLINE_EXCEEDED": 1, "CANCELLED": 1}
    finally:
        await channel.close(grace=0)


@pytest.mark.parametrize(
    ("turn_away", "outcome"),
    [
        # GOAWAY below the stream: retried on a fresh pick, which lands on pod-1.
        (goaway_before_processing, [StatusCode.UNAVAILABLE, StatusCode.OK]),
        # REFUSED_STREAM leaves the connection up: the retry is refused too, and the call fails.
        (refuse, [StatusCode.UNAVAILABLE, StatusCode.UNAVAILABLE]),
    ],
)
async def test_transparent_retry_ends_the_first_pick_and_picks_again(
    server: tuple[Server, list[str]],
    policies: list[CountingPolicy],
    turn_away: Callable[[h2.connection.H2Connection, int], None],
    outcome: list[StatusCode],
) -> None:
    """The attempt the server never processed ends its pick with UNAVAILABLE; the retry has its own."""
    real, _ = server
    raw, log = await start_raw(turn_away)
    raw_address = Address("127.0.0.1", raw.sockets[0].getsockname()[1])
    channel = Channel.dial(f"ipv4:{raw_address},{real.address}", CountingPolicy.name, options=FAST)
    [policy] = policies
    try:
        await wait_until(lambda: sum(sc.state is READY for sc in channel.subchannels) == 2, 5, "both READY")
        try:
            result = served_by(await greet(channel, timeout=5))
        except RpcError as exc:
            result = exc.code.name
        assert result == ("pod-1" if outcome[-1] is StatusCode.OK else "UNAVAILABLE")
        assert policy.codes() == outcome
        assert [address for _, _, address, _ in policy.ended] == [
            raw_address,
            real.address if outcome[-1] is StatusCode.OK else raw_address,
        ]
        assert len(log) == (1 if outcome[-1] is StatusCode.OK else 2)
        policy.assert_each_pick_ended_once()
    finally:
        await channel.close(grace=0)
        raw.close()


async def test_a_pick_the_channel_cannot_use_ends_unavailable(
    server: tuple[Server, list[str]], policies: list[CountingPolicy]
) -> None:
    """A pick on a subchannel not connected yet is ended by the channel, which waits for a new picker."""
    real, _ = server
    channel = Channel.dial(str(real.address), CountingPolicy.name, options=FAST)
    [policy] = policies
    policy.eager = True  # set before the resolver's addresses arrive
    try:
        assert served_by(await greet(channel, timeout=5)) == "pod-1"
        codes = policy.codes()
        assert codes[-1] is StatusCode.OK
        assert len(codes) >= 2, codes
        assert set(codes[:-1]) == {StatusCode.UNAVAILABLE}
        policy.assert_each_pick_ended_once()
    finally:
        await channel.close(grace=0)


async def test_picks_on_a_connection_that_never_comes_all_end(policies: list[CountingPolicy]) -> None:
    """A server that accepts TCP but never speaks HTTP/2: every pick on it is ended (UNAVAILABLE),
    the first one included, and the call ends DEADLINE_EXCEEDED with nothing left in flight."""
    silent = await asyncio.get_running_loop().create_server(asyncio.Protocol, "127.0.0.1", 0)
    channel = Channel.dial(f"127.0.0.1:{silent.sockets[0].getsockname()[1]}", CountingPolicy.name, options=FAST)
    [policy] = policies
    policy.eager = True
    try:
        await wait_until(lambda: [sc.state for sc in channel.subchannels] == [ConnectivityState.CONNECTING], 5)
        with pytest.raises(RpcError) as info:
            await greet(channel, timeout=0.3)
        assert info.value.code is StatusCode.DEADLINE_EXCEEDED
        assert len(policy.ended) >= 2, policy.ended  # the call's first pick, and its pick after waiting
        assert set(policy.codes()) == {StatusCode.UNAVAILABLE}
        policy.assert_each_pick_ended_once()
    finally:
        await channel.close(grace=0)
        silent.close()


async def test_a_failing_done_does_not_change_the_call(
    server: tuple[Server, list[str]], policies: list[CountingPolicy], caplog: pytest.LogCaptureFixture
) -> None:
    """A policy's broken ``done`` is logged; the call still returns its response."""
    real, _ = server
    channel = Channel.dial(str(real.address), CountingPolicy.name, options=FAST)
    [policy] = policies
    policy.explode = True
    try:
        with caplog.at_level(logging.ERROR, logger="transport.client.channel"):
            assert served_by(await greet(channel, timeout=5)) == "pod-1"
        assert policy.codes() == [StatusCode.OK]
        assert "done callback failed" in caplog.text
        assert channel.stats.status_counts() == {"OK": 1}
    finally:
        await channel.close(grace=0)


def test_stock_pickers_reuse_one_result_per_subchannel() -> None:
    """pick_first and round_robin allocate no PickResult per call, and set no ``done``."""
    a, b = (ClientSubchannel(Address("127.0.0.1", port), "test") for port in (1, 2))
    info = PickInfo(SAY_HELLO, ())
    fixed = _FixedPicker(a)
    first = fixed.pick(info)
    assert first is not None and first.subchannel is a and first.done is None
    assert fixed.pick(info) is first
    rr = RoundRobinPicker([a, b], 0)
    picks = [rr.pick(info) for _ in range(4)]
    assert [p.subchannel if p is not None else None for p in picks] == [a, b, a, b]
    assert picks[0] is picks[2] and picks[1] is picks[3]
