"""The scene's two terms, and which one describes what is live."""

from __future__ import annotations

from app.cluster.view import ClusterView

CONNECTION_PINNING = "CONNECTION PINNING"
CLIENT_SIDE_LOAD_BALANCING = "CLIENT-SIDE LOAD BALANCING"


def term(view: ClusterView) -> str | None:
    """CONNECTION PINNING while the client's one connection through the L4 LB sits on one pod;
    CLIENT-SIDE LOAD BALANCING while the client picks a pod per call; else None (an L7 proxy
    balances calls, but on the proxy's side)."""
    if view.policy == "pick_first":
        return CONNECTION_PINNING if view.balancer == "l4" and view.pinned_pod is not None else None
    return CLIENT_SIDE_LOAD_BALANCING if view.ready_connections else None
