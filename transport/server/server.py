"""The gRPC server: a listening socket, a method table, counters, graceful stop."""

from __future__ import annotations

import asyncio
import heapq
import logging
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Self

from transport.address import Address
from transport.http2 import DEFAULT_MAX_HEADER_LIST_SIZE, DEFAULT_WINDOW_SIZE
from transport.server.acceptor import Acceptor, default_max_connections, open_listener
from transport.server.connection import ServerConnection
from transport.server.handlers import GenericHandler, MethodHandler, Service
from transport.status import StatusCode
from transport.wire import DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH

if TYPE_CHECKING:
    from transport.server.call import ServerCall

log = logging.getLogger(__name__)

#: Adds trailers to every call a handler answered, OK or not, as its status goes out: header pairs
#: (already encoded, e.g. ORCA's ``endpoint-load-metrics-bin``). It may run twice for one call (a
#: unary response that did not fit the windows at once), so it reads the call, never changes it.
TrailerHook = Callable[["ServerCall"], Iterable[tuple[bytes, bytes]]]

#: Response metadata key with the answering server's name, so a client
#: behind a proxy can see where its call landed.
SERVER_NAME_KEY = "rpcviz-server"
#: Idle connections shed at most each time the connection cap is hit.
SHED_BATCH = 16


@dataclass(frozen=True, slots=True)
class ServerOptions:
    """Limits and HTTP/2 settings of a server."""

    max_receive_message_length: int = DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH
    max_concurrent_streams: int = 1000
    max_header_list_size: int = DEFAULT_MAX_HEADER_LIST_SIZE
    window_size: int = DEFAULT_WINDOW_SIZE
    #: A connection that sends nothing for this long after connecting is closed.
    handshake_timeout: float = 10.0
    #: gRFC A9 server keepalive parameters, in seconds; None = off (grpc's default).
    #: A connection with no call for ``max_connection_idle`` is sent away gracefully
    #: (GOAWAY ``max_idle``); one older than ``max_connection_age`` likewise
    #: (GOAWAY ``max_age``), its calls then get ``max_connection_age_grace`` to finish.
    #: Age and idle get ±10 % jitter per connection.
    max_connection_idle: float | None = None
    max_connection_age: float | None = None
    max_connection_age_grace: float | None = None
    #: Connections served at once; beyond it, new ones wait in the listen backlog.
    #: None = derived from the process's file-descriptor limit.
    max_connections: int | None = None
    #: gRFC A8 keepalive enforcement (grpc-go's EnforcementPolicy): a client that pings more
    #: often than every ``keepalive_min_time`` seconds (every 2 h while it has no call, unless
    #: ``keepalive_permit_without_calls``) gets strikes, reset whenever we send HEADERS or DATA;
    #: the third strike is GOAWAY ENHANCE_YOUR_CALM ``too_many_pings``.
    keepalive_min_time: float = 300.0
    keepalive_permit_without_calls: bool = False
    #: Seconds a header block may stay unfinished (HEADERS without END_HEADERS) before GOAWAY.
    header_block_timeout: float = 5.0


@dataclass(slots=True)
class ServerStats:
    """Counters a UI can sample cheaply: plain ints, updated in place."""

    connections_open: int = 0
    connections_total: int = 0
    calls_in_flight: int = 0
    calls_served: int = 0
    #: Requests answered with plain HTTP (not gRPC at all: 415, 405).
    rejected_requests: int = 0
    #: Streams refused over SETTINGS_MAX_CONCURRENT_STREAMS (RST_STREAM REFUSED_STREAM).
    streams_refused: int = 0
    #: Requests whose headers broke HTTP/2's rules (RST_STREAM PROTOCOL_ERROR).
    malformed_requests: int = 0
    #: Connections closed for a rapid-reset flood (GOAWAY ENHANCE_YOUR_CALM).
    connections_calmed: int = 0
    #: Connections sent away by MAX_CONNECTION_AGE / MAX_CONNECTION_IDLE (gRFC A9),
    #: or to make room at the connection cap.
    connections_aged: int = 0
    connections_idled: int = 0
    #: Times accepting stopped because the connection cap was reached (or descriptors ran out),
    #: and idle connections shed then to make room.
    connection_cap_reached: int = 0
    connections_shed: int = 0
    calls_by_status: list[int] = field(default_factory=lambda: [0] * len(StatusCode))
    #: Per method path: finished calls by status code (handlers that ran).
    calls_by_method: dict[str, list[int]] = field(default_factory=dict)

    def call_started(self) -> None:
        self.calls_in_flight += 1

    def call_finished(self, code: StatusCode, method: str) -> None:
        self.calls_in_flight -= 1
        self.calls_served += 1
        self.calls_by_status[code] += 1
        by_status = self.calls_by_method.get(method)
        if by_status is None:
            by_status = self.calls_by_method[method] = [0] * len(StatusCode)
        by_status[code] += 1

    def method_ok(self, method: str) -> int:
        """Calls of ``method`` that ended OK."""
        by_status = self.calls_by_method.get(method)
        return by_status[StatusCode.OK] if by_status else 0

    def count_status(self, code: StatusCode) -> None:
        """A call answered at once (Trailers-Only) without running a handler."""
        self.calls_served += 1
        self.calls_by_status[code] += 1

    def status_counts(self) -> dict[str, int]:
        """Non-zero counts by status name, e.g. ``{"OK": 25}``."""
        return {StatusCode(i).name: n for i, n in enumerate(self.calls_by_status) if n}

    def reset(self) -> None:
        """Zero the totals; what is open or in flight stays as it is."""
        self.connections_total = self.connections_open
        self.calls_served = 0
        self.rejected_requests = 0
        self.calls_by_status = [0] * len(StatusCode)
        self.calls_by_method = {}


class Server:
    """Serves registered methods over cleartext HTTP/2 (h2c, prior knowledge)."""

    def __init__(self, *, name: str = "", options: ServerOptions | None = None) -> None:
        self.name = name
        self.options = options or ServerOptions()
        self.methods: dict[str, MethodHandler] = {}
        self._generic_handlers: list[GenericHandler] = []
        #: What adds trailers to each call's status (:meth:`add_trailer_hook`); empty = nothing to do.
        self.trailer_hooks: list[TrailerHook] = []
        self.stats = ServerStats()
        self.response_headers: list[tuple[bytes, bytes]] = (
            [(SERVER_NAME_KEY.encode(), name.encode("ascii"))] if name else []
        )
        self._acceptor: Acceptor | None = None
        self._connections: set[ServerConnection] = set()
        self._address: Address | None = None
        self._all_closed: asyncio.Event | None = None
        #: Seeds the per-connection jitter of MAX_CONNECTION_AGE / _IDLE.
        self.rng = random.Random()

    def add_method(self, path: str, handler: MethodHandler) -> None:
        if not path.startswith("/") or path.count("/") != 2:
            raise ValueError(f"method path {path!r} must look like /package.Service/Method")
        self.methods[path] = handler

    def add_service(self, service: Service | Mapping[str, MethodHandler]) -> None:
        handlers = service if isinstance(service, Mapping) else service.method_handlers()
        for path, handler in handlers.items():
            self.add_method(path, handler)

    def add_generic_handler(self, lookup: GenericHandler) -> None:
        """A catch-all, asked (in the order added) for any path the method table lacks.

        ``lookup(path)`` returns a handler or None (UNIMPLEMENTED). With identity
        serializers the handler sees raw message bytes: a proxy can forward any method.
        """
        self._generic_handlers.append(lookup)

    def add_trailer_hook(self, hook: TrailerHook) -> None:
        """Have ``hook(call)`` add trailers to every call a handler answers (grpc-go's interceptors do it
        for ORCA's per-call load report); a hook that raises is logged and adds nothing."""
        self.trailer_hooks.append(hook)

    def lookup_generic(self, path: str) -> MethodHandler | None:
        for lookup in self._generic_handlers:
            handler = lookup(path)
            if handler is not None:
                return handler
        return None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> Address:
        """Listen on ``host:port`` (0 picks a free port); return the bound address.

        A stopped (or killed) server may be started again; its counters carry on.
        """
        self._all_closed = asyncio.Event()
        self._all_closed.set()
        sock = await open_listener(host, port)
        sockname = sock.getsockname()
        self._address = Address(sockname[0], sockname[1])
        cap = self.options.max_connections
        self._acceptor = Acceptor(
            sock,
            lambda: ServerConnection(self),
            cap if cap is not None else default_max_connections(),
            self._make_room,
        )
        self._acceptor.start()
        return self._address

    @property
    def address(self) -> Address:
        if self._address is None:
            raise RuntimeError("server is not started")
        return self._address

    @property
    def port(self) -> int:
        return self.address.port

    @property
    def serving(self) -> bool:
        return self._acceptor is not None

    async def stop(self, grace: float | None = 5.0) -> None:
        """Stop gracefully: refuse new connections, send every connection away with
        grpc's graceful GOAWAY, let running calls finish for up to ``grace`` seconds,
        then end what is left with UNAVAILABLE and close."""
        self._stop_accepting()
        for conn in list(self._connections):
            conn.go_away()
        if self._all_closed is not None and self._connections:
            try:
                await asyncio.wait_for(self._all_closed.wait(), grace)
            except TimeoutError:
                for conn in list(self._connections):
                    conn.abort()
                await self._all_closed.wait()

    def kill(self) -> None:
        """Stop abruptly, like a crashed process: close every socket, send nothing more."""
        self._stop_accepting()
        for conn in list(self._connections):
            if conn.transport is not None:
                conn.transport.abort()

    def _stop_accepting(self) -> None:
        acceptor, self._acceptor = self._acceptor, None
        if acceptor is not None:
            acceptor.close()

    def _make_room(self) -> None:
        """At the connection cap (or out of descriptors): shed the connections idle longest.

        They carry no call, so nothing is lost: each gets GOAWAY at once and a short
        linger (:meth:`ServerConnection.shed`); the clients waiting in the backlog
        take their places.
        """
        self.stats.connection_cap_reached += 1
        idle = [c for c in self._connections if not c.calls and not c.draining]
        for conn in heapq.nsmallest(SHED_BATCH, idle, key=lambda c: c.idle_since):
            self.stats.connections_shed += 1
            conn.shed()

    async def __aenter__(self) -> Self:
        if self._acceptor is None:
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- called by connections --------------------------------------------

    def connection_opened(self, conn: ServerConnection) -> None:
        self._connections.add(conn)
        self.stats.connections_open += 1
        self.stats.connections_total += 1
        if self._all_closed is not None:
            self._all_closed.clear()
        if self._acceptor is None:  # accepted while stopping
            conn.go_away()

    def connection_closed(self, conn: ServerConnection, acceptor: Acceptor | None) -> None:
        if conn in self._connections:
            self._connections.discard(conn)
            self.stats.connections_open -= 1
        if acceptor is not None:
            acceptor.release()
        if not self._connections and self._all_closed is not None:
            self._all_closed.set()

    def connection_ages(self) -> list[float | None]:
        """Each open connection's MAX_CONNECTION_AGE after jitter (None where unlimited)."""
        return [conn.max_age for conn in self._connections]

    @property
    def acceptor(self) -> Acceptor | None:
        """The accept loop while serving (its counters: ``active``, ``exhaustions``)."""
        return self._acceptor
