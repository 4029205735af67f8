"""What the balancer box says: what the VIP is, the client's policy and where its calls go.

The box renders these; the words for a policy or a VIP live here, not in the widgets."""

from __future__ import annotations

from app.cluster.view import ClusterView

VIP_TITLES = {"l4": "L4 LB (ELB/nginx)", "l7": "L7 proxy (Envoy)"}
VIP_ROLES = {"l4": "balances CONNECTIONS", "l7": "balances CALLS"}


def vip_title(view: ClusterView) -> str:
    return VIP_TITLES.get(view.balancer, view.balancer)


def vip_role(view: ClusterView) -> str:
    return VIP_ROLES.get(view.balancer, "")


def route(view: ClusterView) -> str:
    """Where the client's connections go, in a few words (fits the balancer box)."""
    if not view.via_vip:
        return "direct to pods"
    if view.through_l7:
        return "via L7 → every pod"
    if view.channels > 1:
        return f"{view.channels} channels → VIP"
    return "via VIP → 1 pod"


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
