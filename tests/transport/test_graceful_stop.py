"""Graceful stop under load: no call the server answered is reported as failed.

The server stops with grpc's graceful GOAWAY (GOAWAY 2^31-1 + PING, then the
final GOAWAY, then a half-close that lets the client close). Calls the server
did not take are refused and retried transparently elsewhere, so a rolling
restart of one pod of four fails no call at all.
"""

from __future__ import annotations

import asyncio
import contextlib

from tests.helpers import FAST, greet, start_greeters, wait_until
from tests.processes import ServeProcess, calls_served
from transport import Channel, RpcError, Server, StatusCode


class Load:
    """``concurrency`` callers firing greets until ``total`` have been fired; every outcome counted."""

    def __init__(self, channel: Channel, total: int, concurrency: int) -> None:
        self.channel = channel
        self.left = total
        self.outcomes: dict[str, int] = {}
        self.tasks = [asyncio.ensure_future(self._worker()) for _ in range(concurrency)]

    async def _worker(self) -> None:
        while self.left > 0:
            self.left -= 1
            try:
                await greet(self.channel, timeout=10)
                code = "OK"
            except RpcError as exc:
                code = exc.code.name
            self.outcomes[code] = self.outcomes.get(code, 0) + 1

    @property
    def done(self) -> int:
        return sum(self.outcomes.values())

    async def finish(self) -> dict[str, int]:
        await asyncio.wait_for(asyncio.gather(*self.tasks), 60)
        return self.outcomes


async def test_rolling_restart_of_one_pod_of_four_fails_zero_calls() -> None:
    """round_robin over 4 ``rpcviz serve`` processes, 64 calls in flight: SIGTERM pod 2, start it again on
    its port; all 6,000 calls succeed, and every call a pod answered is one the client counted."""
    pods = [await ServeProcess.start(f"pod-{i + 1}") for i in range(4)]
    served = 0
    try:
        channel = Channel.dial("ipv4:" + ",".join(p.address for p in pods), "round_robin", options=FAST)
        await channel.wait_for_state(channel.state.READY, 5)
        load = Load(channel, total=6000, concurrency=64)
        await wait_until(lambda: load.done >= 1500, 60, "1500 calls before the restart")
        served += calls_served(await pods[1].terminate())
        await wait_until(lambda: load.done >= 3000, 60, "1500 calls while the pod is down")
        pods[1] = await ServeProcess.start("pod-2", pods[1].port)
        outcomes = await load.finish()
        await channel.close(grace=1)
        for pod in pods:
            served += calls_served(await pod.terminate())
        assert outcomes == {"OK": 6000}
        assert served == 6000
    finally:
        for pod in pods:
            await pod.kill()


async def test_stopping_the_only_server_never_fails_an_answered_call() -> None:
    """pick_first to one ``rpcviz serve`` under load (64 in flight), then SIGTERM: every call it answered
    is OK on the client; the rest fail with UNAVAILABLE (there is nowhere else to go)."""
    pod = await ServeProcess.start("pod-1")
    try:
        channel = Channel.dial(pod.address, "pick_first", options=FAST)
        load = Load(channel, total=100_000, concurrency=64)
        await wait_until(lambda: load.done >= 3000, 60, "3000 calls before the stop")
        served = calls_served(await pod.terminate())
        load.left = 0
        outcomes = await load.finish()
        await channel.close(grace=0)
        assert outcomes["OK"] == served
        assert set(outcomes) <= {"OK", "UNAVAILABLE"}
    finally:
        await pod.kill()


async def test_stop_waits_for_the_client_to_close_and_returns_when_it_has() -> None:
    """After the final GOAWAY the server half-closes and the client closes: stop() returns at once, not after a
    linger timeout, and every connection is gone."""
    [server] = await start_greeters(1)
    channel = Channel.dial(str(server.address), "pick_first", options=FAST)
    try:
        await greet(channel, timeout=5)
        loop = asyncio.get_running_loop()
        began = loop.time()
        await server.stop(grace=5)
        assert loop.time() - began < 2.0, "stop() waited for a timeout instead of the client's close"
        assert server.stats.connections_open == 0
    finally:
        await channel.close(grace=0)


async def test_grace_over_ends_running_calls_with_unavailable() -> None:
    """A call still running when the grace ends fails with UNAVAILABLE and a reason, and stop() returns."""
    from app.cluster.load import LoadModel
    from app.greeter.service import Greeter

    slow = Server(name="slow")
    slow.add_service(Greeter(work=LoadModel(service_time=30, workers=1).work))
    await slow.start()
    channel = Channel.dial(str(slow.address), "pick_first", options=FAST)
    try:
        call = asyncio.ensure_future(greet(channel, timeout=20))
        await wait_until(lambda: slow.stats.calls_in_flight == 1, 5, "the call to reach the server")
        await asyncio.wait_for(slow.stop(grace=0.2), 5)
        try:
            await asyncio.wait_for(call, 5)
        except RpcError as exc:
            assert exc.code is StatusCode.UNAVAILABLE
            assert "shutting down" in exc.details
        else:
            raise AssertionError("a call still running at the end of the grace succeeded")
    finally:
        with contextlib.suppress(Exception):
            await channel.close(grace=0)
