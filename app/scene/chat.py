"""The staff engineer's chat: the questions a newcomer asks, answered from the live cluster.

Each :class:`Question` answers with a pure function of a :class:`ClusterView`,
so the figures in an answer are the ones on screen at the moment it is asked
("right now pod #3 has served 412 of 412 calls on 1 connection"), phrased for
the state the cluster is in (pinned, a pool, round_robin, the L7 proxy…). Where
a configuration demonstrates the answer, the answer offers it ("show me"),
unless that configuration already runs.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from app.cluster.configurations import configuration
from app.cluster.view import ClusterView, PodView

#: The scene's last line, above the questions.
PROMPT = "Not sure what to ask? Tap a question — the staff engineer answers in the chat panel."

#: What the README's benchmark measured the L4 proxy adding to a call's p50 (C=1, embedded on the
#: server's loop as rpcviz runs it): the floor of any extra hop, cited when no L7 figure is live.
L4_HOP_P50_US = 50


@dataclass(frozen=True, slots=True)
class Question:
    #: Stable name (widget ids, tests).
    key: str
    text: str
    answer: Callable[[ClusterView], str]
    #: The configuration that demonstrates the answer, or None.
    show_me: int | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    question: Question
    text: str
    #: The configuration to switch to, or None (none applies, or it is the one running).
    show_me: int | None


def ask(question: Question, view: ClusterView) -> Answer:
    """The staff engineer's answer to ``question`` now; "show me" is dropped while its configuration runs."""
    show_me = question.show_me if question.show_me != view.configuration else None
    return Answer(question, question.answer(view), show_me)


def show_me_label(number: int) -> str:
    """``▶ show me: configuration 4 (L7 proxy)``."""
    return f"▶ show me: configuration {number} ({configuration(number).name})"


# --- the live figures -------------------------------------------------------------------------


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _percent(fraction: float) -> str:
    return f"{fraction:.1%}" if 0 < fraction < 0.01 else f"{fraction:.0%}"


def _ms(ms: float) -> str:
    return f"{ms:.1f} ms" if ms < 10 else f"{ms:.0f} ms"


def _pods(indices: list[int]) -> str:
    return ", ".join(f"#{i}" for i in indices)


def _pod_word(indices: list[int]) -> str:
    """``pod #2`` or ``pods #2, #4``."""
    return f"pod{'s' if len(indices) > 1 else ''} {_pods(indices)}"


def _spread(view: ClusterView) -> str:
    return "/".join(str(p.calls_since_switch) for p in view.pods)


def _calls(view: ClusterView) -> int:
    return sum(p.calls_since_switch for p in view.pods)


def _pod(view: ClusterView, index: int) -> PodView:
    return next(p for p in view.pods if p.index == index)


def _state(view: ClusterView) -> str:
    """ "pinned" (one pick_first channel through the L4 VIP), "pool" (several), "l7", or "client"
    (round_robin / least_request: the client balances)."""
    if view.policy != "pick_first":
        return "client"
    if view.balancer == "l7":
        return "l7"
    return "pool" if view.channels > 1 else "pinned"


def _reached(view: ClusterView) -> list[int]:
    """The pods the client's READY connections reach, one entry per connection, sorted."""
    return sorted(c.pod for c in view.connections if c.state == "READY" and c.pod is not None)


def _pinned_now(view: ClusterView) -> str:
    """ "Right now pod #3 has served 20 of 20 calls on 1 connection", or where the connection stands."""
    pod = view.pinned_pod
    if pod is None:
        return "Right now the connection is not up: the next call dials the VIP and the L4 LB picks a pod."
    total = _calls(view)
    if not total:
        return f"Right now that connection runs to pod #{pod}; fire a few greets and every one lands there."
    served = _pod(view, pod).calls_since_switch
    if served == total:
        others = len(view.pods) - 1
        rest = f"the other {_n(others, 'pod')} served none" if others else "there is no other pod"
        return f"Right now pod #{pod} has served {served} of {total} calls on 1 connection, and {rest}."
    return (
        f"Right now the connection is on pod #{pod}, which has served {served} of {total} calls: the "
        f"connection moved, and the calls moved with it ({_spread(view)})."
    )


def _times(n: int) -> str:
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


def _here(view: ClusterView) -> str:
    """One sentence on where the calls go now, whatever runs."""
    state = _state(view)
    if state == "pinned":
        return _pinned_now(view).replace("Right now", "Here, without it,", 1)
    if not _calls(view):
        return f"Here no call has been made since the switch; {_n(view.ready_connections, 'connection')} wait."
    if state == "pool":
        return f"Here the pool's {_n(view.ready_connections, 'connection')} spread the calls {_spread(view)}."
    if state == "l7":
        return f"Here the L7 proxy spreads them {_spread(view)}."
    return f"Here {view.policy} spreads them at the client: {_spread(view)}."


def _ready_upstream(view: ClusterView) -> int:
    return sum(1 for c in view.upstream if c.state == "READY")


def _skipped(view: ClusterView) -> list[int]:
    """Pods round_robin is skipping: down, draining, or not READY."""
    ready = set(_reached(view))
    return [p.index for p in view.pods if p.resolved is not False and p.index not in ready]


def _client_side_now(view: ClusterView) -> str:
    ready = view.ready_connections
    text = f"Right now {view.policy} holds {_n(ready, 'READY connection')}, one per pod it resolved"
    skipped = _skipped(view)
    if skipped:
        text += f" (skipping {_pods(skipped)})"
    if _calls(view):
        text += f", and its spread since the switch is {_spread(view)}"
    return text + "."


# --- the answers ------------------------------------------------------------------------------


def _one_connection(view: ClusterView) -> str:
    why = (
        "Because HTTP/2 multiplexes: every call is a stream, and many streams share ONE long-lived TCP "
        "connection — no handshake per call, one flow-control window, one header table. gRPC's default "
        "policy, pick_first, keeps exactly one connection per channel and sends every call on it."
    )
    state = _state(view)
    if state == "pinned":
        return f"{why} {_pinned_now(view)}"
    if state == "pool":
        return (
            f"{why} This client is the exception on purpose: it dialled {view.channels} pick_first channels, "
            f"so it holds {_n(view.ready_connections, 'connection')}, one per channel."
        )
    if state == "l7":
        return (
            f"{why} It still holds 1 connection here, to the L7 proxy; the proxy holds its own "
            f"{_ready_upstream(view)} to the pods."
        )
    return f"{why} Not under {view.policy}: it opens a connection per pod. {_client_side_now(view)}"


def _l4_pins(view: ClusterView) -> str:
    why = (
        "An L4 balancer (kube-proxy's ClusterIP, an ELB/NLB, nginx stream) relays TCP bytes and never sees "
        "the calls inside them. It picks a pod once, when the connection opens, and every stream on that "
        "connection goes to that pod for as long as the connection lives."
    )
    state = _state(view)
    if state == "pinned":
        if view.max_connection_age is not None:
            return (
                f"{why} Here the pods end each connection after ~{view.max_connection_age:g} s "
                f"({_n(view.goaways, 'GOAWAY')} so far), so it moves — but only when it reconnects. "
                f"{_pinned_now(view)}"
            )
        return f"{why} {_pinned_now(view)}"
    if state == "pool":
        reached = _reached(view)
        return (
            f"{why} Each of this pool's {_n(len(reached), 'connection')} is pinned the same way: "
            f"to {_pods(reached) or 'no pod yet'}."
        )
    if state == "l7":
        return f"{why} Right now the VIP is an L7 proxy instead: it ends HTTP/2 and picks a pod per call."
    return f"{why} Right now the client bypasses it: {view.policy} dials every pod itself."


def _more_connections(view: ClusterView) -> str:
    pods = len(view.pods)
    luck = math.factorial(pods) / pods**pods
    if _state(view) == "pool":
        reached = _reached(view)
        if not reached:
            return (
                f"That is what runs: {view.channels} pick_first channels through the VIP, connecting now. "
                "The L4 LB will pick a pod for each connection, at random."
            )
        count = Counter(reached)
        doubled = [p for p in sorted(count) if count[p] > 1]
        dark = [p.index for p in view.pods if p.index not in count]
        text = (
            f"That is what runs: {_n(len(reached), 'connection')} through the VIP, and the L4 LB sent them to "
            f"{_pods(reached)}."
        )
        if dark:
            more = f"{_pod_word(doubled).capitalize()} got more than one and " if doubled else ""
            text += f" {more}{_pod_word(dark)} none: balance by connection is luck."
        else:
            text += (
                f" Every pod got one this time; {pods} random picks over {pods} pods are all different only "
                f"{_percent(luck)} of the time."
            )
        if _calls(view):
            text += f" Calls rotate over the connections, so the spread follows them: {_spread(view)}."
        return text + " And a pod added later gets nothing until a connection reconnects."
    if pods == 1:
        return (
            "With one pod there is nothing to spread: add pods first. Then you can — a pool of pick_first "
            "channels through the VIP is what many teams do — but the L4 LB picks a pod per connection, at "
            "random, so some pods get two connections and some none, and calls follow the connections."
        )
    return (
        f"You can — a pool of pick_first channels through the VIP is what many teams do — but the L4 LB still "
        f"picks a pod per connection, at random: {pods} connections over your {pods} pods all land on different "
        f"pods only {_percent(luck)} of the time, so some pods get two and some none. Calls then balance only as "
        "evenly as the connections, and a pod added later gets nothing until one reconnects."
    )


def _round_robin(view: ClusterView) -> str:
    why = (
        "The client resolves every pod (a headless Service or xDS), keeps a subchannel — one connection — "
        "per pod, and picks one per call, skipping any that is not READY. The balancing moves from the "
        "connection to the call."
    )
    if _state(view) == "client":
        return f"{why} {_client_side_now(view)}"
    if _calls(view):
        return f"{why} Right now the client runs pick_first and the spread is {_spread(view)}: switch and compare."
    return f"{why} Right now the client runs pick_first, so it cannot."


def _l7_proxy(view: ClusterView) -> str:
    why = (
        "An L7 proxy (Envoy, Linkerd, nginx grpc_pass) ends the client's HTTP/2 connection and balances each "
        "call (stream) over its own connections to the pods, so one client connection still spreads."
    )
    if _state(view) == "l7":
        text = (
            f"{why} It runs now: the client holds {_n(view.ready_connections, 'connection')} to it, it holds "
            f"{_ready_upstream(view)} to the pods"
        )
        if _calls(view):
            text += (
                f", and it picked per call: {_spread(view)}. The price is the extra hop: your calls' p50 is "
                f"{_ms(view.p50_ms)} and p99 {_ms(view.p99_ms)}, the proxy's work included."
            )
        return text + ("" if _calls(view) else ".")
    return f"{why} The price is an extra hop per call, and one more thing to run. {_here(view)}"


def _max_connection_age(view: ClusterView) -> str:
    why = (
        "A server setting (gRFC A9): after the age, ±10 % jitter per connection, the pod sends GOAWAY, the "
        "calls in flight finish, and the client reconnects. Behind an L4 VIP that reconnect is a new pick, "
        "so pinned load re-spreads — slowly and lumpily, without touching the client."
    )
    if view.max_connection_age is None:
        return (
            f"{why} It is off right now: the client has opened {_n(view.client_connections_opened, 'connection')} "
            "and keeps each as long as nobody breaks it."
        )
    text = f"{why} It is on: {view.max_connection_age:g} s, and the pods have sent {_n(view.goaways, 'GOAWAY')} so far"
    if _state(view) == "pinned" and view.pinned_pod is not None:
        text += f"; the connection is on pod #{view.pinned_pod} for now"
    elif _state(view) == "client":
        text += f"; under {view.policy} each GOAWAY also makes the client re-resolve and find new pods"
    if _calls(view):
        text += f" (spread {_spread(view)})"
    return text + "."


def _kubernetes(view: ClusterView) -> str:
    why = (
        "A ClusterIP Service is a VIP and kube-proxy an L4 balancer: it picks a pod per connection, so a gRPC "
        "client dialling it is pinned exactly like here. A headless Service (clusterIP: None) has no VIP: its "
        "DNS name returns every ready pod's IP to the client's resolver (dns:///name), and round_robin picks "
        "per call. New pods show up only when the client re-resolves — on a lost connection or a GOAWAY, at "
        f"most every 30 s in gRPC (this app: {view.min_reresolution_interval:g} s), never by polling."
    )
    if _state(view) == "client":
        unseen = [p.index for p in view.pods if p.resolved is False]
        text = f" Here the client has resolved the pods' list {_times(view.resolutions)}"
        if unseen:
            return f"{why}{text}, and {_pod_word(unseen)} {'is' if len(unseen) == 1 else 'are'} not in it yet."
        return f"{why}{text}: all {len(view.pods)} pods are in it."
    text = f"{why} Here the VIP plays the ClusterIP, with {_n(len(view.pods), 'pod')} behind it"
    if _state(view) == "pinned" and view.pinned_pod is not None:
        return text + f", and it sent this client's connection to pod #{view.pinned_pod}."
    return text + "."


def _pod_dies(view: ClusterView) -> str:
    down = [p.index for p in view.pods if not p.serving]
    draining = [p.index for p in view.pods if p.draining]
    state = _state(view)
    if not down and not draining:
        return (
            f"All {len(view.pods)} pods serve right now: kill one (its number key) or drain it (d, then its "
            "number) and ask again. A pod that dies drops its connections and the calls on them fail "
            "UNAVAILABLE; pick_first goes IDLE and its next call reconnects through the VIP, where the L4 LB "
            "picks again, and round_robin simply skips the pod. A draining pod reports NOT_SERVING: round_robin "
            "watches health and stops picking it, pick_first does not watch health at all."
        )
    parts = []
    if down:
        parts.append(f"{_pod_word(down)} {'is' if len(down) == 1 else 'are'} down")
    if draining:
        parts.append(f"{_pod_word(draining)} {'reports' if len(draining) == 1 else 'report'} NOT_SERVING (draining)")
    text = "Right now " + " and ".join(parts) + "."
    if view.failed_total:
        worst = max(view.failed, key=lambda code: view.failed[code])
        text += f" {_n(view.failed_total, 'call')} failed so far ({worst}): the ones in flight when it went."
    if state == "client":
        return text + f" {view.policy} skips it: its subchannel is not READY. " + _client_side_now(view)
    if state == "l7":
        return (
            text + f" The proxy's round_robin skips it: {_ready_upstream(view)} of its {len(view.upstream)} "
            "connections to the pods are READY."
        )
    reached = _reached(view)
    if not reached:
        return text + " The client's connection is gone (IDLE): its next call dials the VIP and the L4 LB picks again."
    on = [p for p in reached if p in draining]
    if on:
        return (
            text + f" pick_first does not watch health, so its connection stays on {_pod_word(on)} and keeps "
            "sending there until the pod sends it away (GOAWAY) or dies."
        )
    lost = any(e.kind == "lost" for e in view.events)
    if lost:
        return (
            text + f" The client lost a connection, reconnected through the VIP, and the L4 LB picked again: "
            f"{_pod_word(reached)} now (a dead pod refuses the connection, so the LB tries the next)."
        )
    return (
        text + f" The client's connection runs to {_pod_word(reached)}, untouched; on the dead pod it would go "
        "IDLE, and its next call would dial the VIP, where the L4 LB picks a pod that accepts."
    )


def _cost(view: ClusterView) -> str:
    pods = len(view.pods)
    if _state(view) == "l7" and _calls(view):
        hop = (
            f"An L7 proxy costs a hop on every call: it parses each one and sends it again — right now your "
            f"calls' p50 is {_ms(view.p50_ms)}, p99 {_ms(view.p99_ms)}, the proxy included."
        )
    else:
        hop = (
            f"An L7 proxy costs a hop on every call: it parses each one and sends it again (the README's "
            f"benchmark puts even a plain L4 relay at +{L4_HOP_P50_US} µs p50; the L7 proxy does more)."
        )
    conns = (
        f"Client-side balancing costs connections: every client holds one per pod — {pods} pods × 1,000 clients "
        f"is {pods * 1000:,} connections the pods keep open, each with its health Watch stream."
    )
    now = f" This client holds {_n(view.ready_connections, 'connection')} right now."
    return f"{hop} {conns} MAX_CONNECTION_AGE costs a reconnect per connection per age, and spreads coarsely.{now}"


def _slow_pod(view: ClusterView) -> str:
    why = (
        "round_robin gives every READY pod the same share however slow it is, so a slow pod's calls queue. "
        "least_request (gRFC A48) samples two pods per call and picks the one with fewer calls outstanding: "
        "a slow pod holds its calls longer, so it gets fewer."
    )
    slow = [p for p in view.pods if p.slow_factor != 1]
    if not slow:
        if _calls(view):
            return f"{why} No pod is slow right now: the calls' p99 is {_ms(view.p99_ms)} ({_spread(view)})."
        return f"{why} No pod is slow right now."
    pod = slow[0]
    total = _calls(view)
    text = f"{why} Right now pod #{pod.index} is {pod.slow_factor:g}× slower"
    if total and pod.calls_since_switch:
        others = [p.p99_ms for p in view.pods if p.slow_factor == 1 and p.calls_since_switch]
        text += (
            f": {view.policy} gave it {pod.calls_since_switch / total:.0%} of the calls ({_spread(view)}), "
            f"and pod #{pod.index} answers p99 {_ms(pod.p99_ms)}"
        )
        if others:
            text += f" against {_ms(max(others))} at worst elsewhere"
    return text + "."


QUESTIONS: tuple[Question, ...] = (
    Question("one-connection", "Why does the client use only one connection?", _one_connection, 1),
    Question("l4-pins", "Why does the L4 balancer pin it to one pod?", _l4_pins, 1),
    Question("more-connections", "Why not just open more connections?", _more_connections, 7),
    Question("round-robin", "What does round_robin do differently?", _round_robin, 2),
    Question("l7-proxy", "What would an L7 proxy do?", _l7_proxy, 4),
    Question("max-connection-age", "What does MAX_CONNECTION_AGE do?", _max_connection_age, 3),
    Question("kubernetes", "What does Kubernetes do?", _kubernetes, 6),
    Question("pod-dies", "What happens when a pod dies or drains?", _pod_dies, 2),
    Question("cost", "What does each fix cost?", _cost, 4),
    Question("slow-pod", "What if one pod is slow?", _slow_pod, 5),
)


def question(key: str) -> Question:
    """The question named ``key``; ValueError for one that does not exist."""
    for each in QUESTIONS:
        if each.key == key:
            return each
    raise ValueError(f"there is no question {key!r}")
