"""An embedded L7 (gRPC-aware) load-balancing proxy.

It models what Envoy, Linkerd or nginx ``grpc_pass`` do: it terminates HTTP/2
from its clients and forwards each *call* to a backend picked per call by its
own :class:`~transport.client.Channel` (round_robin by default), so one client
connection is spread over every backend — the answer to pick_first behind an
L4 balancer.

One forwarding path serves every method and every cardinality: each call is
treated as a stream on both sides (a unary call is a stream of one message
each way; gRPC's framing is the same), with raw message bytes. A request that
is whole once the read that brought its headers is handled (one message and
its end: every unary request) goes upstream whole, in one write, as a unary
call sends it; an answer that is whole when its headers arrive (one message and
an OK status) goes downstream in one write, as a unary server answers. Neither
changes what is forwarded, only how many writes (and event-loop turns) it takes.
What is forwarded, and how:

- request metadata (the protocol's own headers stay behind; each side builds
  its own), the remaining deadline as the upstream ``timeout``;
- requests as they arrive, the client's half-close as the upstream's;
- response headers when the backend sends them (a Trailers-Only answer stays
  Trailers-Only), response messages as they arrive;
- the backend's status, details and trailing metadata, unchanged;
- cancellation: a downstream reset, deadline or shutdown cancels the upstream call.

A call no backend could take ends with UNAVAILABLE and a sentence saying so.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from transport.address import Address
from transport.balancer import get_policy
from transport.client import Channel, ChannelOptions, StreamStreamCall, UnaryStreamCall, UnaryStreamMultiCallable
from transport.client.outcome import stream_error
from transport.client.resolver import parse_target
from transport.connectivity import ConnectivityState
from transport.eof import EOF
from transport.http2.stream import Stream
from transport.metadata import Metadata, decode_metadata, encode_metadata
from transport.server import MethodHandler, Server, ServerCall, ServerOptions, stream_stream
from transport.server.acceptor import Acceptor
from transport.server.connection import ServerConnection
from transport.status import RpcError, StatusCode

__all__ = ["L7BackendStats", "L7CallInfo", "L7ConnectionInfo", "L7Listener", "L7Proxy", "upstream_target"]

logger = logging.getLogger(__name__)


@dataclass(slots=True, eq=False)
class L7BackendStats:
    """Plain-int counters for one backend, as the proxy saw its calls; cheap to sample from a UI."""

    address: Address
    calls_total: int = 0
    calls_in_flight: int = 0
    calls_by_status: list[int] = field(default_factory=lambda: [0] * len(StatusCode))

    @property
    def calls_ok(self) -> int:
        return self.calls_by_status[StatusCode.OK]

    def status_counts(self) -> dict[str, int]:
        """Non-zero counts by status name, e.g. ``{"OK": 100}``."""
        return {StatusCode(i).name: n for i, n in enumerate(self.calls_by_status) if n}


@dataclass(slots=True, eq=False)
class L7ConnectionInfo:
    """One downstream (client) connection the proxy terminates."""

    id: int
    client: Address
    calls_total: int = 0
    calls_in_flight: int = 0
    opened_at: float = 0.0
    """``time.monotonic()`` when the connection was accepted."""
    closed_at: float | None = None


@dataclass(slots=True, eq=False)
class L7CallInfo:
    """One forwarded call, as a UI draws it: which client connection, which backend."""

    id: int
    method: str
    connection_id: int
    backend: Address | None = None
    """Where the call went; None while picking, or if no backend took it."""
    code: StatusCode | None = None
    """The status it ended with; None while in flight."""
    started_at: float = 0.0
    ended_at: float | None = None


L7Listener = Callable[[str, Any], object]
"""``callback(event, info)``: ``"call"`` (an :class:`L7CallInfo` reached its backend), ``"done"``
(it ended), ``"open"`` / ``"close"`` (an :class:`L7ConnectionInfo`)."""


def upstream_target(backends: str | Sequence[Address]) -> str:
    """The upstream Channel's target: a target as given, or an ``ipv4:``/``ipv6:`` list of addresses."""
    if isinstance(backends, str):
        parse_target(backends)  # ValueError with a sentence if it is not a target
        return backends
    addresses = [Address(*b) for b in backends]
    if not addresses:
        raise ValueError("The L7 proxy needs at least one backend address.")
    if len(addresses) == 1:
        target = str(addresses[0])
    elif all(":" in a.host for a in addresses):
        target = "ipv6:" + ",".join(str(a) for a in addresses)
    else:
        target = "ipv4:" + ",".join(str(a) for a in addresses)
    parse_target(target)
    return target


def _forwardable(metadata: Metadata) -> list[tuple[str, str | bytes]]:
    """The pairs we can send on: custom metadata only (``grpc-`` keys and protocol headers stay behind)."""
    kept: list[tuple[str, str | bytes]] = []
    for key, value in metadata:
        try:
            encode_metadata(((key, value),))
        except ValueError:
            continue
        kept.append((key, value))
    return kept


class _FrontServer(Server):
    """The proxy's listening side: a Server that tells the proxy about its client connections."""

    def __init__(self, proxy: L7Proxy, options: ServerOptions | None) -> None:
        super().__init__(name="", options=options)  # no name: it adds no metadata of its own
        self._proxy = proxy

    def connection_opened(self, conn: ServerConnection) -> None:
        super().connection_opened(conn)
        self._proxy._client_connected(conn.peer)

    def connection_closed(self, conn: ServerConnection, acceptor: Acceptor | None) -> None:
        known = conn in self._connections
        super().connection_closed(conn, acceptor)
        if known:
            self._proxy._client_disconnected(conn.peer)


class L7Proxy:
    """A gRPC proxy that balances calls over backends, each call to a backend picked on its own.

    Usage::

        async with L7Proxy("ipv4:127.0.0.1:50051,127.0.0.1:50052") as proxy:
            print(proxy.address)  # point clients here
    """

    def __init__(
        self,
        backends_target: str | Sequence[Address],
        policy: str = "round_robin",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        channel_options: ChannelOptions | None = None,
        server_options: ServerOptions | None = None,
    ) -> None:
        self.target = upstream_target(backends_target)
        get_policy(policy)  # ValueError for an unknown policy
        self.policy = policy
        self.host = host
        self.port = port
        self.channel_options = channel_options
        self.server = _FrontServer(self, server_options)
        """The downstream side; its ``stats`` count client connections and calls."""
        self.server.add_generic_handler(self._lookup)
        self._handler = stream_stream(self._forward)
        self._channel: Channel | None = None
        self._address: Address | None = None
        self._backends: dict[Address, L7BackendStats] = {}
        self._connections: dict[str, L7ConnectionInfo] = {}
        self._listeners: list[L7Listener] = []
        self._next_connection_id = 0
        self._next_call_id = 0
        #: Calls that reached no backend (none reachable, or the proxy stopping first).
        self.calls_unrouted = 0

    # -- public API -----------------------------------------------------------------

    async def start(self) -> Address:
        """Create the upstream Channel, bind and start accepting; return the bound address."""
        if self._address is not None and self.server.serving:
            return self._address
        if self._channel is None or self._channel.closed:
            self._channel = Channel(self.target, self.policy, options=self.channel_options)
            self._channel.connect()  # connect to the backends now, not at the first call
        self._address = await self.server.start(self.host, self.port)
        return self._address

    @property
    def address(self) -> Address:
        """The bound listening address; only valid after :meth:`start`."""
        if self._address is None:
            raise RuntimeError("The L7 proxy has not been started; call start() first.")
        return self._address

    @property
    def channel(self) -> Channel:
        """The upstream Channel (its subchannels are the proxy's connections to the backends)."""
        if self._channel is None:
            raise RuntimeError("The L7 proxy has not been started; call start() first.")
        return self._channel

    @property
    def backends(self) -> list[L7BackendStats]:
        """Per-backend counters: every resolved backend, then any no longer listed that served calls."""
        if self._channel is not None:
            for address in self._channel.addresses:
                self._backend(address)
        return list(self._backends.values())

    @property
    def connections(self) -> list[L7ConnectionInfo]:
        """The open downstream connections, oldest first."""
        return list(self._connections.values())

    def ready_backends(self) -> int:
        """How many upstream subchannels are READY."""
        if self._channel is None:
            return 0
        return sum(1 for sc in self._channel.subchannels if sc.state is ConnectivityState.READY)

    def add_listener(self, callback: L7Listener) -> None:
        """Call ``callback(event, info)`` on every "call", "done", "open" and "close"."""
        self._listeners.append(callback)

    def remove_listener(self, callback: L7Listener) -> None:
        """Stop calling ``callback``; unknown callbacks are ignored."""
        if callback in self._listeners:
            self._listeners.remove(callback)

    async def stop(self, grace: float = 0.0) -> None:
        """Stop accepting; let running calls finish for ``grace`` seconds (each client connection gets
        a graceful GOAWAY, so clients move on without losing a call), then end the rest with
        UNAVAILABLE (their upstream calls are cancelled) and close the upstream Channel."""
        if not grace >= 0 or math.isinf(grace):
            raise ValueError(f"grace must be a finite number of seconds >= 0, not {grace}.")
        await self.server.stop(grace)
        channel = self._channel
        if channel is not None:
            await channel.close(grace=0)
        await asyncio.sleep(0)  # let cancelled forwarders run their cleanup

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

    # -- forwarding -----------------------------------------------------------------

    def _lookup(self, path: str) -> MethodHandler:
        """Every method is forwarded; the backend says whether it knows it."""
        return self._handler

    async def _forward(self, _requests: object, context: ServerCall) -> None:
        """One call, end to end: open it upstream, pump requests up and responses down, relay the status."""
        down = context.stream
        if not down.closed:
            # The handler starts at the request headers; the rest of the read that brought them (a unary
            # request's message and end) is handled first, so that a whole request goes upstream whole.
            await asyncio.sleep(0)
        request = _whole_request(down)
        channel = self.channel
        connection = self._connections.get(context.peer().partition(":")[2])
        self._next_call_id += 1
        info = L7CallInfo(
            self._next_call_id, context.method, connection.id if connection else 0, started_at=time.monotonic()
        )
        if connection is not None:
            connection.calls_total += 1
            connection.calls_in_flight += 1
        timeout, metadata = context.time_remaining(), _forwardable(context.invocation_metadata())
        upstream: UnaryStreamCall[bytes] | StreamStreamCall[bytes, bytes]
        if request is not None:
            unary_request: UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(context.method)
            upstream = unary_request(request, timeout=timeout, metadata=metadata)
        else:
            upstream = channel.stream_stream(context.method)(timeout=timeout, metadata=metadata)
        stats: L7BackendStats | None = None
        pump: asyncio.Task[None] | None = None
        code = StatusCode.CANCELLED
        try:
            try:
                # The call's own opening step, run here as ``await`` runs it for a unary call (Call has no
                # public name for it): a request known whole goes in the same write as the headers, and the
                # call's later steps find its stream open, with no Task and no asyncio.wait of their own.
                stream = await upstream._start_stream()
            except RpcError as exc:
                self.calls_unrouted += 1
                if exc.code is StatusCode.UNAVAILABLE:
                    context.abort(exc.code, f"L7 proxy: no backend of {self.target} took the call ({exc.details})")
                context.abort(exc.code, exc.details)
            info.backend = upstream.address
            if info.backend is not None:
                stats = self._backend(info.backend)
                stats.calls_total += 1
                stats.calls_in_flight += 1
            self._notify("call", info)
            if isinstance(upstream, StreamStreamCall):
                pump = asyncio.get_running_loop().create_task(_send_requests(context, upstream))
            code = await _relay_responses(context, upstream, stream)
        except RpcError as exc:
            code = exc.code
            raise
        finally:
            if pump is not None and not pump.done():
                pump.cancel()
            if not upstream.done():
                upstream.cancel()  # the downstream call ended first (reset, deadline, shutdown)
            if stats is not None:
                stats.calls_in_flight -= 1
                stats.calls_by_status[code] += 1
            if connection is not None:
                connection.calls_in_flight -= 1
            info.code = code
            info.ended_at = time.monotonic()
            self._notify("done", info)

    # -- bookkeeping ----------------------------------------------------------------

    def _backend(self, address: Address) -> L7BackendStats:
        stats = self._backends.get(address)
        if stats is None:
            stats = self._backends[address] = L7BackendStats(address)
        return stats

    def _client_connected(self, peer: str) -> None:
        self._next_connection_id += 1
        try:
            client = Address.parse(peer)
        except ValueError:
            client = Address("?", 0)
        info = L7ConnectionInfo(self._next_connection_id, client, opened_at=time.monotonic())
        self._connections[peer] = info
        self._notify("open", info)

    def _client_disconnected(self, peer: str) -> None:
        info = self._connections.pop(peer, None)
        if info is not None:
            info.closed_at = time.monotonic()
            self._notify("close", info)

    def _notify(self, event: str, info: object) -> None:
        """Call listeners; their exceptions are logged, never propagated."""
        for callback in list(self._listeners):
            try:
                callback(event, info)
            except Exception:
                logger.exception("L7 proxy listener %r failed on %r", callback, event)


async def _send_requests(context: ServerCall, upstream: StreamStreamCall[bytes, bytes]) -> None:
    """Requests as they arrive, then the client's half-close; stops quietly once the upstream call has ended."""
    try:
        while (request := await context.read()) is not EOF:
            await upstream.write(request)
        await upstream.done_writing()
    except (RpcError, RuntimeError):
        pass  # the upstream call ended first: its status is what the responses' side relays


def _whole_request(stream: Stream) -> bytes | None:
    """The request message if the client has sent exactly one and ended (what every unary call sends), else None."""
    if stream.remote_ended and stream.error is None and stream.queued == 1 and not stream.pending:
        return stream.take_message()
    return None


def _whole_answer(stream: Stream) -> bool:
    """The backend has answered with one message and an OK status, all of it here."""
    return (
        stream.remote_ended
        and stream.trailers is not None
        and stream.queued == 1
        and stream.error is None
        and stream_error(stream) is None
    )


async def _answer_whole(
    context: ServerCall, upstream: UnaryStreamCall[bytes] | StreamStreamCall[bytes, bytes], stream: Stream
) -> StatusCode:
    """Headers, the message and the OK trailers downstream in one write, as a unary server answers."""
    assert stream.headers is not None and stream.trailers is not None
    metadata = _forwardable(decode_metadata(stream.headers))
    if metadata:
        # What send_initial_metadata() adds, without sending it on its own (ServerCall has no public
        # name for that): it goes out with the message and the trailers, in one write.
        context._initial_metadata = context._initial_metadata + encode_metadata(metadata)
    context.set_trailing_metadata(_forwardable(decode_metadata(stream.trailers)))
    message = stream.take_message()
    assert message is not None
    if not context.send_unary_response(message):  # the windows are too small for one step
        await context.send_message(message)  # the trailers follow when the handler returns
    await upstream.code()  # the upstream call ends now (it has its status): counted, its stream freed
    return StatusCode.OK


async def _relay_responses(
    context: ServerCall, upstream: UnaryStreamCall[bytes] | StreamStreamCall[bytes, bytes], stream: Stream
) -> StatusCode:
    """Response headers, messages and the status, as the backend sent them; the status code relayed."""
    while stream.headers is None and not stream.closed:
        await stream.wait_for_data()
    if _whole_answer(stream):
        return await _answer_whole(context, upstream, stream)
    metadata = await upstream.initial_metadata()
    if upstream.sent_response_headers():
        await context.send_initial_metadata(_forwardable(metadata))
    try:
        while (response := await upstream.read()) is not EOF:
            await context.write(response)
    except RpcError as exc:
        context.abort(exc.code, exc.details, _forwardable(exc.trailing_metadata))
    context.set_trailing_metadata(_forwardable(await upstream.trailing_metadata()))
    return StatusCode.OK
