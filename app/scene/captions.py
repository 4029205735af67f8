"""The sentences under the diagram: which configuration runs, and what you see, from the real state."""

from __future__ import annotations

from app.cluster.configurations import configuration
from app.cluster.view import ClusterView


def configuration_line(view: ClusterView) -> str:
    """What the live configuration does, in one line; a state that is no preset is described."""
    if not view.owned:
        through = "dials the VIP: the balancer behind it picks" if view.via_vip else "dials every pod itself"
        return f"Attached to a deployment: {view.policy} {through}."
    if view.configuration is not None:
        return configuration(view.configuration).explanation
    parts = [view.policy]
    if view.policy == "pick_first":
        parts.append("through the L7 proxy" if view.balancer == "l7" else "through the L4 VIP")
    if view.max_connection_age is not None:
        parts.append(f"MAX_CONNECTION_AGE {view.max_connection_age:g} s")
    slow = [f"#{pod.index}" for pod in view.pods if pod.slow_factor != 1]
    if slow:
        parts.append(f"slow pod {', '.join(slow)}")
    return "Custom: " + " + ".join(parts) + " (m: back to the presets)."


def caption(view: ClusterView) -> str:
    """One or two sentences that say what the picture shows, from the real state."""
    failed = view.failed_total
    tail = ""
    if failed:
        worst = max(view.failed, key=lambda k: view.failed[k])
        tail = f" {failed} call{'s' if failed != 1 else ''} failed ({worst})."
    old = view.old_calls_in_flight
    if old:
        tail += f" {old} call{'s' if old != 1 else ''} from before the switch still finishing."
    if view.policy == "pick_first":
        if view.balancer == "l7":
            return _l7_caption(view) + tail
        return _pinned_caption(view) + tail
    return _client_side_caption(view) + tail


def _pinned_caption(view: ClusterView) -> str:
    if view.channels > 1:
        return _pool_caption(view)
    pod = view.pinned_pod
    if pod is None:
        return "One HTTP/2 connection to the VIP, not connected yet — the L4 LB will pick a pod."
    if view.max_connection_age is not None:
        rotations = f"{view.goaways} GOAWAY{'s' if view.goaways != 1 else ''} so far"
        return (
            f"One HTTP/2 connection, on pod #{pod} for now — the pods send it away after "
            f"~{view.max_connection_age:g} s ({rotations}) and the L4 LB picks again."
        )
    if not view.fired:
        return f'One HTTP/2 connection pinned to pod #{pod} — press g and every greet("Ada") lands there.'
    return f'One HTTP/2 connection pinned to pod #{pod} — every greet("Ada") lands there.'


def _pool_caption(view: ClusterView) -> str:
    """A pool of pick_first channels through the L4 VIP: which pods the L4 LB sent their connections to."""
    reached = sorted(c.pod for c in view.connections if c.state == "READY" and c.pod is not None)
    if not reached:
        return f"{view.channels} channels to the VIP, not connected yet — the L4 LB will pick a pod for each."
    dark = [f"#{p.index}" for p in view.pods if p.index not in reached]
    text = f"{len(reached)} HTTP/2 connections through the VIP; the L4 LB sent them to {' '.join(f'#{p}' for p in reached)}"
    if dark:
        text += f", none to {', '.join(dark)}"
    if not view.fired:
        return text + " — each greet will ride the next connection."
    spread = "/".join(str(p.calls_since_switch) for p in view.pods)
    return text + f" — each greet rides the next connection: {spread}."


def _l7_caption(view: ClusterView) -> str:
    if view.ready_connections == 0:
        return "One HTTP/2 connection to the L7 proxy, not connected yet."
    upstream = sum(1 for c in view.upstream if c.state == "READY")
    if not view.fired:
        return f"One HTTP/2 connection to the L7 proxy; it holds {upstream} to the pods and will pick one per call."
    spread = "/".join(str(p.calls_since_switch) for p in view.pods)
    return f"One HTTP/2 connection to the L7 proxy — it picks a pod per call over its {upstream}: {spread}."


def _client_side_caption(view: ClusterView) -> str:
    policy = view.policy
    ready = view.ready_connections
    pods = len(view.pods)
    unresolved = [f"#{p.index}" for p in view.pods if p.resolved is False]
    later = ""
    if unresolved:
        later = f" {', '.join(unresolved)} unseen until it re-resolves (≥ {view.min_reresolution_interval:g} s apart)."
    if ready == 0:
        return f"{policy}: connecting to every pod…" + later
    spread = "/".join(str(p.calls_since_switch) for p in view.pods)
    if view.ok > sum(p.calls_since_switch for p in view.pods):  # earlier channels' calls landed too
        spread += " since the switch"
    known = pods - len(unresolved)
    who = "" if ready == known else f" ({known - ready} pod{'s' if known - ready != 1 else ''} skipped)"
    if not who and not unresolved:
        who = " (one per pod)"
    pick = "picks a pod per call" if policy == "round_robin" else "picks the less busy of two pods per call"
    if not view.fired:
        return f"{ready} HTTP/2 connections{who} — {policy} {pick.replace('picks', 'will pick')}." + later
    return f"{ready} HTTP/2 connections{who} — {policy} {pick}: {spread}." + later
