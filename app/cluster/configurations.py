"""The seven configurations a newcomer switches between: the trap, and the answers real teams use.

A configuration is a preset of the live cluster: the client's policy, what the
VIP is, MAX_CONNECTION_AGE on the pods, which pod is slow, how many pods run,
and whether the client is one channel or a pool of them. :func:`matching` names
the preset the live state is, whatever keys led there (``p`` in configuration 3
gives configuration 6's state).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Configuration:
    number: int
    #: Short label for the selector.
    name: str
    #: What runs, in one line.
    title: str
    #: What you see and why, in one line (at most 78 characters: one row of an 80-column terminal).
    explanation: str
    #: The setting that does it in production.
    production: str
    policy: str
    #: What the VIP is ("l4" or "l7"); pick_first dials it, the other policies bypass it.
    balancer: str = "l4"
    #: MAX_CONNECTION_AGE on the pods (the cluster's ``configuration_age``).
    max_connection_age: bool = False
    #: The pod made ten times slower (the cluster's ``slow_factor``), or None.
    slow_pod: int | None = None
    #: Pods the configuration scales to when chosen, or None to keep what runs.
    pods: int | None = None
    #: The client is a pool of pick_first channels through the VIP, one per pod (calls rotate
    #: over them), instead of one channel.
    pooled: bool = False


CONFIGURATIONS = (
    Configuration(
        1,
        "L4 trap",
        "L4 VIP + pick_first",
        "One HTTP/2 connection; the L4 LB picks its pod once: every call lands there.",
        "the default: a gRPC client dialling a ClusterIP Service, an NLB or nginx stream",
        "pick_first",
    ),
    Configuration(
        2,
        "round_robin",
        "client-side round_robin",
        "The client resolves every pod and picks one per call, skipping pods not READY.",
        'a headless Service (dns:///name) and the service config {"loadBalancingConfig": [{"round_robin": {}}]}',
        "round_robin",
    ),
    Configuration(
        3,
        "max age",
        "L4 VIP + pick_first + MAX_CONNECTION_AGE",
        "Pods send old connections away (GOAWAY); the L4 LB re-picks on each reconnect.",
        "server option MAX_CONNECTION_AGE (grpc-go keepalive.ServerParameters, Java maxConnectionAge)",
        "pick_first",
        max_connection_age=True,
    ),
    Configuration(
        4,
        "L7 proxy",
        "L7 proxy as the VIP + pick_first",
        "One client connection, but the L7 proxy balances each call over the pods.",
        "Envoy, Linkerd or nginx grpc_pass in front of the pods (a service mesh sidecar or an L7 ingress)",
        "pick_first",
        balancer="l7",
    ),
    Configuration(
        5,
        "least_req",
        "client-side least_request, pod #2 slow",
        "Pod #2 is 10× slower; least_request picks the less busy of two pods per call.",
        'gRFC A48: {"loadBalancingConfig": [{"least_request_experimental": {"choiceCount": 2}}]}',
        "least_request",
        slow_pod=2,
    ),
    Configuration(
        6,
        "scale-up",
        "round_robin + MAX_CONNECTION_AGE, scaled to 6 pods",
        "New pods get calls once the client re-resolves; a GOAWAY makes it re-resolve.",
        "a headless Service, MAX_CONNECTION_AGE on the server, and the client's re-resolution on GOAWAY",
        "round_robin",
        max_connection_age=True,
        pods=6,
    ),
    Configuration(
        7,
        "N conns",
        "L4 VIP + a pool of pick_first channels, one per pod",
        "N connections; the L4 LB picks a pod per connection: one may get 2, one none.",
        "a channel pool (N grpc channels, calls rotate over them) dialling the ClusterIP Service or an NLB",
        "pick_first",
        pooled=True,
    ),
)


def configuration(number: int) -> Configuration:
    """Configuration ``number`` (1-based); ValueError for one that does not exist."""
    if not 1 <= number <= len(CONFIGURATIONS):
        raise ValueError(f"there is no configuration {number}: they are 1-{len(CONFIGURATIONS)}")
    return CONFIGURATIONS[number - 1]


def matching(
    policy: str, balancer: str, max_connection_age: bool, slow_pods: frozenset[int], pooled: bool = False
) -> Configuration | None:
    """The preset the live state is, or None (say, round_robin with a slow pod).

    The VIP counts only under pick_first (the other policies bypass it), and the
    number of pods never counts (``+`` in configuration 1 is still the trap, and
    configuration 7's pool keeps its size)."""
    for candidate in CONFIGURATIONS:
        slow = frozenset() if candidate.slow_pod is None else frozenset({candidate.slow_pod})
        if (
            candidate.policy == policy
            and (policy != "pick_first" or candidate.balancer == balancer)
            and candidate.max_connection_age == max_connection_age
            and slow == slow_pods
            and candidate.pooled == pooled
        ):
            return candidate
    return None
