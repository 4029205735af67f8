"""Short answers to what a newcomer asks about this scene."""

from __future__ import annotations

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
