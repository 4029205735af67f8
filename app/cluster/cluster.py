"""The world the visualizer shows: four Greeter pods, a balancer (the VIP), one client.

Everything runs in-process on one event loop, on 127.0.0.1, and every figure
comes from the real servers', proxy's and subchannels' counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Self

from app.cluster.load import LoadModel
from app.cluster.pod import Pod
from app.cluster.traffic import Traffic
from app.cluster.view import ClusterView, ConnectionView, PodView
from transport import Address, BackoffConfig, Channel, ChannelOptions, ConnectivityState, ServerOptions
from transport.client.channel import MIN_RERESOLUTION_INTERVAL
from transport.client.endpoints import Endpoints
from transport.proxy import L4Proxy
from transport.proxy.l7 import L7Proxy

#: The client-side policies the cluster can dial; pick_first goes through the VIP, the others
#: resolve every pod (a headless service).
POLICIES = ("pick_first", "round_robin", "least_request")
#: What ``p`` toggles between (the scene's trap and its first fix).
TOGGLE_POLICIES = ("pick_first", "round_robin")
#: What the VIP is: an L4 proxy (balances connections) or an L7 proxy (balances calls, round_robin).
BALANCERS = ("l4", "l7")
#: The most pods the cluster scales to (the scene's keys 1-8).
MAX_PODS = 8

#: Numbers each cluster's endpoints name, so clusters in one process never share a name.
_CLUSTER_IDS = itertools.count(1)


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    pods: int = 4
    #: Each greet's service time at a pod, and how many it serves at once:
    #: 20 ms on 4 workers = 200 greets/s per pod before it queues.
    service_time: float = 0.02
    workers: int = 4
    load_window: float = 1.0
    #: Seeds the L4 balancer's backend choice and the client's picks.
    seed: int | None = None
    #: How the L4 balancer picks a backend per connection (ELB/kube-proxy: random).
    balancer_strategy: str = "random"
    backoff: BackoffConfig = field(default_factory=BackoffConfig)
    call_timeout: float = 10.0
    #: "l4": the VIP is an L4Proxy; "l7": an L7Proxy balancing every call round_robin over the pods.
    balancer: str = "l4"
    #: gRFC A9 MAX_CONNECTION_AGE (and its grace) on every pod's server, seconds; None = off.
    max_connection_age: float | None = None
    max_connection_age_grace: float | None = None
    #: How often at most the client (and the L7 proxy's upstream) re-resolve the pods' endpoints,
    #: seconds: gRPC's 30 s by default, so a new pod joins round_robin late, as in production.
    min_reresolution_interval: float = MIN_RERESOLUTION_INTERVAL

    def __post_init__(self) -> None:
        if not 1 <= self.pods <= MAX_PODS:
            raise ValueError(f"the cluster runs 1 to {MAX_PODS} pods, not {self.pods}")
        if not self.min_reresolution_interval >= 0:
            raise ValueError(f"min_reresolution_interval must be >= 0 seconds, not {self.min_reresolution_interval}")
        if self.balancer not in BALANCERS:
            raise ValueError(f"unknown balancer {self.balancer!r}: the cluster has {', '.join(BALANCERS)}")
        if self.max_connection_age is not None and not self.max_connection_age > 0:
            raise ValueError(f"max_connection_age must be a positive number of seconds, not {self.max_connection_age}")

    def server_options(self) -> ServerOptions:
        return ServerOptions(
            max_connection_age=self.max_connection_age, max_connection_age_grace=self.max_connection_age_grace
        )


class Cluster:
    """Start it, pick a policy, fire traffic, read :meth:`view`."""

    def __init__(self, config: ClusterConfig | None = None) -> None:
        self.config = config or ClusterConfig()
        c = self.config
        options = c.server_options()
        self.pods = [
            Pod(i + 1, LoadModel(c.service_time, c.workers, c.load_window), options=options) for i in range(c.pods)
        ]
        #: The VIP: an L4 proxy (``balancer="l4"``) or an L7 proxy (``balancer="l7"``); the other is None.
        self.proxy: L4Proxy | None = None
        self.l7_proxy: L7Proxy | None = None
        self._goaways_at_reset = 0
        self.policy = "pick_first"
        self._channel: Channel | None = None
        self._old_channels: set[asyncio.Task[None]] = set()
        self.traffic = Traffic(lambda: self.channel, timeout=c.call_timeout)
        self._listeners: list[Callable[[], None]] = []
        #: Each pod's OK count when the policy last changed (or counters were reset).
        self._calls_at_switch = [0] * len(self.pods)
        #: The pods as a headless service: what ``endpoints:///NAME`` resolves to (registered by
        #: :meth:`start`); the client and the L7 proxy see a change only when they re-resolve.
        self.endpoints_name = f"cluster-{os.getpid()}-{next(_CLUSTER_IDS)}"
        self.endpoints: Endpoints | None = None

    # --- lifecycle ------------------------------------------------------------

    async def start(self, policy: str = "pick_first") -> None:
        for pod in self.pods:
            await pod.start()
        addresses = [pod.address for pod in self.pods]
        if self.endpoints is None:
            self.endpoints = Endpoints.register(self.endpoints_name, addresses)
        if self.config.balancer == "l7":
            upstream = ChannelOptions(
                backoff=self.config.backoff,
                seed=self.config.seed,
                min_reresolution_interval=self.config.min_reresolution_interval,
            )
            self.l7_proxy = L7Proxy(self.endpoints.target, "round_robin", channel_options=upstream)
            await self.l7_proxy.start()
            self.l7_proxy.add_listener(self._l7_event)
        else:
            self.proxy = L4Proxy(addresses, strategy=self.config.balancer_strategy, seed=self.config.seed)
            await self.proxy.start()
            self.proxy.add_listener(self._changed)
        self.policy = self._check(policy)
        self._channel = self.dial(policy)

    async def stop(self) -> None:
        await self.traffic.stop()
        if self._channel is not None:
            await self._channel.close(grace=1.0)
        for task in list(self._old_channels):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.proxy is not None:
            await self.proxy.stop()
        if self.l7_proxy is not None:
            await self.l7_proxy.stop(grace=1.0)
        for pod in self.pods:
            await pod.stop(grace=1.0)
        if self.endpoints is not None:
            self.endpoints.unregister()
            self.endpoints = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- the client -------------------------------------------------------------

    @property
    def channel(self) -> Channel:
        if self._channel is None:
            raise RuntimeError("the cluster is not started")
        return self._channel

    def dial(self, policy: str) -> Channel:
        """The scene's ``Channel.dial``: what the client resolves depends on the policy."""
        if policy == "pick_first":
            # one VIP address -> the L4 LB picks the backend
            target = str(self.vip)
        else:  # round_robin, least_request
            # headless service returns every backend IP (read again only on re-resolution)
            if self.endpoints is None:
                raise RuntimeError("the cluster is not started")
            target = self.endpoints.target
        # round_robin watches each pod's grpc.health.v1 status (pick_first does not, as in gRPC).
        options = ChannelOptions(
            backoff=self.config.backoff,
            seed=self.config.seed,
            health_check_service="",
            min_reresolution_interval=self.config.min_reresolution_interval,
        )
        channel = Channel.dial(target, policy, options=options)
        channel.add_listener(self._changed)
        return channel

    def add_listener(self, listener: Callable[[], None]) -> None:
        """``listener()`` runs when connections or connectivity change (not per call)."""
        self._listeners.append(listener)

    def _changed(self, *_: object) -> None:
        for listener in list(self._listeners):
            listener()

    def _l7_event(self, event: str, _info: object) -> None:
        if event in ("open", "close"):  # connections, not calls
            self._changed()

    @property
    def vip(self) -> Address:
        if self.proxy is not None:
            return self.proxy.address
        if self.l7_proxy is not None:
            return self.l7_proxy.address
        raise RuntimeError("the cluster is not started")

    def set_policy(self, policy: str) -> None:
        """Switch policy: the old channel drains (its calls finish), a new one is dialled."""
        policy = self._check(policy)
        if policy == self.policy:
            return
        old = self.channel
        self.policy = policy
        self._calls_at_switch = [pod.calls_ok for pod in self.pods]
        self._channel = self.dial(policy)
        task = asyncio.get_running_loop().create_task(old.close(grace=None))
        self._old_channels.add(task)
        task.add_done_callback(self._old_channels.discard)

    def pod(self, index: int) -> Pod:
        """Pod #index (1-based); ValueError for a pod that does not exist."""
        if not 1 <= index <= len(self.pods):
            raise ValueError(f"there is no pod #{index}: pods are #1-#{len(self.pods)}")
        return self.pods[index - 1]

    async def add_pod(self) -> Pod:
        """Start pod #N+1 (up to :data:`MAX_PODS`) on its own port, as a Deployment scaling up.

        The L4 VIP balances new connections over it at once (existing ones stay pinned); the
        client's round_robin / least_request and the L7 proxy see it when they next re-resolve."""
        if len(self.pods) >= MAX_PODS:
            raise ValueError(f"the cluster already runs {MAX_PODS} pods, the most it scales to")
        if self.endpoints is None:
            raise RuntimeError("the cluster is not started")
        c = self.config
        pod = Pod(len(self.pods) + 1, LoadModel(c.service_time, c.workers, c.load_window), options=c.server_options())
        await pod.start()
        self.pods.append(pod)
        self._calls_at_switch.append(0)
        self.endpoints.add(pod.address)
        self._set_l4_backends()
        self._changed()
        return pod

    async def remove_pod(self, grace: float = 1.0) -> Pod:
        """Stop the last pod, as a Deployment scaling down: it leaves the endpoints and the L4
        VIP's list first, then drains (GOAWAY; calls running get ``grace`` seconds)."""
        if len(self.pods) <= 1:
            raise ValueError("the cluster keeps at least one pod")
        pod = self.pods.pop()
        self._calls_at_switch.pop()
        if self.endpoints is not None and pod.address_or_none is not None:
            self.endpoints.remove(pod.address_or_none)
        self._set_l4_backends()
        self._changed()
        await pod.stop(grace=grace)
        self._changed()
        return pod

    def _set_l4_backends(self) -> None:
        if self.proxy is not None:
            self.proxy.set_backends([pod.address for pod in self.pods])

    async def toggle_pod(self, index: int) -> bool:
        """Kill pod #index if it runs (its in-flight calls fail UNAVAILABLE), else
        restart it on its port. Returns whether it now serves."""
        pod = self.pod(index)
        if pod.serving:
            pod.kill()
            self._changed()
            return False
        await pod.start()
        self._changed()
        return True

    def set_slow(self, index: int, factor: float) -> None:
        """Make pod #index ``factor`` times slower (its service time × factor); 1 heals it."""
        if not factor >= 1 or factor == float("inf"):
            raise ValueError(f"the slow factor must be a finite number >= 1, not {factor}")
        self.pod(index).load_model.slow_factor = factor
        self._changed()

    def toggle_drain(self, index: int) -> bool:
        """Flip pod #index between SERVING and NOT_SERVING; returns whether it drains now."""
        pod = self.pod(index)
        pod.set_draining(not pod.draining)
        self._changed()
        return pod.draining

    def toggle_policy(self) -> str:
        """pick_first ⇄ round_robin (from least_request: back to pick_first)."""
        toggle = TOGGLE_POLICIES
        self.set_policy(toggle[(toggle.index(self.policy) + 1) % len(toggle)] if self.policy in toggle else toggle[0])
        return self.policy

    async def wait_ready(self, timeout: float = 5.0) -> None:
        """Wait until every subchannel the policy wants is READY (1 or all); an IDLE channel is
        asked to connect first (pick_first waits for a call after losing its connection)."""
        channel = self.channel
        channel.connect()
        want = 1 if self.policy == "pick_first" else len(self.pods)
        l7 = self.l7_proxy
        async with asyncio.timeout(timeout):
            while sum(sc.state is ConnectivityState.READY for sc in channel.subchannels) < want:
                await asyncio.sleep(0.005)
            # the L7 proxy balances over the pods it has connected to: wait for all of them
            while l7 is not None and l7.ready_backends() < len(self.pods):
                await asyncio.sleep(0.005)

    @staticmethod
    def _check(policy: str) -> str:
        if policy not in POLICIES:
            raise ValueError(f"unknown policy {policy!r}: the scene has {', '.join(POLICIES)}")
        return policy

    # --- figures ----------------------------------------------------------------

    def reset(self) -> None:
        """Zero every counter: traffic, pods, proxy, channel."""
        self.traffic.stats.reset()
        for pod in self.pods:
            pod.reset()
        self._calls_at_switch = [0] * len(self.pods)
        self._goaways_at_reset = sum(pod.goaways for pod in self.pods)
        if self._channel is not None:
            self._channel.stats.reset()
            for sc in self._channel.subchannels:
                sc.stats.reset()
        if self.proxy is not None:
            for backend in self.proxy.backends:
                backend.connections_total = backend.connections_open
                backend.bytes_up = backend.bytes_down = backend.connect_failures = 0

    def _pod_of(self, address: Address) -> int | None:
        for pod in self.pods:
            if pod.address_or_none == address:
                return pod.index
        return None

    def view(self) -> ClusterView:
        channel = self.channel
        loop_time = asyncio.get_running_loop().time()
        vip = self.proxy or self.l7_proxy
        via_balancer = vip is not None and channel.addresses == [vip.address]
        proxied = self._proxied_pods()
        connections = []
        for sc in channel.subchannels:
            pod: int | None = None
            if sc.connection is not None:
                if via_balancer and sc.connection.local_address is not None:
                    pod = proxied.get(sc.connection.local_address)
                else:
                    pod = self._pod_of(sc.address)
            connections.append(
                ConnectionView(
                    state=sc.state.name,
                    pod=pod,
                    via_balancer=via_balancer,
                    calls=sc.stats.calls_succeeded,
                    retry_in=None if sc.next_attempt_at is None else max(0.0, sc.next_attempt_at - loop_time),
                    health=sc.health,
                )
            )
        pinned = {c.pod for c in connections if c.via_balancer and c.pod is not None}
        stats = self.traffic.stats
        pods = tuple(
            PodView(
                index=pod.index,
                name=pod.name,
                serving=pod.serving,
                load=pod.load(),
                calls=pod.calls_ok,
                in_flight=pod.calls_in_flight,
                connections=pod.connections,
                pinned=pod.index in pinned,
                draining=pod.draining,
                calls_since_switch=pod.calls_ok - since,
                p50_ms=_ms(stats.latency[pod.name].percentile(50)) if pod.name in stats.latency else 0.0,
                p99_ms=_ms(stats.latency[pod.name].percentile(99)) if pod.name in stats.latency else 0.0,
                goaways=pod.goaways,
                slow_factor=pod.load_model.slow_factor,
            )
            for pod, since in zip(self.pods, self._calls_at_switch)
        )
        return ClusterView(
            policy=self.policy,
            target=channel.target,
            fired=stats.fired,
            ok=stats.ok,
            failed=dict(stats.failed),
            in_flight=stats.in_flight,
            steady_rate=self.traffic.rate if self.traffic.steady else None,
            connections=tuple(connections),
            pods=pods,
            balancer=self.config.balancer,
            client_connections_opened=sum(sc.stats.connects for sc in channel.subchannels),
            goaways=sum(pod.goaways for pod in self.pods) - self._goaways_at_reset,
            resolutions=channel.stats.resolutions,
            p50_ms=_ms(stats.latency_all.percentile(50)),
            p99_ms=_ms(stats.latency_all.percentile(99)),
        )

    def _proxied_pods(self) -> dict[Address, int]:
        """Client-side address of each proxied connection -> the pod it was sent to."""
        if self.proxy is None:
            return {}
        result = {}
        for info in self.proxy.connections:
            pod = self._pod_of(info.backend)
            if pod is not None:
                result[info.client] = pod
        return result


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)
