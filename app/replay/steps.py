"""The guided replay's steps: scene 09 in its own words, each step driving the real cluster.

A step puts the cluster in its state and fires its traffic (:attr:`Step.drive`), waits
for the real event it narrates (:attr:`Step.reached`, a predicate over live views) and
only then says so (:attr:`Step.narrate`, computed from the live view: no number here is
written down in advance). Until then the bar shows :attr:`Step.watch`, which tells you
what to look at without claiming it happened.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field

from app.cluster import Cluster, ClusterView, configuration
from app.scene.terms import CLIENT_SIDE_LOAD_BALANCING, CONNECTION_PINNING

#: Calls that must land before "every greet lands there" and "the meters balance" are said.
PINNED_CALLS = 40
BALANCED_CALLS_PER_POD = 15
L7_CALLS_PER_POD = 8
LEAST_REQUEST_CALLS = 200
NEW_POD_CALLS = 5


@dataclass(frozen=True, slots=True)
class Mark:
    """The figures when a step's drive finished: what "since this step" counts from."""

    calls: dict[int, int] = field(default_factory=dict)
    goaways: dict[int, int] = field(default_factory=dict)
    resolutions: int = 0
    fired: int = 0
    #: Pods the step's drive started (scale-up).
    new_pods: tuple[int, ...] = ()

    @classmethod
    def of(cls, view: ClusterView, before: ClusterView | None = None) -> Mark:
        """The mark of ``view``; ``before`` is the view before the drive (which pods it started)."""
        known = {p.index for p in before.pods} if before is not None else set()
        return cls(
            {p.index: p.calls for p in view.pods},
            {p.index: p.goaways for p in view.pods},
            view.resolutions,
            view.fired,
            tuple(p.index for p in view.pods if before is not None and p.index not in known),
        )

    def calls_since(self, view: ClusterView) -> dict[int, int]:
        """Each pod's OK calls since the mark (pods started since count from 0)."""
        return {p.index: max(0, p.calls - self.calls.get(p.index, 0)) for p in view.pods}

    def goaways_since(self, view: ClusterView) -> dict[int, int]:
        return {
            p.index: p.goaways - self.goaways.get(p.index, 0)
            for p in view.pods
            if p.goaways > self.goaways.get(p.index, 0)
        }


class Stage:
    """What a step may drive: the cluster, and the app's steady traffic (its own model)."""

    def __init__(self, cluster: Cluster, steady: Callable[[bool], None], pods: int) -> None:
        self.cluster = cluster
        self.steady = steady
        #: The pod count the scene's steps run with (the cluster's at start).
        self.pods = pods

    async def configure(self, number: int, *, pods: int | None = None, redial: bool = False) -> None:
        """Run configuration ``number`` with the scene's pod count (or ``pods``); a configuration
        already live is kept (its connection stays) unless ``redial``."""
        cluster = self.cluster
        live = cluster.configuration
        if live is None or live.number != number:
            await cluster.apply(configuration(number))
        elif redial:
            cluster.set_policy(cluster.policy, redial=True)
        wanted = pods if pods is not None else configuration(number).pods or self.pods
        while len(cluster.pods) < wanted:
            await cluster.add_pod()
        while len(cluster.pods) > wanted:
            await cluster.remove_pod()
        for pod in cluster.pods:  # the scene's pods are up and serving
            if not pod.serving:
                await cluster.toggle_pod(pod.index)
            if pod.draining:
                cluster.toggle_drain(pod.index)


@dataclass(frozen=True, slots=True)
class Step:
    title: str
    #: What to look at while the step waits (no claim that it happened).
    watch: str
    drive: Callable[[Stage], Coroutine[object, object, None]]
    #: The live condition the narration needs (given the mark taken after the drive).
    reached: Callable[[ClusterView, Mark], bool]
    narrate: Callable[[ClusterView, Mark], str]
    #: The scene's term this step defines, shown once it is reached.
    term: str | None = None


# --- figures ---------------------------------------------------------------------------------


def _pods(indices: list[int]) -> str:
    names = [f"#{i}" for i in indices]
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def _spread(calls: dict[int, int]) -> str:
    return "/".join(str(calls[i]) for i in sorted(calls))


def _share(calls: dict[int, int]) -> float:
    total = sum(calls.values())
    return max(calls.values()) / total if total else 0.0


def _loads(view: ClusterView) -> str:
    return "/".join(f"{100 * p.load:.0f}" for p in view.pods) + " %"


def _connection_pod(view: ClusterView) -> int | None:
    return next((c.pod for c in view.connections if c.state == "READY" and c.pod is not None), None)


# --- the steps -------------------------------------------------------------------------------


async def _previously(stage: Stage) -> None:
    stage.steady(False)
    await stage.configure(1)
    await stage.cluster.traffic.drain(15)
    stage.cluster.reset()


def _previously_text(view: ClusterView, mark: Mark) -> str:
    return (
        "The interceptor chain handed our call to the transport — but the very property that made HTTP/2 "
        "great, ONE long-lived connection, means a connection-level load balancer pins all our calls to one "
        f"unlucky backend. Here: a gRPC client, an L4 LB and {len(view.pods)} backend pods, all live."
    )


async def _quiet(stage: Stage) -> None:
    """The L4 trap, no traffic (the connection that is up stays up)."""
    stage.steady(False)
    await stage.configure(1)


async def _keep(stage: Stage) -> None:
    """Whatever runs, runs on."""


def _refresher_text(view: ClusterView, mark: Mark) -> str:
    return (
        "An RPC (a function call dressed up to run on another machine) rides exactly one HTTP/2 stream, and many streams share ONE long-lived TCP "
        "connection — that trick made HTTP/2 fast. The balancer here is L4 (like a cloud ELB or nginx in TCP "
        "mode): it sees connections, not the calls inside them."
    )


async def _open_one_connection(stage: Stage) -> None:
    stage.steady(False)
    await stage.configure(1, redial=True)


def _one_ready(view: ClusterView, mark: Mark) -> bool:
    return view.policy == "pick_first" and view.ready_connections == 1


def _opened_text(view: ClusterView, mark: Mark) -> str:
    return (
        f"The client opened ONE HTTP/2 connection ({view.ready_connections} READY), to the VIP {view.target}: "
        "one address, so pick_first has one subchannel. The client never sees the pods behind it."
    )


def _pod_known(view: ClusterView, mark: Mark) -> bool:
    return _one_ready(view, mark) and _connection_pod(view) is not None


def _l4_choice_text(view: ClusterView, mark: Mark) -> str:
    pod = _connection_pod(view)
    return (
        f"The L4 LB chose a pod once, when the connection opened: pod #{pod}. From now on every byte of that "
        f"connection — every stream, every call — goes to pod #{pod}, for as long as it lives."
    )


def _pinned_enough(view: ClusterView, mark: Mark) -> bool:
    return _pod_known(view, mark) and sum(mark.calls_since(view).values()) >= PINNED_CALLS


def _pinned_text(view: ClusterView, mark: Mark) -> str:
    calls = mark.calls_since(view)
    pod = _connection_pod(view) or max(calls, key=lambda i: calls[i])
    total = sum(calls.values())
    dark = [i for i, n in calls.items() if n == 0]
    load = next((p.load for p in view.pods if p.index == pod), 0.0)
    meter = f", its meter at {100 * load:.0f} %," if load >= 0.5 else ""  # said while it is high
    return (
        f'Every greet("Ada") rides the one connection: pod #{pod} served {calls.get(pod, 0)} of {total}{meter} '
        f"while pod{'s' if len(dark) != 1 else ''} {_pods(dark)} stay dark. "
        f"One backend stuck with all the work because the connection never moves: {CONNECTION_PINNING}."
    )


def _all_connected(view: ClusterView, mark: Mark) -> bool:
    return view.policy == "round_robin" and view.ready_connections == len(view.pods) >= 1


def _client_side_text(view: ClusterView, mark: Mark) -> str:
    return (
        f"Switched to round_robin: the client resolved every backend ({len(view.pods)} pod addresses from the "
        f"headless service), opened a connection to each ({view.ready_connections} READY), and now picks one "
        f"per call: {CLIENT_SIDE_LOAD_BALANCING}."
    )


def _since_switch(view: ClusterView) -> dict[int, int]:
    return {p.index: p.calls_since_switch for p in view.pods}


def _balanced(view: ClusterView, mark: Mark) -> bool:
    calls = _since_switch(view)
    return _all_connected(view, mark) and min(calls.values(), default=0) >= BALANCED_CALLS_PER_POD


def _balanced_text(view: ClusterView, mark: Mark) -> str:
    calls = _since_switch(view)
    return (
        f"The meters balance: {_spread(calls)} calls since the switch, the busiest pod took "
        f"{100 * _share(calls):.0f} % (pinned, one pod took 100 %); loads {_loads(view)}."
    )


def _rotated(view: ClusterView, mark: Mark) -> bool:
    return bool(mark.goaways_since(view)) and _pod_known(view, mark)


def _rotated_text(view: ClusterView, mark: Mark) -> str:
    senders = sorted(mark.goaways_since(view))
    age = f"{view.max_connection_age:g} s" if view.max_connection_age is not None else "its age"
    return (
        f"MAX_CONNECTION_AGE: after ~{age} pod{'s' if len(senders) != 1 else ''} {_pods(senders)} sent the "
        f"connection away (GOAWAY); the client reconnected and the L4 LB picked again: now pod "
        f"#{_connection_pod(view)}. Load moves, coarsely, without touching the client."
    )


def _l7_spread(view: ClusterView, mark: Mark) -> bool:
    calls = mark.calls_since(view)
    return view.balancer == "l7" and view.ready_connections == 1 and min(calls.values(), default=0) >= L7_CALLS_PER_POD


def _l7_text(view: ClusterView, mark: Mark) -> str:
    upstream = sum(1 for c in view.upstream if c.state == "READY")
    return (
        f"An L7 proxy as the VIP: the client still has {view.ready_connections} HTTP/2 connection, but the proxy "
        f"ends it, holds {upstream} of its own to the pods and balances each call: {_spread(mark.calls_since(view))} "
        "since this step. The price: one more hop per call."
    )


def _least_request_enough(view: ClusterView, mark: Mark) -> bool:
    return view.policy == "least_request" and sum(mark.calls_since(view).values()) >= LEAST_REQUEST_CALLS


def _least_request_text(view: ClusterView, mark: Mark) -> str:
    calls = mark.calls_since(view)
    total = sum(calls.values()) or 1
    slow = [p for p in view.pods if p.slow_factor != 1]
    if not slow:
        return f"least_request picks the less busy of two pods per call: {_spread(calls)}."
    pod = slow[0]
    return (
        f"Pod #{pod.index} answers {pod.slow_factor:g}× slower (p99 {pod.p99_ms:.0f} ms). least_request compares "
        f"two random pods' calls in flight and sent it {100 * calls.get(pod.index, 0) / total:.0f} % of the "
        f"{total} calls since this step; round_robin would send it {100 / len(view.pods):.0f} %."
    )


def _with_traffic(number: int) -> Callable[[Stage], Coroutine[object, object, None]]:
    """The drive of a step that shows configuration ``number`` under the steady users."""

    async def drive(stage: Stage) -> None:
        await stage.configure(number)
        stage.steady(True)

    return drive


async def _scale_up(stage: Stage) -> None:
    await stage.configure(6, pods=stage.pods + 2)
    stage.steady(True)


def _new_pods_serve(view: ClusterView, mark: Mark) -> bool:
    calls = mark.calls_since(view)
    new = [i for i in mark.new_pods if i in calls]
    return (
        view.policy == "round_robin"
        and bool(new)
        and all(p.resolved is not False for p in view.pods)
        and all(calls[i] >= NEW_POD_CALLS for i in new)
    )


def _scale_up_text(view: ClusterView, mark: Mark) -> str:
    new = list(mark.new_pods)
    resolutions = view.resolutions - mark.resolutions
    return (
        f"Scaled to {len(view.pods)} pods: the client saw pod{'s' if len(new) != 1 else ''} {_pods(new)} only when "
        f"it re-resolved ({resolutions} time{'s' if resolutions != 1 else ''} since this step, at most every "
        f"{view.min_reresolution_interval:g} s); now round_robin spreads {_spread(mark.calls_since(view))}."
    )


def _always(view: ClusterView, mark: Mark) -> bool:
    return True


def _end_text(view: ClusterView, mark: Mark) -> str:
    return (
        "That was scene 09: balance requests, not connections. Press c to ask the staff engineer, m to walk "
        "the configurations yourself, esc to leave the replay."
    )


STEPS: tuple[Step, ...] = (
    Step(
        "Previously", "The interceptor chain handed our call to the transport…", _previously, _always, _previously_text
    ),
    Step(
        "A quick refresher",
        "One RPC = one HTTP/2 stream; many streams share ONE connection.",
        _quiet,
        _always,
        _refresher_text,
    ),
    Step(
        "The client opens ONE connection",
        "Watch: the client opens ONE connection…",
        _open_one_connection,
        _one_ready,
        _opened_text,
    ),
    Step("The L4 LB picks a pod", "…the L4 LB sends that connection to one pod…", _quiet, _pod_known, _l4_choice_text),
    Step(
        "Every greet lands there",
        'Watch: every greet("Ada") the client fires rides that same connection…',
        _with_traffic(1),
        _pinned_enough,
        _pinned_text,
        CONNECTION_PINNING,
    ),
    Step(
        "Switch to round_robin",
        "Watch: the client discovers all the pods and connects to each…",
        _with_traffic(2),
        _all_connected,
        _client_side_text,
        CLIENT_SIDE_LOAD_BALANCING,
    ),
    Step(
        "The meters balance",
        "Watch the meters…",
        _with_traffic(2),
        _balanced,
        _balanced_text,
        CLIENT_SIDE_LOAD_BALANCING,
    ),
    Step(
        "Answer 1: MAX_CONNECTION_AGE",
        "Back to pick_first through the L4 LB, and the pods send old connections away: watch for a GOAWAY…",
        _with_traffic(3),
        _rotated,
        _rotated_text,
    ),
    Step(
        "Answer 2: an L7 proxy",
        "The VIP becomes an L7 proxy (Envoy, nginx grpc_pass): watch the meters…",
        _with_traffic(4),
        _l7_spread,
        _l7_text,
    ),
    Step(
        "Answer 3: least_request vs a slow pod",
        "One pod turns 10× slower; the client switches to least_request: watch that pod's meter and RPCs…",
        _with_traffic(5),
        _least_request_enough,
        _least_request_text,
        CLIENT_SIDE_LOAD_BALANCING,
    ),
    Step(
        "Answer 4: scale-up and re-resolution",
        "Two pods start; watch when the client finds them (it re-resolves on a GOAWAY or a lost connection)…",
        _scale_up,
        _new_pods_serve,
        _scale_up_text,
        CLIENT_SIDE_LOAD_BALANCING,
    ),
    Step("The end", "", _keep, _always, _end_text),
)
