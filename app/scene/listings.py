"""The code listings: the scene's three, and one per answer the configurations run.

Each listing marks the lines the live state runs through: the policy's
branch, and the feature (MAX_CONNECTION_AGE, the L7 proxy, re-resolution)
when it is on. :func:`live_keys` computes those keys from a view.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from app.cluster.view import ClusterView


@dataclass(frozen=True, slots=True)
class Listing:
    name: str
    purpose: str
    lines: tuple[str, ...]
    #: 1-based line numbers each live key's branch runs through (a policy, or a feature of
    #: :func:`live_keys`).
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
        {
            "pick_first": frozenset({2, 3, 4}),
            "round_robin": frozenset({5, 6, 7}),
            "least_request": frozenset({5, 6, 7}),
        },
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
        {"pick_first": frozenset({2}), "round_robin": frozenset({2}), "least_request": frozenset({2})},
    ),
)

#: The answers' listings, each shown while its feature is live (see :func:`listings_for`).
MAX_CONNECTION_AGE = Listing(
    "Server keepalive (gRFC A9)",
    "the pods send old connections away; the client reconnects",
    (
        "server = Server(options=ServerOptions(",
        "    max_connection_age={age}))  # ±10 % per conn",
        "def on_age(conn):  # at the pod, conn is old",
        '    conn.send(GOAWAY(2**31 - 1, "max_age"), PING)',
        "    # PING ACK: GOAWAY(last stream); calls finish",
        "def on_goaway(subchannel):  # at the client",
        "    subchannel.state = IDLE  # next call reconnects",
        "    # via the VIP: the L4 LB picks a pod again",
        "    channel.request_reresolution()",
    ),
    {
        "max_age": frozenset({1, 2, 3, 4, 5, 6, 7}),
        "max_age_vip": frozenset({8}),
        "max_age_pods": frozenset({9}),
    },
)
L7_PROXY = Listing(
    "L7Proxy.forward",
    "the proxy ends HTTP/2 and balances every call",
    (
        "async def forward(call):  # one downstream stream",
        "    # the proxy's own Channel, round_robin per CALL",
        "    upstream = self.channel.pick()",
        "    out = upstream.open_stream(call.method, call.metadata)",
        "    async for message in call: await out.write(message)",
        "    async for message in out: await call.write(message)",
        "    call.finish(out.code, out.details, out.trailers)",
    ),
    {"l7": frozenset({2, 3, 4})},
)
LEAST_REQUEST = Listing(
    "least_request pick (gRFC A48)",
    "power of two choices over READY subchannels",
    (
        "def pickSubchannel():",
        "    a, b = random.sample(ready_subchannels, 2)",
        "    sc = a if a.outstanding <= b.outstanding else b",
        "    sc.outstanding += 1  # until this call is done",
        "    return PickResult(sc, done=sc.call_done)",
    ),
    {"least_request": frozenset({2, 3, 4, 5})},
)
RERESOLUTION = Listing(
    "Channel re-resolution",
    "how new pods reach a running client",
    (
        "def on_subchannel_state(sc, state):",
        "    if state in (IDLE, TRANSIENT_FAILURE):  # GOAWAY, loss",
        "        self.request_reresolution()  # >= 30 s apart",
        "def on_resolved(addresses):  # the headless service",
        "    for a in addresses - self.known: self.add(Subchannel(a))",
        "    for a in self.known - addresses: self.remove(a)",
    ),
    {"resolving": frozenset({1, 2, 3, 4}), "unresolved": frozenset({5})},
)


def live_keys(view: ClusterView) -> frozenset[str]:
    """What the live state runs: its policy, and each answer that is on."""
    keys = {view.policy}
    if view.policy == "pick_first" and view.balancer == "l7":
        keys.add("l7")
    if view.max_connection_age is not None:
        keys.add("max_age")
        keys.add("max_age_vip" if view.policy == "pick_first" and view.balancer == "l4" else "max_age_pods")
    if view.policy != "pick_first":
        keys.add("resolving")
        if any(pod.resolved is False for pod in view.pods):
            keys.add("unresolved")
    return frozenset(keys)


def listings_for(view: ClusterView) -> tuple[Listing, ...]:
    """The answers' listings that are live (first), then the scene's three."""
    keys = live_keys(view)
    extra = []
    if "max_age" in keys:
        age = f"{view.max_connection_age:g}"
        extra.append(
            replace(MAX_CONNECTION_AGE, lines=tuple(line.replace("{age}", age) for line in MAX_CONNECTION_AGE.lines))
        )
    if "l7" in keys:
        extra.append(L7_PROXY)
    if "least_request" in keys:
        extra.append(LEAST_REQUEST)
    if "unresolved" in keys or ("resolving" in keys and "max_age" in keys):
        extra.append(RERESOLUTION)
    return (*extra, *LISTINGS)


def highlighted(listing: Listing, keys: frozenset[str]) -> frozenset[int]:
    """The lines the live keys (see :func:`live_keys`) run through."""
    lines: frozenset[int] = frozenset()
    for key in keys:
        lines |= listing.branch.get(key, frozenset())
    return lines
