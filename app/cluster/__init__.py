"""The model behind the picture: pods, the L4 balancer, the client, traffic. No UI here."""

from app.cluster.cluster import BALANCERS, MAX_PODS, POLICIES, Cluster, ClusterConfig
from app.cluster.configurations import CONFIGURATIONS, Configuration, configuration, matching
from app.cluster.events import Event, EventLog
from app.cluster.history import History, HistoryView, PodHistory
from app.cluster.load import LoadModel
from app.cluster.pod import Pod
from app.cluster.traffic import Traffic, TrafficStats
from app.cluster.view import ClusterView, ConnectionView, PodView

__all__ = [
    "BALANCERS",
    "CONFIGURATIONS",
    "MAX_PODS",
    "POLICIES",
    "Cluster",
    "ClusterConfig",
    "ClusterView",
    "Configuration",
    "ConnectionView",
    "Event",
    "EventLog",
    "History",
    "HistoryView",
    "LoadModel",
    "Pod",
    "PodHistory",
    "PodView",
    "Traffic",
    "TrafficStats",
    "configuration",
    "matching",
]
