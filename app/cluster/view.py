"""What the cluster reports: plain, immutable figures for the UI and the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.cluster.events import Event
from app.cluster.history import HistoryView


@dataclass(frozen=True, slots=True)
class PodView:
    index: int
    name: str
    serving: bool
    #: Busy fraction over the last second, 0..1.
    load: float
    #: Calls this pod answered OK (its server's own counter).
    calls: int
    in_flight: int
    #: HTTP/2 connections open at this pod's server.
    connections: int
    #: Holds a connection of the client's through the L4 balancer (pick_first: its only one; in a
    #: pool, one of them).
    pinned: bool
    #: Health reports NOT_SERVING while the server still answers.
    draining: bool = False
    #: OK calls the client's current channel fired that landed here: its picks since the last
    #: switch (or reset); calls an old channel still finishes are not its picks.
    calls_since_switch: int = 0
    #: Client-side latency of this pod's OK calls (median, 99th percentile), in ms.
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    #: Connections this pod sent away for their age (MAX_CONNECTION_AGE).
    goaways: int = 0
    #: Service time multiplier (1 = healthy; see ``Cluster.set_slow``).
    slow_factor: float = 1.0
    #: What ``load`` measures: "model" (the pod's busy workers, embedded), "orca" (what the pod
    #: reports, gRFC A51) or "client" (this client's share of the calls it answered, attached).
    load_source: str = "model"
    #: Whether the client's channel has this pod's address (it resolved the pods, and did so since
    #: the pod started); None when it dials the VIP.
    resolved: bool | None = None
    #: What the pod itself reports (ORCA, gRFC A51) in the latest load report the client's
    #: connections to it received: its ``utilization["busy"]``, else its application, else its CPU
    #: utilization, 0..1 (CPU may exceed 1); None when it reports none.
    reported_utilization: float | None = None


@dataclass(frozen=True, slots=True)
class ConnectionView:
    """One of the client's HTTP/2 connections (a subchannel) and the pod it reaches."""

    state: str
    #: 1-based pod index the bytes reach, or None while not connected.
    pod: int | None
    #: True when the connection runs through the L4 balancer (the VIP).
    via_balancer: bool
    calls: int
    #: Seconds until the next connection attempt while backing off, else None.
    retry_in: float | None
    #: The health status the client watches (round_robin), else None.
    health: str | None = None
    #: Loop time the connection was established (its age = now - this), None while not connected.
    connected_at: float | None = None

    @property
    def pod_label(self) -> str:
        return f"pod #{self.pod}" if self.pod is not None else "pod"


@dataclass(frozen=True, slots=True)
class ClusterView:
    policy: str
    target: str
    fired: int
    ok: int
    failed: dict[str, int]
    in_flight: int
    #: The open-loop rate steady traffic fires at, calls/s (None unless it runs).
    steady_rate: float | None
    connections: tuple[ConnectionView, ...]
    pods: tuple[PodView, ...]
    #: What the VIP is: "l4" (connection balancing) or "l7" (per-call balancing).
    balancer: str = "l4"
    #: Connections the client's subchannels established (reconnects after a GOAWAY included).
    client_connections_opened: int = 0
    #: GOAWAYs the pods sent for connection age, summed.
    goaways: int = 0
    #: Times the client's channel resolved its target (the first time included).
    resolutions: int = 0
    #: Client-wide latency of every call (median, 99th percentile), in ms.
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    #: The configuration (1-7) the live state is, or None when it is none of them.
    configuration: int | None = None
    #: MAX_CONNECTION_AGE on the pods, seconds, or None.
    max_connection_age: float | None = None
    #: The newest events, oldest first.
    events: tuple[Event, ...] = ()
    #: The L7 proxy's own connections to the pods (empty unless the VIP is the L7 proxy).
    upstream: tuple[ConnectionView, ...] = ()
    #: How often at most the client re-resolves, seconds.
    min_reresolution_interval: float = 30.0
    #: Per pod calls/s and latency over the last 60 s, and the busiest pod's share per second.
    history: HistoryView = field(default_factory=HistoryView)
    #: The client's channels: 1, or the pool's size (configuration 7); ``connections`` lists every one's.
    channels: int = 1
    #: The client dials the VIP (pick_first), rather than every pod.
    via_vip: bool = True
    #: The app runs these pods (embedded) rather than being attached to a deployment it does not own.
    owned: bool = True
    #: Closed-loop users greeting back to back (0 unless they run), and the measured rate of
    #: calls ending while steady traffic runs, per second.
    users: int = 0
    calls_per_second: float = 0.0
    #: Calls fired on the client's old channels (before the last switch) still in flight.
    old_calls_in_flight: int = 0

    @property
    def through_l7(self) -> bool:
        """The client dials the VIP and the VIP is the L7 proxy: it balances per call."""
        return self.via_vip and self.balancer == "l7"

    @property
    def per_call(self) -> bool:
        """Calls are balanced one by one (by the client, or by the L7 proxy), not by connection."""
        return not self.via_vip or self.balancer == "l7"

    @property
    def ready_connections(self) -> int:
        return sum(1 for c in self.connections if c.state == "READY")

    @property
    def pinned_pod(self) -> int | None:
        for pod in self.pods:
            if pod.pinned:
                return pod.index
        return None

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())
