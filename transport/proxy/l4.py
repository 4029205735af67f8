"""An embedded L4 (TCP) load-balancing proxy.

It models what an L4 load balancer (AWS ELB/NLB, nginx ``stream``, kube-proxy)
does: it balances *connections*, not requests, and knows nothing about HTTP/2.
Each accepted client connection is paired with exactly one backend connection
and bytes are relayed both ways until either side closes.

The relay is built directly on :class:`asyncio.BufferedProtocol`: each read
lands in the proxy's one preallocated buffer (rather than a fresh 256 KiB
``bytes`` per read, as a plain ``Protocol`` gets) and goes straight to the
peer transport's ``write``, with no task or queue in between. Backpressure is
transport-level: when one side's write buffer passes ``high_water``, reading
from the other side is paused.

How a pair ends mirrors how its sides ended: a half-close (EOF) is passed on
as a half-close, and the pair closes cleanly once both directions have ended;
a side that is reset (``connection_lost`` with an error) makes the proxy
reset the other side too (an abortive close, RST), so a truncated stream
never looks like a complete one to the peer.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import Self, cast

from transport.address import Address

__all__ = ["STRATEGIES", "BackendStats", "ConnectionInfo", "L4Proxy", "Listener"]

logger = logging.getLogger(__name__)

STRATEGIES = ("round_robin", "random")
"""Backend selection strategies accepted by :class:`L4Proxy`."""


@dataclass(slots=True, eq=False)
class BackendStats:
    """Plain-int counters for one backend; cheap to sample from a UI."""

    address: Address
    connections_open: int = 0
    connections_total: int = 0
    bytes_up: int = 0
    """Bytes relayed client -> backend."""
    bytes_down: int = 0
    """Bytes relayed backend -> client."""
    connect_failures: int = 0


@dataclass(slots=True, eq=False)
class ConnectionInfo:
    """One relayed client<->backend pair, as a UI draws it."""

    id: int
    client: Address
    """Peer address of the client side."""
    backend: Address
    backend_index: int
    """Index into the backend list at the time the pair was opened."""
    bytes_up: int = 0
    bytes_down: int = 0
    opened_at: float = 0.0
    """``time.monotonic()`` when the backend connection was established."""
    closed_at: float | None = None


Listener = Callable[[str, ConnectionInfo], object]
"""``callback(event, info)`` with event ``"open"`` or ``"close"``."""


def _peer_address(transport: asyncio.BaseTransport) -> Address:
    """The remote address of a socket transport (``?:0`` if unknown)."""
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return Address(str(peer[0]), int(peer[1]))
    return Address("?", 0)


#: Bytes read from a socket at most per read (the proxy's one read buffer).
READ_BUFFER_SIZE = 64 * 1024

_LINGER_RESET = struct.pack("ii", 1, 0)
"""``SO_LINGER`` on with a zero timeout: ``close()`` sends RST instead of FIN."""


def _reset(transport: asyncio.Transport) -> None:
    """Abortive close: drop what is buffered and make the kernel send RST, so the peer sees ECONNRESET.

    ``transport.abort()`` alone only skips the flush; the socket's close still
    sends a FIN when no input is pending, which a peer cannot tell from a
    complete stream.
    """
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        except OSError:  # already closed: nothing left to reset
            pass
    transport.abort()


class _ClientSide(asyncio.BufferedProtocol):
    """The accepted client connection; owns the pair's state."""

    transport: asyncio.Transport
    info: ConnectionInfo
    stats: BackendStats

    def __init__(self, proxy: L4Proxy) -> None:
        self.proxy = proxy
        self.peer: asyncio.Transport | None = None  # backend transport once connected
        self.client_addr = Address("?", 0)
        self.connect_task: asyncio.Task[None] | None = None
        self.attached = False
        self.closed = False
        self.client_eof = False
        self.backend_eof = False
        self.pending: list[bytes] = []

    # -- client transport events ------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Pause the client until a backend is connected, then start connecting."""
        t = cast(asyncio.Transport, transport)
        self.transport = t
        t.pause_reading()
        t.set_write_buffer_limits(high=self.proxy.high_water)
        self.client_addr = _peer_address(t)
        self.proxy._accepted(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.proxy.read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        # A copy: the buffer is reused by the next read, on either side of any pair.
        self.data_received(bytes(self.proxy.read_buffer[:nbytes]))

    def data_received(self, data: bytes) -> None:
        """Forward client bytes to the backend (the hot path)."""
        peer = self.peer
        if peer is None:  # only if reading was not paused; keep it to one chunk
            self.pending.append(data)
            self.transport.pause_reading()
            return
        peer.write(data)
        n = len(data)
        self.info.bytes_up += n
        self.stats.bytes_up += n

    def eof_received(self) -> bool:
        """Client half-closed: pass the EOF on to the backend."""
        if not self.client_eof:
            self.client_eof = True
            peer = self.peer
            if peer is not None:
                self._forward_eof(peer)
        return True

    def pause_writing(self) -> None:
        """The client reads slowly: stop reading from the backend."""
        if self.peer is not None:
            self.peer.pause_reading()

    def resume_writing(self) -> None:
        """The client caught up: read from the backend again."""
        if self.peer is not None:
            self.peer.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        """The client connection is gone: tear the pair down (a reset is passed on as a reset)."""
        self.teardown(abort=exc is not None)

    # -- pair management ----------------------------------------------------------

    def _forward_eof(self, target: asyncio.Transport) -> None:
        """Half-close ``target``; tear down once both directions have ended."""
        if self.client_eof and self.backend_eof:
            self.teardown()
        elif target.can_write_eof():
            target.write_eof()
        else:  # pragma: no cover - TCP transports can always write EOF
            self.teardown()

    def attach(self, backend: asyncio.Transport, index: int, stats: BackendStats) -> None:
        """A backend accepted: record the pair and start relaying."""
        backend.set_write_buffer_limits(high=self.proxy.high_water)
        if self.closed:
            backend.abort()
            return
        self.peer = backend
        self.stats = stats
        self.attached = True
        stats.connections_open += 1
        stats.connections_total += 1
        self.info = self.proxy._opened(self, stats.address, index)
        if self.pending:
            for chunk in self.pending:
                self.data_received(chunk)
            self.pending.clear()
        if self.client_eof:
            self._forward_eof(backend)
        self.transport.resume_reading()

    def teardown(self, *, abort: bool = False) -> None:
        """Close both sides once: gracefully, flushing buffers, or with ``abort`` reset both (RST)."""
        if self.closed:
            return
        self.closed = True
        task = self.connect_task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
        for t in (self.transport, self.peer):
            if t is not None:
                _reset(t) if abort else t.close()
        if self.attached:
            self.stats.connections_open -= 1
        self.proxy._finished(self)


class _BackendSide(asyncio.BufferedProtocol):
    """The proxy's connection to the chosen backend."""

    def __init__(self, owner: _ClientSide, index: int, stats: BackendStats) -> None:
        self.owner = owner
        self.index = index
        self.stats = stats

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Connected: attach to the client connection."""
        self.owner.attach(cast(asyncio.Transport, transport), self.index, self.stats)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.owner.proxy.read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(self.owner.proxy.read_buffer[:nbytes]))

    def data_received(self, data: bytes) -> None:
        """Forward backend bytes to the client (the hot path)."""
        owner = self.owner
        owner.transport.write(data)
        n = len(data)
        owner.info.bytes_down += n
        owner.stats.bytes_down += n

    def eof_received(self) -> bool:
        """Backend half-closed: pass the EOF on to the client."""
        owner = self.owner
        if not owner.backend_eof:
            owner.backend_eof = True
            owner._forward_eof(owner.transport)
        return True

    def pause_writing(self) -> None:
        """The backend reads slowly: stop reading from the client."""
        self.owner.transport.pause_reading()

    def resume_writing(self) -> None:
        """The backend caught up: read from the client again."""
        self.owner.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        """The backend connection is gone: tear the pair down (a reset is passed on as a reset)."""
        self.owner.teardown(abort=exc is not None)


class L4Proxy:
    """A TCP proxy that balances connections over a list of backends.

    Usage::

        async with L4Proxy([Address("127.0.0.1", 50051)]) as proxy:
            print(proxy.address)  # point clients here
    """

    def __init__(
        self,
        backends: Sequence[Address],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        strategy: str = "round_robin",
        seed: int | None = None,
        high_water: int = 256 * 1024,
        connect_timeout: float = 5.0,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"Unknown load-balancing strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}.")
        if high_water <= 0:
            raise ValueError(f"high_water must be a positive number of bytes, not {high_water}.")
        if connect_timeout <= 0:
            raise ValueError(f"connect_timeout must be positive, not {connect_timeout}.")
        self.backends: list[BackendStats] = []
        """Per-backend counters, in backend order."""
        self.set_backends(backends)
        self.host = host
        self.port = port
        self.strategy = strategy
        self.high_water = high_water
        self.connect_timeout = connect_timeout
        self._rng = random.Random(seed)
        self._next = 0
        self._next_id = 0
        self._server: asyncio.Server | None = None
        self._address: Address | None = None
        self._clients: set[_ClientSide] = set()
        self._connections: dict[int, ConnectionInfo] = {}
        self._listeners: list[Listener] = []
        self._drained: asyncio.Event | None = None
        """Set once no pair is left, while :meth:`stop` drains."""
        #: Where every read of every pair lands before it is forwarded (one loop, one read at a time).
        self.read_buffer = memoryview(bytearray(READ_BUFFER_SIZE))

    # -- public API -----------------------------------------------------------------

    async def start(self) -> Address:
        """Bind and start accepting; return the bound address (port 0 picks one)."""
        if self._server is not None:
            return self.address
        loop = asyncio.get_running_loop()
        server = await loop.create_server(partial(_ClientSide, self), self.host, self.port, backlog=1024)
        self._server = server
        sockname = server.sockets[0].getsockname()
        self._address = Address(str(sockname[0]), int(sockname[1]))
        return self._address

    @property
    def address(self) -> Address:
        """The bound listening address; only valid after :meth:`start`."""
        if self._address is None:
            raise RuntimeError("The L4 proxy has not been started; call start() first.")
        return self._address

    @property
    def connections(self) -> list[ConnectionInfo]:
        """The currently relayed client<->backend pairs, oldest first."""
        return list(self._connections.values())

    def set_backends(self, backends: Sequence[Address]) -> None:
        """Replace the backend list for new connections; existing pairs are untouched.

        Counters are kept for addresses that stay in the list.
        """
        addresses = [Address(*b) for b in backends]
        if not addresses:
            raise ValueError("The L4 proxy needs at least one backend address.")
        old: dict[Address, list[BackendStats]] = {}
        for stats in self.backends:
            old.setdefault(stats.address, []).append(stats)
        new: list[BackendStats] = []
        for addr in addresses:
            reuse = old.get(addr)
            new.append(reuse.pop(0) if reuse else BackendStats(addr))
        self.backends = new

    def add_listener(self, callback: Listener) -> None:
        """Call ``callback(event, info)`` on every pair "open" and "close"."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Listener) -> None:
        """Stop calling ``callback``; unknown callbacks are ignored."""
        if callback in self._listeners:
            self._listeners.remove(callback)

    def buffered_bytes(self) -> int:
        """Bytes held in the proxy's own transport write buffers, both directions."""
        total = 0
        for client in self._clients:
            total += client.transport.get_write_buffer_size()
            if client.peer is not None:
                total += client.peer.get_write_buffer_size()
        return total

    async def stop(self, grace: float = 0.0) -> None:
        """Stop accepting at once; let open pairs end by themselves for ``grace`` seconds, then reset the rest.

        This is the drain of a real L4 balancer: nginx ``stream`` closes its
        listeners on a graceful shutdown and keeps relaying established
        sessions until they end or ``worker_shutdown_timeout`` passes; Envoy's
        ``tcp_proxy`` drains a listener the same way (it cannot ask a byte
        stream to finish); an AWS NLB keeps a deregistered target's
        connections for its deregistration delay. Knowing nothing of HTTP/2,
        the proxy cannot send a GOAWAY: "ending by itself" means the client or
        the backend closes (both directions, EOF or reset), and the pair keeps
        relaying both ways until then, so answers already written are
        delivered. Pairs still open when the grace runs out are reset (RST),
        so neither peer mistakes the cut for a clean end.

        ``grace=0`` (the default) resets every pair at once. Idempotent; a
        second call with a shorter grace cuts a running drain short.
        """
        if not grace >= 0 or math.isinf(grace):
            raise ValueError(f"grace must be a finite number of seconds >= 0, not {grace}.")
        server, self._server = self._server, None
        if server is not None:
            server.close()
        if grace > 0 and self._clients:
            drained = self._drained
            if drained is None or drained.is_set():  # set: left over from before a restart
                drained = self._drained = asyncio.Event()
            try:
                async with asyncio.timeout(grace):
                    await drained.wait()
            except TimeoutError:
                logger.debug("L4 proxy: %d pairs still open after %gs; resetting them", len(self._clients), grace)
        clients = list(self._clients)
        tasks = [c.connect_task for c in clients if c.connect_task is not None]
        for client in clients:
            client.teardown(abort=True)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()
        # Let the transports' connection_lost callbacks run.
        await asyncio.sleep(0)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- internals ------------------------------------------------------------------

    def _pick(self, n: int) -> int:
        """The index of the first backend to try for a new connection."""
        if self.strategy == "random":
            return self._rng.randrange(n)
        index = self._next % n
        self._next = index + 1
        return index

    def _accepted(self, client: _ClientSide) -> None:
        """A client connected: start connecting it to a backend."""
        self._clients.add(client)
        client.connect_task = asyncio.get_running_loop().create_task(self._connect(client))

    async def _connect(self, client: _ClientSide) -> None:
        """Try backends in order from the picked one; close the client if none accepts."""
        backends = self.backends
        n = len(backends)
        first = self._pick(n)
        loop = asyncio.get_running_loop()
        for k in range(n):
            index = (first + k) % n
            stats = backends[index]
            try:
                async with asyncio.timeout(self.connect_timeout):
                    await loop.create_connection(
                        partial(_BackendSide, client, index, stats),
                        stats.address.host,
                        stats.address.port,
                    )
            except (OSError, TimeoutError) as exc:
                if client.attached or client.closed:
                    return  # raced with teardown; connection_lost cleans up
                stats.connect_failures += 1
                logger.debug(
                    "backend %s failed for %s: %r",
                    stats.address,
                    client.client_addr,
                    exc,
                )
                continue
            return
        logger.debug("no backend accepted %s; closing it", client.client_addr)
        client.teardown()

    def _opened(self, client: _ClientSide, backend: Address, index: int) -> ConnectionInfo:
        """Record a new relayed pair and notify listeners."""
        self._next_id += 1
        info = ConnectionInfo(
            id=self._next_id,
            client=client.client_addr,
            backend=backend,
            backend_index=index,
            opened_at=time.monotonic(),
        )
        self._connections[info.id] = info
        self._notify("open", info)
        return info

    def _finished(self, client: _ClientSide) -> None:
        """Forget a torn-down client connection and notify listeners."""
        self._clients.discard(client)
        if not self._clients and self._drained is not None:
            self._drained.set()
        if client.attached:
            info = client.info
            info.closed_at = time.monotonic()
            self._connections.pop(info.id, None)
            self._notify("close", info)

    def _notify(self, event: str, info: ConnectionInfo) -> None:
        """Call listeners; their exceptions are logged, never propagated."""
        for callback in list(self._listeners):
            try:
                callback(event, info)
            except Exception:
                logger.exception("L4 proxy listener %r failed on %r", callback, event)
