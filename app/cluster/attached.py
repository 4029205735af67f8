"""A deployment rpcviz does not own: the same view, read from a client attached to real servers.

``rpcviz attach --vip HOST:PORT [--pods TARGET]``: pick_first dials the VIP (whatever balances
behind it: nginx, kube-proxy, an NLB); round_robin and least_request dial ``--pods`` (an ``ipv4:``
list or a ``dns:///`` name). Everything on screen is what this client observes: the calls it fired,
where each landed (the ``rpcviz-server`` response metadata names the pod; else the peer address),
its connections. The pods' own counters, load models and lifecycles are not ours: kill, drain,
slow and scale are refused (:class:`NotOwned`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from app.cluster.client_side import connection_view, current_report, stop_client
from app.cluster.events import EventLog
from app.cluster.history import History
from app.cluster.traffic import Traffic
from app.cluster.view import ClusterView, PodView
from transport import Address, Channel, ChannelOptions, ConnectivityState, RpcError
from transport.client.resolver import resolve_all
from transport.health.health_pb2 import HealthCheckRequest
from transport.health.health_rpcviz import HealthStub
from transport.server import SERVER_NAME_KEY

#: How long identifying a pod (one health Check to its address) may take.
PROBE_TIMEOUT = 2.0
#: The window the client-observed load is measured over, seconds.
RATE_WINDOW = 1.0
POLICIES = ("pick_first", "round_robin", "least_request")


class NotOwned(Exception):
    """The attached app does not own the pods: it cannot kill, drain, slow or scale them."""


@dataclass(slots=True)
class _Pod:
    index: int
    name: str
    address: Address | None


class AttachedCluster:
    """The app's cluster interface, over a client attached to an existing deployment."""

    owned = False
    configuration = None

    def __init__(
        self,
        vip: str,
        pods: str | None = None,
        *,
        call_timeout: float = 10.0,
        options: ChannelOptions | None = None,
    ) -> None:
        self.vip = vip
        self.pods_target = pods
        self.options = options or ChannelOptions(min_reresolution_interval=10.0)
        self.policy = "pick_first"
        self.balancer = "l4"
        self.events = EventLog()
        self.history = History()
        self._channels: tuple[Channel, ...] = ()
        self._retiring: set[asyncio.Task[None]] = set()
        self.traffic = Traffic(lambda: self.channel, timeout=call_timeout, current=lambda: self._channels)
        self._pods: list[_Pod] = []
        self._listeners: list[Callable[[], None]] = []
        self.clock: Callable[[], float] = lambda: asyncio.get_running_loop().time()
        self._landed_log: deque[tuple[float, dict[str, int]]] = deque()

    # --- lifecycle ----------------------------------------------------------

    async def start(self, policy: str = "pick_first") -> None:
        if self.pods_target is not None:
            for address in await resolve_all(self.pods_target):
                await self._identify(address)
        self.set_policy(policy)

    async def stop(self, grace: float | None = None) -> None:
        await stop_client(self.traffic, self._channels, self._retiring, grace)

    async def _identify(self, address: Address) -> _Pod:
        """The pod at ``address``, named by its ``rpcviz-server`` metadata (one health Check), else by address."""
        known = next((p for p in self._pods if p.address == address), None)
        if known is not None:
            return known
        name = str(address)
        channel = Channel.dial(f"ipv4:{address.host}:{address.port}")
        try:
            result = await HealthStub(channel).Check.with_call(HealthCheckRequest(), timeout=PROBE_TIMEOUT)
            value = result.metadata_value(SERVER_NAME_KEY)
            if isinstance(value, str):
                name = value
        except (RpcError, OSError, TimeoutError):
            pass  # not our server, or no health service: known by its address
        finally:
            await channel.close(grace=0.5)
        pod = self._pod_named(name)
        pod.address = address
        return pod

    def _pod_named(self, name: str) -> _Pod:
        for pod in self._pods:
            if pod.name == name:
                return pod
        pod = _Pod(len(self._pods) + 1, name, None)
        self._pods.append(pod)
        self.events.add("pod", f"pod #{pod.index} is {name}")
        return pod

    # --- the client -----------------------------------------------------------

    @property
    def channel(self) -> Channel:
        if not self._channels:
            raise RuntimeError("the attached client is not started")
        return self._channels[0]

    @property
    def channels(self) -> tuple[Channel, ...]:
        return self._channels

    @property
    def pods(self) -> list[_Pod]:
        return self._pods

    def set_policy(self, policy: str, *, redial: bool = False) -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown policy {policy!r}: choose {', '.join(POLICIES)}")
        if policy != "pick_first" and self.pods_target is None:
            raise NotOwned(f"{policy} needs the pods' addresses: attach with --pods (an ipv4: list or a dns:/// name)")
        if policy == self.policy and self._channels and not redial:
            return
        old = self._channels
        self.policy = policy
        target = self.vip if policy == "pick_first" else self.pods_target
        assert target is not None
        channel = Channel.dial(target, policy, options=self.options)
        channel.add_listener(lambda _channel, _kind, _data: self._changed())
        self._channels = (channel,)
        self.events.add("configuration", f"{policy} dials {target}")
        for each in old:
            task = asyncio.get_running_loop().create_task(each.close(grace=None))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)
        self._changed()

    def toggle_policy(self) -> str:
        self.set_policy("round_robin" if self.policy == "pick_first" else "pick_first")
        return self.policy

    async def wait_ready(self, timeout: float = 5.0) -> None:
        channel = self.channel
        channel.connect()
        async with asyncio.timeout(timeout):
            while not any(sc.state is ConnectivityState.READY for sc in channel.subchannels):
                await asyncio.sleep(0.01)

    def add_listener(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()

    def reset(self) -> None:
        self.traffic.stats.reset()
        self.history.reset()

    # --- what the app cannot do here --------------------------------------------------

    def _refuse(self, what: str) -> NotOwned:
        return NotOwned(f"rpcviz attach does not own these pods: it cannot {what} them")

    async def toggle_pod(self, index: int) -> bool:
        raise self._refuse("kill or restart")

    def toggle_drain(self, index: int) -> bool:
        raise self._refuse("drain")

    def toggle_slow(self, index: int) -> bool:
        raise self._refuse("slow down")

    async def add_pod(self) -> object:
        raise self._refuse("scale")

    async def remove_pod(self) -> object:
        raise self._refuse("scale")

    async def apply(self, configuration: object) -> None:
        raise NotOwned("configurations run on the embedded cluster: start rpcviz without attach for them")

    async def next_configuration(self) -> object:
        raise NotOwned("configurations run on the embedded cluster: start rpcviz without attach for them")

    # --- the view ------------------------------------------------------------------------

    def view(self) -> ClusterView:
        channel = self.channel
        stats = self.traffic.stats
        for name in list(stats.landed):
            self._pod_named(name)  # a pod first seen in a response (through the VIP, say)
        by_address = {p.address: p.index for p in self._pods if p.address is not None}
        via_vip = self.policy == "pick_first"
        current = stats.landed_on(self._channels)
        if via_vip and self.balancer == "l4" and self._spreads_calls(current):
            self.balancer = "l7"
            self.events.add(
                "configuration", f"the VIP sent one connection's calls to {len(current)} pods: it balances CALLS (L7)"
            )
        l7 = via_vip and self.balancer == "l7"
        loop_time = self.clock()
        connections = []
        reported: dict[int, float] = {}
        for sc in channel.subchannels:
            if l7:  # the VIP ends the connection and picks a pod per call
                index = None
            elif via_vip:  # the pod behind the VIP is the one that answered this connection's calls
                pod = max(current, key=lambda n: current[n], default=None)
                index = self._pod_named(pod).index if pod is not None and sc.state is ConnectivityState.READY else None
            else:
                index = by_address.get(sc.address)
            connections.append(connection_view(sc, index, via_vip, loop_time))
            report = current_report(sc)
            if index is not None and report is not None:
                reported[index] = report[1]
        pinned = {c.pod for c in connections if via_vip and not l7 and c.pod is not None}
        rates = self._observed_load(stats.landed)
        resolved = {p.address for p in self._pods} if not via_vip else None
        pods = tuple(
            PodView(
                index=pod.index,
                name=pod.name,
                serving=True,
                load=reported.get(pod.index, rates.get(pod.name, 0.0)),
                load_source="orca" if pod.index in reported else "client",
                reported_utilization=reported.get(pod.index),
                calls=stats.landed.get(pod.name, 0),
                in_flight=0,
                connections=sum(1 for c in connections if c.pod == pod.index and c.state == "READY"),
                pinned=pod.index in pinned,
                calls_since_switch=current.get(pod.name, 0),
                p50_ms=1000 * stats.latency[pod.name].percentile(50) if pod.name in stats.latency else 0.0,
                p99_ms=1000 * stats.latency[pod.name].percentile(99) if pod.name in stats.latency else 0.0,
                resolved=None if resolved is None else pod.address in set(channel.addresses),
            )
            for pod in self._pods
        )
        return ClusterView(
            policy=self.policy,
            target=channel.target,
            fired=stats.fired,
            ok=stats.ok,
            failed=dict(stats.failed),
            in_flight=stats.in_flight,
            steady_rate=None,
            users=self.traffic.users,
            calls_per_second=self.traffic.calls_per_second() if self.traffic.steady else 0.0,
            old_calls_in_flight=stats.in_flight_elsewhere(self._channels),
            connections=tuple(connections),
            pods=pods,
            balancer=self.balancer,
            resolutions=channel.stats.resolutions,
            p50_ms=1000 * stats.latency_all.percentile(50),
            p99_ms=1000 * stats.latency_all.percentile(99),
            events=self.events.recent(8),
            history=self.history.sample(pods, stats.latency),
            via_vip=via_vip,
            owned=False,
        )

    def _spreads_calls(self, landed: dict[str, int]) -> bool:
        """One connection to the VIP, never re-established, and its calls answered by two pods or more:
        an L4 balancer cannot do that (it forwards a connection's bytes to one pod), an L7 proxy does."""
        subchannels = self.channel.subchannels
        return len(subchannels) == 1 and subchannels[0].stats.connects == 1 and sum(1 for n in landed.values() if n) > 1

    def _observed_load(self, landed: dict[str, int]) -> dict[str, float]:
        """What this client observes of each pod's load: its share of the calls answered in the last
        second (the pods' own load is not ours to read; ORCA reports, when pods send them, are)."""
        now = self.clock()
        self._landed_log.append((now, dict(landed)))
        while len(self._landed_log) > 1 and self._landed_log[0][0] < now - RATE_WINDOW:
            self._landed_log.popleft()
        then = self._landed_log[0][1]
        recent = {name: n - then.get(name, 0) for name, n in landed.items()}
        total = sum(recent.values())
        return {name: n / total for name, n in recent.items()} if total else {}
