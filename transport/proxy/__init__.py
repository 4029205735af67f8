"""Embedded proxies that sit between rpcviz clients and backends."""

from __future__ import annotations

from transport.proxy.l4 import BackendStats, ConnectionInfo, L4Proxy

__all__ = ["BackendStats", "ConnectionInfo", "L4Proxy"]
