"""Scene 09's words: the code listings, the questions, and the caption.

Pure data and pure functions of a :class:`ClusterView`, so the screen's text
is computed from the real state and can be tested without a UI.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.cluster.view import ClusterView

TITLE = "Scene 09 · The L4 pinning trap: balance requests, not connections"


@dataclass(frozen=True, slots=True)
class Listing:
    name: str
    purpose: str
    lines: tuple[str, ...]
    #: 1-based line numbers each policy's branch runs through.
    branch: dict[str, frozenset[int]]


LISTINGS = (
    Listing(
        "Channel.dial",
        "what the channel resolves and connects to at startup",
        (
            "def dial(target, policy):",
            '    if policy == "pick_first":',
            "        # one VIP address -> the L4 LB picks the backend",
            "        addrs = [resolve_one(target)]",
            "    else:  # round_robin",
            "        # headless service / xDS returns every backend IP",
            "        addrs = resolve_all(target)",
            "    # one subchannel == one long-lived HTTP/2 connection",
            "    self.subchannels = [Subchannel(a) for a in addrs]",
            "    self.next = 0",
        ),
        {"pick_first": frozenset({2, 3, 4}), "round_robin": frozenset({5, 6, 7})},
    ),
    Listing(
        "Channel.pickSubchannel",
        "which connection this one call rides",
        (
            "def pickSubchannel():",
            '    if policy == "pick_first":',
            "        # only one subchannel exists -> always the same",
            "        return self.subchannels[0]",
            "    # round_robin: rotate per call across all subchannels",
            "    sc = self.subchannels[self.next % len(self.subchannels)]",
            "    self.next += 1",
            "    return sc",
        ),
        {"pick_first": frozenset({2, 3, 4}), "round_robin": frozenset({5, 6, 7, 8})},
    ),
    Listing(
        "Channel.send",
        "the call opens one HTTP/2 stream on the picked connection",
        (
            "def send(method, request):",
            "    sc = pickSubchannel()",
            "    # one RPC == one HTTP/2 stream on sc's connection",
            "    stream = sc.conn.new_stream()",
            "    stream.send_headers(method)",
            "    stream.send_data(encode(request))",
            "    return await stream.recv_response()",
        ),
        {"pick_first": frozenset({2}), "round_robin": frozenset({2})},
    ),
)

QUESTIONS = (
    (
        "Why does the client use only one connection?",
        (
            "HTTP/2 multiplexes every call as a stream on one long-lived TCP connection; that is what makes it "
            "fast (no handshakes per call, shared flow control, header compression). gRPC's default policy, "
            "pick_first, keeps exactly one connection per channel and sends every call on it."
        ),
    ),
    (
        "Why does the L4 balancer pin it to one pod?",
        (
            "An L4 balancer (ELB/NLB, nginx stream, kube-proxy) sees TCP connections, not the calls inside them. "
            "It chooses a pod once, when the connection opens; every stream on that connection then goes to the "
            "same pod for as long as the connection lives."
        ),
    ),
    (
        "Why not just open more connections?",
        (
            "Opening N connections through the VIP only spreads load if the balancer happens to send them to "
            "different pods, and only as evenly as connections, not calls: a busy connection still pins its load. "
            "Scaling up adds pods that no existing connection ever reaches."
        ),
    ),
    (
        "What does round_robin do differently?",
        (
            "The client resolves every pod address (a headless service or xDS), keeps a subchannel (connection) "
            "per pod, and picks one per call, skipping any that is not READY. The balancing moves from the "
            "connection to the request."
        ),
    ),
    (
        "What would an L7 proxy do?",
        (
            "An L7 proxy (Envoy, Linkerd, nginx grpc_pass) terminates HTTP/2 and balances each request (stream) "
            "separately, so one client connection still spreads over all pods, at the cost of an extra hop."
        ),
    ),
    (
        "What does MAX_CONNECTION_AGE do?",
        (
            "A server-side setting (gRPC proposal A9): after the age (plus jitter) the server sends GOAWAY, the "
            "client reconnects, and the L4 balancer may pick another pod. It re-spreads pinned load, slowly and "
            "coarsely, without changing the client."
        ),
    ),
)


def highlighted(listing: Listing, policy: str) -> frozenset[int]:
    return listing.branch.get(policy, frozenset())


def caption(view: ClusterView) -> str:
    """One sentence that says what the picture shows, from the real state."""
    failed = view.failed_total
    tail = ""
    if failed:
        worst = max(view.failed, key=lambda k: view.failed[k])
        tail = f" {failed} call{'s' if failed != 1 else ''} failed ({worst})."
    if view.policy == "pick_first":
        pod = view.pinned_pod
        if pod is None:
            return "One HTTP/2 connection to the VIP, not connected yet — the L4 LB will pick a pod." + tail
        if not view.fired:
            return f'One HTTP/2 connection pinned to pod #{pod} — press g and every greet("Ada") lands there.' + tail
        return f'One HTTP/2 connection pinned to pod #{pod} — every greet("Ada") lands there.' + tail
    ready = view.ready_connections
    pods = len(view.pods)
    if ready == 0:
        return "round_robin: connecting to every pod…" + tail
    spread = "/".join(str(p.calls_since_switch) for p in view.pods)
    if any(p.calls != p.calls_since_switch for p in view.pods):
        spread += " since the switch"
    who = "one per pod" if ready == pods else f"{pods - ready} pod{'s' if pods - ready != 1 else ''} skipped"
    if not view.fired:
        return f"{ready} HTTP/2 connections ({who}) — round_robin will pick a pod per call." + tail
    return f"{ready} HTTP/2 connections ({who}) — round_robin picks a pod per call: {spread}." + tail
