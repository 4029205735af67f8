"""What the policy chip says: the client's policy, then what it does with the VIP in front of it."""

from __future__ import annotations

from app.cluster.view import ClusterView


def policy_summary(view: ClusterView) -> tuple[str, str]:
    """The live policy's name and, in a few words, where its calls go (each fits the balancer box)."""
    if view.policy == "pick_first":
        if view.balancer == "l7":
            return view.policy, "→ L7 picks per RPC"
        if view.channels > 1:
            return f"{view.channels} × {view.policy}", f"→ {view.channels} conns, 1 pod each"
        return view.policy, "→ pinned to 1 pod"
    if view.policy == "round_robin":
        return view.policy, "→ a pod per call"
    return view.policy, "→ less busy of 2"
