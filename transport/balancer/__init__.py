"""Load-balancing policies, registered by name; imports nothing from ``transport.client``."""

from transport.balancer import least_request, pick_first, round_robin
from transport.balancer.base import (
    FailPicker,
    Helper,
    IdlePicker,
    LoadBalancer,
    Picker,
    PickInfo,
    PickResult,
    QueuePicker,
    Subchannel,
    get_policy,
    policy_names,
    register_policy,
)

__all__ = [
    "FailPicker",
    "Helper",
    "IdlePicker",
    "LoadBalancer",
    "PickInfo",
    "PickResult",
    "Picker",
    "QueuePicker",
    "Subchannel",
    "get_policy",
    "least_request",
    "pick_first",
    "policy_names",
    "register_policy",
    "round_robin",
]
