"""gRPC's connectivity states, shared by subchannels and channels."""

from __future__ import annotations

import enum


class ConnectivityState(enum.Enum):
    IDLE = "IDLE"
    CONNECTING = "CONNECTING"
    READY = "READY"
    TRANSIENT_FAILURE = "TRANSIENT_FAILURE"
    SHUTDOWN = "SHUTDOWN"
