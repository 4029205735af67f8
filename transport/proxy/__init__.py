"""Embedded proxies that sit between rpcviz clients and backends."""

from __future__ import annotations

from transport.proxy.l4 import BackendStats, ConnectionInfo, L4Proxy
from transport.proxy.l7 import L7BackendStats, L7CallInfo, L7ConnectionInfo, L7Proxy

__all__ = ["BackendStats", "ConnectionInfo", "L4Proxy", "L7BackendStats", "L7CallInfo", "L7ConnectionInfo", "L7Proxy"]
