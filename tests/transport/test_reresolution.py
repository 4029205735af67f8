"""Re-resolution with changing endpoints (#12): a headless service's pods come and go, and the
channel sees the change only when gRPC re-resolves (at start; on a connection lost, at most once
per ``min_reresolution_interval``), never when the set changes (grpc/grpc#12295)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from app.greeter.service import Greeter
from tests.helpers import FAST_BACKOFF, greet, served_by, start_greeters, wait_until
from transport import (
    Address,
    Channel,
    ChannelOptions,
    ConnectivityState,
    RpcError,
    Server,
    ServerOptions,
    StatusCode,
)
from transport.client import Endpoints, parse_target

INTERVAL = 0.2
OPTIONS = ChannelOptions(backoff=FAST_BACKOFF, seed=7, min_reresolution_interval=INTERVAL)
READY = ConnectivityState.READY


@pytest.fixture
async def pods() -> AsyncIterator[list[Server]]:
    servers = await start_greeters(4)
    yield servers
    for server in servers:
        await server.stop(grace=0.5)


@pytest.fixture
def service() -> Iterator[Callable[..., Endpoints]]:
    """Registers endpoints for the test and unregisters them after it."""
    made: list[Endpoints] = []

    def register(name: str, addresses: list[Address]) -> Endpoints:
        endpoints = Endpoints.register(name, addresses)
        made.append(endpoints)
        return endpoints

    yield register
    for endpoints in made:
        endpoints.unregister()


async def start_pod(name: str, options: ServerOptions | None = None, work: Any = None) -> Server:
    server = Server(name=name, options=options)
    server.add_service(Greeter(work=work))
    await server.start("127.0.0.1", 0)
    return server


def events(channel: Channel, kind: str) -> list[Any]:
    """Every ``kind`` event the channel emits from now on, as they come."""
    seen: list[Any] = []
    channel.add_listener(lambda _channel, k, data: seen.append(data) if k == kind else None)
    return seen


async def fire(channel: Channel, n: int) -> Counter[str]:
    results = await asyncio.gather(*(greet(channel, timeout=5) for _ in range(n)))
    return Counter(served_by(r) for r in results)


def ports(channel: Channel) -> set[int]:
    return {sc.address.port for sc in channel.subchannels}


async def all_ready(channel: Channel, servers: list[Server]) -> None:
    want = {s.port for s in servers}
    await wait_until(
        lambda: want <= {sc.address.port for sc in channel.subchannels if sc.state is READY},
        what=f"READY subchannels to {sorted(want)}",
    )


# --- the Endpoints set and its scheme -------------------------------------------------


def test_endpoints_change_bumps_the_generation_and_tells_listeners(service: Callable[..., Endpoints]) -> None:
    a, b = Address("127.0.0.1", 1001), Address("127.0.0.1", 1002)
    pods = service("gen", [a])
    told: list[int] = []
    pods.add_listener(lambda e: told.append(e.generation))
    pods.add(b)
    pods.add(b)  # already listed: no change
    pods.remove(a)
    pods.set([b])  # the same set: no change
    pods.set([a, b, a])
    assert pods.addresses == [a, b]
    assert (pods.generation, told) == (3, [1, 2, 3])
    assert pods.target == "endpoints:///gen" and Endpoints.lookup("gen") is pods
    with pytest.raises(ValueError, match="already registered"):
        Endpoints.register("gen")


def test_endpoints_targets_are_parsed() -> None:
    assert parse_target("endpoints:///pods").authority == "pods"
    assert parse_target("endpoints://ignored/pods").authority == "pods"
    for bad in ("endpoints:///", "endpoints:///a/b", "endpoints:///a b"):
        with pytest.raises(ValueError, match="endpoints:///NAME"):
            parse_target(bad)


# --- (1) round_robin sees new pods only after re-resolution ----------------------------


async def test_round_robin_sees_added_pods_only_after_a_connection_loss_triggers_reresolution(
    pods: list[Server], service: Callable[..., Endpoints]
) -> None:
    pod1, pod2, pod3, pod4 = pods
    endpoints = service("rr-scale", [pod1.address, pod2.address])
    async with Channel(endpoints.target, "round_robin", options=OPTIONS) as channel:
        await all_ready(channel, [pod1, pod2])
        assert channel.stats.resolutions == 1
        resolved = events(channel, "resolved")

        endpoints.add(pod3.address)
        endpoints.add(pod4.address)
        # Long past the minimum interval, with no connection event: the channel has not asked.
        counts = await fire(channel, 40)
        await asyncio.sleep(3 * INTERVAL)  # time passing alone must not make it look again
        counts += await fire(channel, 40)
        assert counts == {"pod-1": 40, "pod-2": 40}, counts
        assert channel.stats.resolutions == 1 and resolved == []
        assert ports(channel) == {pod1.port, pod2.port}

        pod1.kill()  # still listed, like a crashed pod before its endpoint is removed
        await wait_until(lambda: channel.stats.resolutions >= 2, 5, "a re-resolution after the loss")
        assert resolved[0] == [pod1.address, pod2.address, pod3.address, pod4.address], resolved
        await all_ready(channel, [pod2, pod3, pod4])
        counts = await fire(channel, 60)
        assert counts == {"pod-2": 20, "pod-3": 20, "pod-4": 20}, counts
        assert channel.stats.calls_failed == 0


async def test_round_robin_reresolves_when_a_connection_is_rotated_by_max_connection_age(
    service: Callable[..., Endpoints],
) -> None:
    """A GOAWAY (MAX_CONNECTION_AGE) takes a subchannel to IDLE and it reconnects at once, with
    no failure on the way: that alone must ask for re-resolution (grpc-core round_robin on
    IDLE), or the operators' fix for grpc/grpc#12295 would not bring new pods in."""
    aged = [await start_pod(f"pod-{i + 1}", ServerOptions(max_connection_age=0.5)) for i in range(2)]
    pod3 = await start_pod("pod-3")
    endpoints = service("rr-aged", [s.address for s in aged])
    try:
        async with Channel(endpoints.target, "round_robin", options=OPTIONS) as channel:
            await all_ready(channel, aged)
            endpoints.add(pod3.address)
            await wait_until(lambda: pod3.port in ports(channel), 5, "a subchannel for the new pod")
            await all_ready(channel, [pod3])
            assert channel.stats.resolutions >= 2
            assert aged[0].stats.connections_total >= 2 or aged[1].stats.connections_total >= 2
            # Pods 1 and 2 keep rotating their connections (one may be reconnecting right now).
            counts = await fire(channel, 30)
            assert counts["pod-3"] >= 8 and counts.total() == 30, counts
            assert channel.stats.calls_failed == 0, channel.stats.failures()
    finally:
        for server in [*aged, pod3]:
            await server.stop(grace=0.5)


# --- (2) a removed address's subchannel is shut down after its calls ---------------------


async def test_removing_an_address_shuts_its_subchannel_down_after_its_in_flight_calls(
    service: Callable[..., Endpoints],
) -> None:
    gate = asyncio.Event()
    gated = [await start_pod(f"pod-{i + 1}", work=gate.wait) for i in range(2)]
    pod1, pod2 = gated
    endpoints = service("rr-remove", [pod1.address, pod2.address])
    try:
        async with Channel(endpoints.target, "round_robin", options=OPTIONS) as channel:
            await all_ready(channel, [pod1, pod2])
            held = [asyncio.create_task(greet(channel, timeout=10)) for _ in range(6)]
            await wait_until(lambda: pod2.stats.calls_in_flight == 3, 5, "3 calls held on pod-2")
            (old,) = [sc for sc in channel.subchannels if sc.address == pod2.address]

            endpoints.remove(pod2.address)
            channel.request_reresolution()
            await wait_until(lambda: old.state is ConnectivityState.SHUTDOWN, 5, "pod-2's subchannel SHUTDOWN")
            assert ports(channel) == {pod1.port}
            # Its connection stays up for the calls it carries...
            assert pod2.stats.connections_open == 1 and pod2.stats.calls_in_flight == 3
            gate.set()
            results = await asyncio.gather(*held)
            assert Counter(served_by(r) for r in results) == {"pod-1": 3, "pod-2": 3}
            # ...and closes once they are done.
            await wait_until(lambda: pod2.stats.connections_open == 0, 5, "pod-2's connection to close")
            assert await fire(channel, 10) == {"pod-1": 10}
            assert channel.stats.calls_failed == 0, channel.stats.failures()
    finally:
        for server in gated:
            await server.stop(grace=0.5)


# --- (3) pick_first keeps its connection while its address is listed ----------------------


async def test_pick_first_keeps_its_connection_while_listed_and_moves_when_removed_and_gone(
    pods: list[Server], service: Callable[..., Endpoints]
) -> None:
    pod1, pod2, pod3, _ = pods
    endpoints = service("pf", [pod1.address, pod2.address])
    async with Channel(endpoints.target, "pick_first", options=OPTIONS) as channel:
        assert await fire(channel, 10) == {"pod-1": 10}
        (sc,) = channel.subchannels
        connection = sc.connection

        endpoints.set([pod3.address, pod2.address, pod1.address])  # pod-1 listed, now last
        channel.request_reresolution()
        await wait_until(lambda: channel.stats.resolutions == 2, 5, "the re-resolution")
        assert await fire(channel, 10) == {"pod-1": 10}
        assert channel.subchannels == [sc] and sc.connection is connection
        assert pod3.stats.connections_total == 0 and pod2.stats.connections_total == 0

        endpoints.remove(pod1.address)  # the pod is deleted: its endpoint goes, then it stops
        await pod1.stop(grace=1)
        await wait_until(lambda: channel.stats.resolutions == 3, 5, "the re-resolution on the loss")
        assert await fire(channel, 10) == {"pod-3": 10}
        assert channel.stats.calls_failed == 0, channel.stats.failures()


# --- (4) the resolver adds nothing to the channel's deferral (tests/transport/test_reconnect.py)


async def test_losses_inside_the_interval_coalesce_into_one_deferred_reresolution(
    pods: list[Server], service: Callable[..., Endpoints]
) -> None:
    """Two pods lost at once under round_robin: the losses' requests (IDLE, then each failed
    reconnect) inside the interval become one resolution at its end, not one each."""
    pod1, pod2, pod3, pod4 = pods
    endpoints = service("rr-coalesce", [pod1.address, pod2.address, pod3.address])
    options = ChannelOptions(backoff=FAST_BACKOFF, seed=7, min_reresolution_interval=1.0)
    async with Channel(endpoints.target, "round_robin", options=options) as channel:
        resolved_at: list[float] = []
        channel.add_listener(lambda ch, kind, _: resolved_at.append(ch.loop.time()) if kind == "resolved" else None)
        await all_ready(channel, [pod1, pod2, pod3])
        endpoints.set([pod3.address, pod4.address])
        pod1.kill()
        pod2.kill()
        await wait_until(lambda: channel.stats.resolutions == 2, 5, "the deferred re-resolution")
        assert resolved_at[1] - resolved_at[0] >= 1.0 - 0.01, resolved_at
        await all_ready(channel, [pod3, pod4])
        assert ports(channel) == {pod3.port, pod4.port}
        assert channel.stats.resolutions == 2


# --- (5) an unknown name fails calls with a sentence; registering it recovers ---------------


async def test_unknown_endpoints_fail_calls_with_a_sentence_and_the_channel_recovers(
    pods: list[Server], service: Callable[..., Endpoints]
) -> None:
    async with Channel("endpoints:///not-yet", "round_robin", options=OPTIONS) as channel:
        failed = events(channel, "resolution_failed")
        with pytest.raises(RpcError) as caught:
            await greet(channel, timeout=5)
        assert caught.value.code is StatusCode.UNAVAILABLE
        message = str(caught.value)
        assert "\n" not in message and "'not-yet'" in message, message
        assert message == "UNAVAILABLE: no endpoints named 'not-yet' are registered (target 'endpoints:///not-yet')"
        assert channel.stats.resolutions == 0 and channel.stats.resolution_failures >= 1

        service("not-yet", [pods[0].address])
        await wait_until(lambda: channel.stats.resolutions == 1, 5, "the retried resolution")
        assert failed and all("'not-yet'" in f for f in failed)
        assert served_by(await greet(channel, timeout=5)) == "pod-1"
        assert channel.resolution_error == ""


async def test_scaled_to_zero_calls_fail_and_the_channel_retries_until_pods_return(
    pods: list[Server], service: Callable[..., Endpoints]
) -> None:
    """An empty answer shuts every subchannel down and fails calls; like a failure, it is
    retried with backoff (the policy rejects it: grpc-go ``ErrBadResolverState``), so pods that
    come back are found with no connection event to trigger a re-resolution."""
    pod1, pod2, *_ = pods
    endpoints = service("zero", [pod1.address])
    async with Channel(endpoints.target, "round_robin", options=OPTIONS) as channel:
        assert await fire(channel, 4) == {"pod-1": 4}
        endpoints.set([])
        channel.request_reresolution()
        await wait_until(lambda: not channel.subchannels, 5, "every subchannel shut down")
        with pytest.raises(RpcError) as caught:
            await greet(channel, timeout=5)
        assert str(caught.value) == "UNAVAILABLE: resolver returned no addresses"
        resolutions = channel.stats.resolutions
        endpoints.add(pod2.address)
        await wait_until(lambda: pod2.port in ports(channel), 5, "the retried resolution")
        assert channel.stats.resolutions > resolutions
        assert await fire(channel, 4) == {"pod-2": 4}
