"""``rpcviz attach``: the same screen on servers the app does not own (real servers and a real L4
proxy on 127.0.0.1, started by the test as a deployment would be)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from app.cluster.attached import AttachedCluster
from app.cluster.load import LoadModel
from app.cluster.pod import Pod
from app.ui import AttachApp
from app.widgets.pod_box import PodBox
from tests.cli.test_cluster_up import Cluster, cluster_up, stop
from tests.helpers import FAST_BACKOFF, wait_until
from transport import ChannelOptions
from transport.proxy.l4 import L4Proxy
from transport.proxy.l7 import L7Proxy


@pytest.fixture
async def deployment() -> AsyncIterator[tuple[list[Pod], L4Proxy]]:
    pods = [Pod(i, LoadModel(service_time=0.0)) for i in range(1, 5)]
    for pod in pods:
        await pod.start()
    proxy = L4Proxy([pod.address for pod in pods], strategy="random", seed=11)
    await proxy.start()
    try:
        yield pods, proxy
    finally:
        await proxy.stop()
        for pod in pods:
            await pod.stop(grace=0.5)


async def test_attach_pins_through_the_vip_balances_with_round_robin_and_refuses_to_kill(
    deployment: tuple[list[Pod], L4Proxy],
) -> None:
    pods, proxy = deployment
    listed = ",".join(f"{pod.address.host}:{pod.address.port}" for pod in pods)
    cluster = AttachedCluster(str(proxy.address), f"ipv4:{listed}", options=ChannelOptions(backoff=FAST_BACKOFF))
    app = AttachApp(cluster)
    async with app.run_test(size=(120, 36)) as pilot:
        await cluster.wait_ready()
        assert [p.name for p in cluster.pods] == ["pod-1", "pod-2", "pod-3", "pod-4"]  # named by rpcviz-server
        for _ in range(20):
            await pilot.press("g")
        await cluster.traffic.drain(10)
        chosen = [pod.index for pod in pods if pod.calls_ok]  # the pod the VIP chose, by its own counter
        assert len(chosen) == 1 and pods[chosen[0] - 1].calls_ok == 20
        app.wake()
        app.sample()
        await pilot.pause()
        pinned = {box.index for box in app.query(PodBox) if box.has_class("-pinned")}
        assert pinned == set(chosen), (pinned, chosen)
        assert "CONNECTION PINNING" in str(app.query_one("#backends-title").render())

        await pilot.press("1")  # not ours to kill
        assert any("does not own these pods" in str(n.message) for n in app._notifications)
        assert all(pod.serving for pod in pods)

        await pilot.press("p")
        await wait_until(lambda: cluster.view().ready_connections == 4, 5, "a connection to every pod")
        for _ in range(20):
            await pilot.press("g")
        await cluster.traffic.drain(10)
        app.wake()
        app.sample()
        await pilot.pause()
        view = cluster.view()
        assert [p.calls_since_switch for p in view.pods] == [5, 5, 5, 5]
        assert [pod.calls_ok for pod in pods] == [5 + 20 * (pod.index in chosen) for pod in pods]
        assert "CLIENT-SIDE LOAD BALANCING" in str(app.query_one("#backends-title").render())
        assert not app.query_one("#configurations").display
        assert cluster.traffic.stats.failed_total == 0


async def test_attach_to_cluster_up_marks_pinned_the_pod_the_vip_chose(clusters: list[Cluster]) -> None:
    """Across processes: ``rpcviz cluster up`` (four ``rpcviz serve`` pods behind our L4 proxy), the app
    attached to its VIP; the pod the balancer chose is PINNED on screen, and says so itself on stop."""
    cluster = cluster_up(clusters, "--pods", "4")
    app = AttachApp(AttachedCluster(cluster.vip, cluster.pods_target))
    async with app.run_test(size=(120, 36)) as pilot:
        attached = app.cluster
        await attached.wait_ready()
        for _ in range(20):
            await pilot.press("g")
        await attached.traffic.drain(10)
        app.wake()
        app.sample()
        await pilot.pause()
        view = attached.view()
        served = [pod for pod in view.pods if pod.calls]
        assert len(served) == 1 and served[0].calls == 20, view.pods
        assert {box.index for box in app.query(PodBox) if box.has_class("-pinned")} == {served[0].index}
        # the pods report their workers' busy fraction (ORCA, per call): the meter shows it, and says so
        assert served[0].load_source == "orca" and served[0].reported_utilization is not None, served[0]
        box = next(box for box in app.query(PodBox) if box.index == served[0].index)
        assert "reported" in str(box.render()), str(box.render())
        assert all(pod.load_source == "client" for pod in view.pods if pod is not served[0])
        chosen = served[0].name
    out = stop(cluster, cluster.pids)
    # each pod's own tally on stop (it also counts the health Checks that identified it): only the
    # chosen one served the 20 greets
    tallies = {pod: int(n) for pod, n in re.findall(r"(pod-\d): stopped after (\d+) call", out)}
    assert len(tallies) == 4 and tallies[chosen] >= 20, out
    assert all(n < 20 for pod, n in tallies.items() if pod != chosen), out


async def test_attached_to_an_l7_vip_it_sees_one_connection_spread_per_call_and_pins_nothing(
    deployment: tuple[list[Pod], L4Proxy],
) -> None:
    """An L4 balancer sends a connection's bytes to one pod; when one connection's calls come back from
    several pods, the VIP balances calls: the box says L7 and no pod is PINNED."""
    pods, _ = deployment
    listed = ",".join(f"{pod.address.host}:{pod.address.port}" for pod in pods)
    async with L7Proxy(f"ipv4:{listed}", "round_robin") as proxy:
        app = AttachApp(AttachedCluster(str(proxy.address), f"ipv4:{listed}"))
        async with app.run_test(size=(120, 36)) as pilot:
            cluster = app.cluster
            await cluster.wait_ready()
            for _ in range(20):
                await pilot.press("g")
            await cluster.traffic.drain(10)
            app.wake()
            app.sample()
            await pilot.pause()
            view = cluster.view()
            assert view.balancer == "l7" and view.ready_connections == 1
            assert [p.calls for p in view.pods] == [5, 5, 5, 5]
            assert not any(box.has_class("-pinned") for box in app.query(PodBox))
            assert "balances CALLS" in str(app.query_one("#balancer-role").render())
