"""The world the visualizer shows: four Greeter pods, a balancer (the VIP), one client
(one channel, or a pool of them: configuration 7).

Everything runs in-process on one event loop, on 127.0.0.1, and every figure
comes from the real servers', proxy's and subchannels' counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Self

from app.cluster.client_side import connection_view, current_report, stop_client
from app.cluster.configurations import CONFIGURATIONS, Configuration, matching
from app.cluster.events import EventLog
from app.cluster.history import History
from app.cluster.load import LoadModel
from app.cluster.pod import Pod
from app.cluster.traffic import Traffic
from app.cluster.view import ClusterView, ConnectionView, PodView
from transport import Address, BackoffConfig, Channel, ChannelOptions, ConnectivityState, ServerOptions
from transport.client.channel import MIN_RERESOLUTION_INTERVAL
from transport.client.endpoints import Endpoints
from transport.client.subchannel import Subchannel
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
#: A configuration that scales waits at most this long (s) for its freshly dialled client first.
SCALE_AFTER_READY = 1.0

#: Events a view carries (the newest).
EVENTS_IN_VIEW = 8

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
    #: The MAX_CONNECTION_AGE the configurations that rotate connections (3, 6) set on the pods,
    #: and how much slower their slow pod is (5).
    configuration_age: float = 5.0
    slow_factor: float = 10.0

    def __post_init__(self) -> None:
        if not 1 <= self.pods <= MAX_PODS:
            raise ValueError(f"the cluster runs 1 to {MAX_PODS} pods, not {self.pods}")
        if not self.min_reresolution_interval >= 0:
            raise ValueError(f"min_reresolution_interval must be >= 0 seconds, not {self.min_reresolution_interval}")
        if self.balancer not in BALANCERS:
            raise ValueError(f"unknown balancer {self.balancer!r}: the cluster has {', '.join(BALANCERS)}")
        if self.max_connection_age is not None and not self.max_connection_age > 0:
            raise ValueError(f"max_connection_age must be a positive number of seconds, not {self.max_connection_age}")
        if not self.configuration_age > 0:
            raise ValueError(f"configuration_age must be a positive number of seconds, not {self.configuration_age}")

    def server_options(self) -> ServerOptions:
        return ServerOptions(
            max_connection_age=self.max_connection_age, max_connection_age_grace=self.max_connection_age_grace
        )


class Cluster:
    """Start it, pick a policy, fire traffic, read :meth:`view`."""

    #: The app runs these pods (``rpcviz attach``'s cluster does not).
    owned = True

    def __init__(self, config: ClusterConfig | None = None, *, history: History | None = None) -> None:
        self.config = config or ClusterConfig()
        #: Calls/s and latency per second, fed by :meth:`view` (tests inject one with their own clock).
        self.history = history or History()
        c = self.config
        #: The pods' MAX_CONNECTION_AGE now (configurations 3 and 6 set it, the others clear it).
        self.max_connection_age = c.max_connection_age
        self.pods = [self._new_pod(i + 1) for i in range(c.pods)]
        #: The VIP: an L4 proxy (``balancer="l4"``) or an L7 proxy (``balancer="l7"``); the other is None.
        self.balancer = c.balancer
        self.proxy: L4Proxy | None = None
        self.l7_proxy: L7Proxy | None = None
        #: Old VIPs and channels closing after a switch (their calls finish first).
        self._retiring: set[asyncio.Task[None]] = set()
        #: What happened, in order (connections, GOAWAYs, re-resolutions, pods, switches).
        self.events = EventLog()
        #: The pod each of the current channels' subchannels reached when it became READY.
        self._subchannel_pods: dict[Subchannel, int | None] = {}
        self._goaways_at_reset = 0
        self.policy = "pick_first"
        #: The client's channels: one, or (``pooled``) a pool of pick_first channels through the VIP,
        #: one per pod when dialled, that calls rotate over (configuration 7).
        self._channels: tuple[Channel, ...] = ()
        self.pooled = False
        self._rotation = 0
        self.traffic = Traffic(self._next_channel, timeout=c.call_timeout, current=lambda: self.channels)
        self._listeners: list[Callable[[], None]] = []
        #: The pods as a headless service: what ``endpoints:///NAME`` resolves to (registered by
        #: :meth:`start`); the client and the L7 proxy see a change only when they re-resolve.
        self.endpoints_name = f"cluster-{os.getpid()}-{next(_CLUSTER_IDS)}"
        self.endpoints: Endpoints | None = None
        #: The loop-time clock a view's countdowns (a connection's retry) are read against: the
        #: event loop's, unless frozen (the screenshots freeze it for a still).
        self.clock: Callable[[], float] = lambda: asyncio.get_running_loop().time()

    # --- lifecycle ------------------------------------------------------------

    async def start(self, policy: str = "pick_first") -> None:
        for pod in self.pods:
            await pod.start()
        addresses = [pod.address for pod in self.pods]
        if self.endpoints is None:
            self.endpoints = Endpoints.register(self.endpoints_name, addresses)
        await self._start_vip(self.balancer)
        self.policy = self._check(policy)
        self._channels = self._dial_client(policy)

    async def _start_vip(self, balancer: str) -> None:
        """Start the VIP: an L4 proxy over the pods' addresses, or an L7 proxy whose own channel
        resolves the pods' endpoints and balances every call round_robin."""
        if balancer == "l7":
            assert self.endpoints is not None
            upstream = ChannelOptions(
                backoff=self.config.backoff,
                seed=self.config.seed,
                min_reresolution_interval=self.config.min_reresolution_interval,
            )
            l7 = L7Proxy(self.endpoints.target, "round_robin", channel_options=upstream)
            await l7.start()  # only a started VIP is the cluster's: a view sampled meanwhile reads no address
            l7.add_listener(self._l7_event)
            self.l7_proxy = l7
        else:
            addresses = [pod.address for pod in self.pods]
            l4 = L4Proxy(addresses, strategy=self.config.balancer_strategy, seed=self.config.seed)
            await l4.start()
            l4.add_listener(self._changed)
            self.proxy = l4
            self._set_l4_backends()  # a pod added while it started
        self.balancer = balancer

    async def stop(self, grace: float | None = None) -> None:
        """Stop everything: the calls in flight finish first (or, with ``grace``, are cancelled and
        every connection gets that long to close)."""
        close = await stop_client(self.traffic, self._channels, self._retiring, grace)
        if self.proxy is not None:
            await self.proxy.stop()
        if self.l7_proxy is not None:
            await self.l7_proxy.stop(grace=close)
        for pod in self.pods:
            await pod.stop(grace=close)
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
        """The client's channel (the first of the pool, when it is one)."""
        return self.channels[0]

    @property
    def channels(self) -> tuple[Channel, ...]:
        """Every channel of the client: one, or the pool's (configuration 7)."""
        if not self._channels:
            raise RuntimeError("the cluster is not started")
        return self._channels

    def _next_channel(self) -> Channel:
        """The channel the next call rides: the only one, or the pool's next (as a channel pool rotates)."""
        channels = self.channels
        channel = channels[self._rotation % len(channels)]
        self._rotation += 1
        return channel

    def _dial_client(self, policy: str) -> tuple[Channel, ...]:
        """The client's channels: a pool of one pick_first channel per pod when ``pooled``, else one."""
        size = len(self.pods) if self.pooled and policy == "pick_first" else 1
        self._rotation = 0
        return tuple(self.dial(policy) for _ in range(size))

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
        channel.add_listener(self._channel_event)
        return channel

    def _channel_event(self, channel: Channel, kind: str, data: Any) -> None:
        """Record what the current channels report (an old one draining is not news), then wake the UI."""
        if channel in self._channels:
            if kind == "subchannel_state":
                self._subchannel_changed(channel, *data)
            elif kind == "resolved" and channel is self._channels[0]:  # a pool's channels resolve alike
                self._resolved(channel, data)
            elif kind == "resolution_failed":
                self.events.add("resolve", f"resolving failed: {data}")
        self._changed()

    def _subchannel_changed(
        self, channel: Channel, sc: Subchannel, old: ConnectivityState, new: ConnectivityState
    ) -> None:
        number = self._connection_number(sc)
        if new is ConnectivityState.READY:
            pod = self._pod_reached(channel, sc)
            self._subchannel_pods[sc] = pod
            if self._via_vip(channel):
                where = "the L7 proxy" if self.l7_proxy is not None else f"the L4 LB picked pod #{pod}"
                self.events.add("connect", f"conn {number} READY through the VIP: {where}")
            else:
                self.events.add("connect", f"conn {number} READY to pod #{pod}")
        elif old is ConnectivityState.READY and new is ConnectivityState.IDLE:
            pod = self._subchannel_pods.pop(sc, None)
            source = "the L7 proxy" if pod is None else f"pod #{pod}"
            if "GOAWAY" in sc.last_error:
                reason = sc.last_error.split("got ", 1)[1]
                self.events.add("goaway", f"{reason} from {source}: conn {number} IDLE, its calls finish")
            else:
                self.events.add("lost", f"conn {number} to {source} lost: IDLE")
        elif new is ConnectivityState.TRANSIENT_FAILURE and old is not ConnectivityState.TRANSIENT_FAILURE:
            pod = self._pod_of(sc.address)
            self._subchannel_pods.pop(sc, None)
            where = f"pod #{pod}" if pod is not None else "the VIP"
            self.events.add("lost", f"conn {number} to {where}: TRANSIENT_FAILURE")

    def _connection_number(self, sc: Subchannel) -> int:
        """``conn N``: the subchannel's place among every current channel's (0 if it is none of them)."""
        subchannels = [each for channel in self._channels for each in channel.subchannels]
        return subchannels.index(sc) + 1 if sc in subchannels else 0

    def _resolved(self, channel: Channel, addresses: list[Address]) -> None:
        first = channel.stats.resolutions <= 1
        if self._via_vip(channel):
            if first:
                self.events.add("resolve", "resolved the VIP: 1 address")
            return
        pods = ", ".join(f"#{p}" for p in sorted(filter(None, map(self._pod_of, addresses))))
        verb = "resolved" if first else "re-resolved"
        self.events.add("resolve", f"{verb} the headless service: {len(addresses)} pods ({pods})")

    def _via_vip(self, channel: Channel) -> bool:
        vip = self.proxy or self.l7_proxy
        return vip is not None and channel.target == str(vip.address)

    def _pod_reached(self, channel: Channel, sc: Subchannel, proxied: dict[Address, int] | None = None) -> int | None:
        """The pod a subchannel's connection reaches (None while it has none): through the L4 VIP,
        the one the proxy picked (``proxied``: :meth:`_proxied_pods`, when the caller has it)."""
        if sc.connection is None:
            return None
        if not self._via_vip(channel):
            return self._pod_of(sc.address)
        if sc.connection.local_address is None:
            return None
        return (self._proxied_pods() if proxied is None else proxied).get(sc.connection.local_address)

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

    def set_policy(self, policy: str, *, redial: bool = False) -> None:
        """Switch policy: the old channel drains (its calls finish), a new one is dialled
        (also for the same policy when ``redial``: after the VIP or the pods' settings changed)."""
        policy = self._check(policy)
        if policy == self.policy and not redial:
            return
        self._redial(policy)
        self._changed()

    def _redial(self, policy: str, retired_vip: L4Proxy | L7Proxy | None = None) -> None:
        old = self.channels
        self.policy = policy
        if policy != "pick_first":
            self.pooled = False  # the pool is pick_first channels through the VIP
        self._subchannel_pods.clear()
        self._channels = self._dial_client(policy)
        self._retire(old, retired_vip)

    def _retire(self, channels: tuple[Channel, ...], vip: L4Proxy | L7Proxy | None) -> None:
        """Close old channels once their calls finish, then the VIP they went through."""

        async def retire() -> None:
            await asyncio.gather(*(channel.close(grace=None) for channel in channels))
            if vip is not None:
                await vip.stop(grace=1.0)

        task = asyncio.get_running_loop().create_task(retire())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    # --- configurations -----------------------------------------------------------

    @property
    def configuration(self) -> Configuration | None:
        """The preset the live state is (see :func:`matching`), or None."""
        slow = frozenset(pod.index for pod in self.pods if pod.load_model.slow_factor != 1)
        return matching(self.policy, self.balancer, self.max_connection_age is not None, slow, self.pooled)

    async def apply(self, configuration: Configuration) -> None:
        """Make the cluster run ``configuration``: the VIP, the pods' MAX_CONNECTION_AGE and the slow pod it
        names, a freshly dialled client (one channel or a pool of one per pod running now; its old channels
        and VIP close once their calls finish: nothing fails), and once that client is connected (or a
        second has passed), the pod count it names: pods started then are news to the client only when it
        re-resolves, and the events read in that order."""
        c = self.config
        self.events.add("configuration", f"configuration {configuration.number}: {configuration.title}")
        self._set_max_connection_age(c.configuration_age if configuration.max_connection_age else None)
        for pod in self.pods:
            pod.load_model.slow_factor = c.slow_factor if pod.index == configuration.slow_pod else 1.0
        retired: L4Proxy | L7Proxy | None = None
        if configuration.balancer != self.balancer:
            retired = self.proxy or self.l7_proxy
            self.proxy = self.l7_proxy = None
            await self._start_vip(configuration.balancer)
        self.pooled = configuration.pooled
        self._redial(configuration.policy, retired)
        self._changed()
        if configuration.pods is not None and configuration.pods != len(self.pods):
            with contextlib.suppress(TimeoutError):
                await self.wait_ready(timeout=SCALE_AFTER_READY)
            while len(self.pods) < configuration.pods:
                await self.add_pod()
            while len(self.pods) > configuration.pods:
                await self.remove_pod()

    async def next_configuration(self) -> Configuration:
        """Apply the configuration after the live one (after the last, the first again)."""
        live = self.configuration
        number = live.number % len(CONFIGURATIONS) + 1 if live is not None else 1
        await self.apply(CONFIGURATIONS[number - 1])
        return CONFIGURATIONS[number - 1]

    def _set_max_connection_age(self, age: float | None) -> None:
        """Set the pods' MAX_CONNECTION_AGE for the connections they accept from now on."""
        self.max_connection_age = age
        for pod in self.pods:
            pod.server.options = self._server_options()

    def _server_options(self) -> ServerOptions:
        return replace(self.config.server_options(), max_connection_age=self.max_connection_age)

    def _new_pod(self, index: int) -> Pod:
        c = self.config
        return Pod(index, LoadModel(c.service_time, c.workers, c.load_window), options=self._server_options())

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
        pod = self._new_pod(len(self.pods) + 1)
        await pod.start()
        self.pods.append(pod)
        self.endpoints.add(pod.address)
        self._set_l4_backends()
        self.events.add("scale", f"pod #{pod.index} started: {len(self.pods)} pods")
        self._changed()
        return pod

    async def remove_pod(self, grace: float = 1.0) -> Pod:
        """Stop the last pod, as a Deployment scaling down: it leaves the endpoints and the L4
        VIP's list first, then drains (GOAWAY; calls running get ``grace`` seconds)."""
        if len(self.pods) <= 1:
            raise ValueError("the cluster keeps at least one pod")
        pod = self.pods.pop()
        if self.endpoints is not None and pod.address_or_none is not None:
            self.endpoints.remove(pod.address_or_none)
        self._set_l4_backends()
        self.events.add("scale", f"pod #{pod.index} removed: {len(self.pods)} pods")
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
            self.events.add("pod", f"pod #{index} killed")
            self._changed()
            return False
        await pod.start()
        self.events.add("pod", f"pod #{index} restarted")
        self._changed()
        return True

    def set_slow(self, index: int, factor: float) -> None:
        """Make pod #index ``factor`` times slower (its service time × factor); 1 heals it."""
        if not factor >= 1 or factor == float("inf"):
            raise ValueError(f"the slow factor must be a finite number >= 1, not {factor}")
        self.pod(index).load_model.slow_factor = factor
        self.events.add("pod", f"pod #{index} {'healed' if factor == 1 else f'{factor:g}× slower'}")
        self._changed()

    def toggle_slow(self, index: int) -> bool:
        """Make pod #index :attr:`ClusterConfig.slow_factor` times slower, or heal it; returns whether it is slow now."""
        slow = self.pod(index).load_model.slow_factor == 1
        self.set_slow(index, self.config.slow_factor if slow else 1.0)
        return slow

    def toggle_drain(self, index: int) -> bool:
        """Flip pod #index between SERVING and NOT_SERVING; returns whether it drains now."""
        pod = self.pod(index)
        pod.set_draining(not pod.draining)
        self.events.add("pod", f"pod #{index} reports {'NOT_SERVING' if pod.draining else 'SERVING'}")
        self._changed()
        return pod.draining

    def toggle_policy(self) -> str:
        """pick_first ⇄ round_robin (from least_request: back to pick_first)."""
        toggle = TOGGLE_POLICIES
        self.set_policy(toggle[(toggle.index(self.policy) + 1) % len(toggle)] if self.policy in toggle else toggle[0])
        return self.policy

    async def wait_ready(self, timeout: float = 5.0) -> None:
        """Wait until every subchannel the policy wants is READY (1 per channel of the client, or one per
        resolved pod); an IDLE channel is asked to connect first (pick_first waits for a call after losing
        its connection)."""
        channels = self.channels
        for channel in channels:
            channel.connect()
        l7 = self.l7_proxy

        def ready(channel: Channel) -> bool:
            return sum(sc.state is ConnectivityState.READY for sc in channel.subchannels) >= self._wanted(channel)

        async with asyncio.timeout(timeout):
            # every pod it has resolved (pods started since are not its business until it re-resolves)
            while not all(map(ready, channels)):
                await asyncio.sleep(0.005)
            # the L7 proxy balances over the pods it has connected to: wait for all of them
            while l7 is not None and l7.ready_backends() < len(l7.channel.addresses):
                await asyncio.sleep(0.005)

    def _wanted(self, channel: Channel) -> int:
        return 1 if self.policy == "pick_first" else max(1, len(channel.addresses))

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
        self._goaways_at_reset = sum(pod.goaways for pod in self.pods)
        self.history.reset()
        for channel in self._channels:
            channel.stats.reset()
            for sc in channel.subchannels:
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
        loop_time = self.clock()
        via_balancer = self._via_vip(channel)
        proxied = self._proxied_pods()
        connections = [
            connection_view(sc, self._pod_reached(each, sc, proxied), via_balancer, loop_time)
            for each in self.channels
            for sc in each.subchannels
        ]
        resolved = set(channel.addresses) if not via_balancer else None
        reported = self._reported_utilization(proxied)
        pinned = {c.pod for c in connections if c.via_balancer and c.pod is not None}
        traffic = self.traffic
        stats = traffic.stats
        # a switch dials a new channel: its calls are the picks "since the switch"
        current = stats.landed_on(self.channels)
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
                calls_since_switch=current.get(pod.name, 0),
                p50_ms=_ms(stats.latency[pod.name].percentile(50)) if pod.name in stats.latency else 0.0,
                p99_ms=_ms(stats.latency[pod.name].percentile(99)) if pod.name in stats.latency else 0.0,
                goaways=pod.goaways,
                slow_factor=pod.load_model.slow_factor,
                resolved=None if resolved is None else pod.address_or_none in resolved,
                reported_utilization=reported.get(pod.index),
            )
            for pod in self.pods
        )
        return ClusterView(
            policy=self.policy,
            target=channel.target,
            fired=stats.fired,
            ok=stats.ok,
            failed=dict(stats.failed),
            in_flight=stats.in_flight,
            steady_rate=traffic.rate if traffic.steady and not traffic.users else None,
            users=traffic.users,
            calls_per_second=traffic.calls_per_second() if traffic.steady else 0.0,
            old_calls_in_flight=stats.in_flight_elsewhere(self.channels),
            connections=tuple(connections),
            pods=pods,
            balancer=self.balancer,
            client_connections_opened=sum(sc.stats.connects for each in self.channels for sc in each.subchannels),
            goaways=sum(pod.goaways for pod in self.pods) - self._goaways_at_reset,
            resolutions=channel.stats.resolutions,
            p50_ms=_ms(stats.latency_all.percentile(50)),
            p99_ms=_ms(stats.latency_all.percentile(99)),
            configuration=None if (live := self.configuration) is None else live.number,
            max_connection_age=self.max_connection_age,
            events=self.events.recent(EVENTS_IN_VIEW),
            upstream=self._upstream_view(loop_time),
            min_reresolution_interval=self.config.min_reresolution_interval,
            history=self.history.sample(pods, stats.latency),
            channels=len(self.channels),
            via_vip=via_balancer,
        )

    def _upstream_view(self, loop_time: float) -> tuple[ConnectionView, ...]:
        """The L7 proxy's own connections to the pods (its upstream channel's subchannels)."""
        if self.l7_proxy is None:
            return ()
        return tuple(
            connection_view(sc, self._pod_of(sc.address), False, loop_time) for sc in self.l7_proxy.channel.subchannels
        )

    def _reported_utilization(self, proxied: dict[Address, int]) -> dict[int, float]:
        """Pod index -> the utilization in the latest load report a connection to it received (a
        report from before a subchannel's current connection may be another pod's, via the VIP)."""
        latest: dict[int, tuple[float, float]] = {}
        for each in self.channels:
            for sc in each.subchannels:
                report = current_report(sc)
                pod = self._pod_reached(each, sc, proxied)
                if pod is not None and report is not None and (pod not in latest or latest[pod][0] < report[0]):
                    latest[pod] = report
        return {pod: value for pod, (_, value) in latest.items()}

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
