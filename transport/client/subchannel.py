"""A Subchannel: one long-lived HTTP/2 connection to one address."""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from transport.address import Address
from transport.client.backoff import BackoffConfig, ExponentialBackoff
from transport.client.connection import ClientConnection, NotHttp2
from transport.client.outcome import stream_error
from transport.connectivity import ConnectivityState
from transport.health.health_pb2 import HealthCheckRequest, HealthCheckResponse
from transport.health.service import WATCH, ServingStatus
from transport.http2 import DEFAULT_WINDOW_SIZE
from transport.http2.stream import StreamReset
from transport.status import RpcError, StatusCode
from transport.wire import DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH, encode_message

if TYPE_CHECKING:
    from transport.orca.v3.orca_load_report_pb2 import OrcaLoadReport

log = logging.getLogger(__name__)

StateListener = Callable[["Subchannel", ConnectivityState, ConnectivityState], None]


@dataclass(frozen=True, slots=True)
class SubchannelOptions:
    backoff: BackoffConfig = field(default_factory=BackoffConfig)
    max_receive_message_length: int = DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH
    window_size: int = DEFAULT_WINDOW_SIZE
    #: Watch this grpc.health.v1 service once connected; READY only while it is
    #: SERVING (gRPC A17). None = no health checking.
    health_check_service: str | None = None
    #: Wait before re-opening a health Watch that failed.
    health_retry_delay: float = 1.0


@dataclass(slots=True)
class SubchannelStats:
    """Plain counters, cheap to sample."""

    calls_started: int = 0
    calls_succeeded: int = 0
    calls_failed: int = 0
    calls_in_flight: int = 0
    connects: int = 0
    connect_failures: int = 0
    #: ORCA load reports received (per call or out of band), and those that did not parse (ignored).
    load_reports: int = 0
    load_reports_malformed: int = 0

    def reset(self) -> None:
        self.calls_started = self.calls_succeeded = self.calls_failed = 0
        self.connects = self.connect_failures = 0
        self.load_reports = self.load_reports_malformed = 0


class Subchannel:
    """Connects on request, reports gRPC connectivity states, backs off after failures.

    IDLE --request_connection--> CONNECTING --(server SETTINGS)--> READY
    CONNECTING --(refused/timeout)--> TRANSIENT_FAILURE --(backoff)--> IDLE
    READY --(connection lost or GOAWAY)--> IDLE
    CONNECTING --(SETTINGS, then GOAWAY or loss before READY)--> IDLE
    any --shutdown--> SHUTDOWN
    The load-balancing policy decides when an IDLE subchannel connects again.

    When the backoff resets. grpc-core resets it whenever a connected transport goes away
    (``ConnectedSubchannelStateWatcher``: IDLE, then ``backoff_.Reset()``) and grpc-go once a
    transport is created (``addrConn.resetTransportAndUnlock``: ``backoffIdx = 0``; a transport
    closed before it was published counts as a success too, ``createTransport``: IDLE). With
    round_robin reconnecting IDLE subchannels at once, a server that sends GOAWAY right after the
    handshake then gets a new connection per round trip (grpcio's round_robin: ~450 in 3 s). Here
    a lost connection resets the backoff only if it *proved itself*: it completed a call, or it
    stayed up for at least one base backoff step (so reconnecting at once is never faster than
    the backoff's first step anyway). A connection lost before that is a *quick loss*: the backoff
    is not reset, the next attempt waits for the next backoff delay (``next_attempt_at``; a
    :meth:`request_connection` before then is deferred to it), and :attr:`quick_losses` counts
    them in a row, for policies that stop reconnecting on their own (round_robin after two).
    A pod restart still reconnects at once: its old connection had carried calls or lived long.
    """

    def __init__(
        self,
        address: Address,
        authority: str,
        options: SubchannelOptions | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.address = address
        self.authority = authority
        self.options = options or SubchannelOptions()
        self.state = ConnectivityState.IDLE
        self.connection: ClientConnection | None = None
        self.stats = SubchannelStats()
        self.last_error = ""
        #: Loop time before which no connection attempt starts (backing off after a failure or
        #: a quick loss), else None.
        self.next_attempt_at: float | None = None
        #: Connections in a row that went away before they proved themselves (see the class doc).
        self.quick_losses = 0
        #: The last health status seen (e.g. "SERVING", "NOT_SERVING"), or None
        #: when not health checking.
        self.health: str | None = None
        self._health_task: asyncio.Task[None] | None = None
        #: The latest ORCA load report of this subchannel's server (gRFC A51: in a call's trailers or
        #: out of band), and the loop time it arrived; None until one does. A new connection keeps it.
        self.load_report: OrcaLoadReport | None = None
        self.load_report_at: float | None = None
        #: The trailer value the report came in (None: out of band): the same value again is not parsed.
        self.load_report_wire: bytes | None = None
        self._backoff = ExponentialBackoff(self.options.backoff, rng)
        self._listeners: list[StateListener] = []
        self._connect_task: asyncio.Task[None] | None = None
        self._backoff_timer: asyncio.TimerHandle | None = None
        #: A requested connection waiting for ``next_attempt_at``.
        self._deferred: asyncio.TimerHandle | None = None
        #: When the current connection was established, and the calls completed by then.
        self._connected_at = 0.0
        self._completed_at_connect = 0

    def __repr__(self) -> str:
        return f"<Subchannel {self.address} {self.state.name}>"

    def add_listener(self, listener: StateListener) -> None:
        self._listeners.append(listener)

    def _set_state(self, state: ConnectivityState) -> None:
        old, self.state = self.state, state
        if old is state:
            return
        for listener in list(self._listeners):
            try:
                listener(self, old, state)
            except Exception:
                log.exception("subchannel state listener failed")

    def record_load_report(self, report: OrcaLoadReport, at: float, wire: bytes | None = None) -> None:
        """The server reported its load (``transport.client.orca``): keep it as the latest."""
        self.load_report = report
        self.load_report_at = at
        self.load_report_wire = wire
        self.stats.load_reports += 1

    def request_connection(self) -> None:
        """Start connecting if IDLE, or at ``next_attempt_at`` if that is still ahead (after a
        quick loss); otherwise nothing (backoff is respected)."""
        if self.state is not ConnectivityState.IDLE or self._deferred is not None:
            return
        loop = asyncio.get_running_loop()
        if self.next_attempt_at is not None and self.next_attempt_at > loop.time():
            self._deferred = loop.call_at(self.next_attempt_at, self._deferred_done)
            return
        self._start_connecting()

    def _deferred_done(self) -> None:
        self._deferred = None
        if self.state is ConnectivityState.IDLE:
            self._start_connecting()

    def _start_connecting(self) -> None:
        self.next_attempt_at = None
        self._set_state(ConnectivityState.CONNECTING)
        self._connect_task = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        timeout = self._backoff.connect_timeout()
        conn: ClientConnection | None = None
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(self._new_connection, self.address.host, self.address.port)
                await conn.ready
        except asyncio.CancelledError:
            if conn is not None:
                conn.close()
            raise
        except (OSError, TimeoutError, ConnectionError) as exc:
            if conn is not None:
                conn.close()
            self._connect_failed(exc)
            return
        finally:
            self._connect_task = None
        if self.state is not ConnectivityState.CONNECTING:  # shut down meanwhile
            conn.close()
            return
        self.stats.connects += 1
        self._connected_at = loop.time()
        self._completed_at_connect = self._completed_calls()
        if not conn.usable:
            # The server's SETTINGS arrived, then GOAWAY or the loss before we could use it:
            # established and lost (grpc-go's createTransport goes IDLE here), a quick loss.
            conn.close()
            self._connection_lost(conn)
            return
        self.last_error = ""
        self.connection = conn
        if self.options.health_check_service is None:
            self._set_state(ConnectivityState.READY)
        else:  # stay CONNECTING until the server says SERVING
            self._health_task = loop.create_task(self._watch_health(conn, self.options.health_check_service))

    def _new_connection(self) -> ClientConnection:
        conn = ClientConnection(
            self.authority,
            max_receive_message_length=self.options.max_receive_message_length,
            window_size=self.options.window_size,
            on_closed=self._on_connection_closed,
        )
        # An attempt given up (cancelled, timed out, even inside create_connection) fails
        # ``ready`` when it closes: retrieved here, so asyncio logs no "never retrieved".
        conn.ready.add_done_callback(lambda ready: None if ready.cancelled() else ready.exception())
        return conn

    def _connect_failed(self, exc: BaseException) -> None:
        self.stats.connect_failures += 1
        if isinstance(exc, OSError) and exc.errno:
            reason = os.strerror(exc.errno).lower()
        else:
            reason = str(exc) or type(exc).__name__
        if isinstance(exc, TimeoutError):
            reason = "connection attempt timed out"
        if isinstance(exc, NotHttp2):  # it connected: the server is something else
            self.last_error = f"{self.address} {reason}"
        else:
            self.last_error = f"failed to connect to {self.address}: {reason}"
        delay = self._backoff.next_delay()
        loop = asyncio.get_running_loop()
        self.next_attempt_at = loop.time() + delay
        self._backoff_timer = loop.call_later(delay, self._backoff_done)
        self._set_state(ConnectivityState.TRANSIENT_FAILURE)

    def _backoff_done(self) -> None:
        self._backoff_timer = None
        self.next_attempt_at = None
        if self.state is ConnectivityState.TRANSIENT_FAILURE:
            self._set_state(ConnectivityState.IDLE)

    async def _watch_health(self, conn: ClientConnection, service: str) -> None:
        """Follow grpc.health.v1 Watch on ``conn``: SERVING -> READY, anything
        else -> TRANSIENT_FAILURE (the connection stays up; picks skip it)."""
        while conn is self.connection and conn.usable:
            try:
                request = encode_message(HealthCheckRequest(service=service).SerializeToString())
                stream = conn.open_stream(conn.request_headers(WATCH.encode(), [], None), request)
                try:
                    if not stream.local_ended:
                        await stream.send_data(request, end_stream=True)
                    while (message := await stream.recv_message()) is not None:
                        status = ServingStatus.of(HealthCheckResponse.FromString(message))
                        if conn is not self.connection:
                            return
                        self.health = status.name
                        if status is ServingStatus.SERVING:
                            self.last_error = ""
                            self._set_state(ConnectivityState.READY)
                        else:
                            self.last_error = f"{self.address} reports health {status.name}"
                            self._set_state(ConnectivityState.TRANSIENT_FAILURE)
                except StreamReset:
                    pass
                finally:
                    conn.forget(stream)
                error = stream_error(stream)
                if error is not None:
                    raise error
                reason = "the server ended the health watch"
            except RpcError as exc:
                if exc.code is StatusCode.UNIMPLEMENTED:
                    # No health service: healthy by definition (A17).
                    self.health = None
                    if conn is self.connection:
                        self._set_state(ConnectivityState.READY)
                    return
                reason = f"health watch failed: {exc}"
            if conn is not self.connection or not conn.usable:
                return
            self.health = "UNKNOWN"
            self.last_error = f"{self.address}: {reason}"
            self._set_state(ConnectivityState.TRANSIENT_FAILURE)
            await asyncio.sleep(self.options.health_retry_delay)

    def _on_connection_closed(self, conn: ClientConnection) -> None:
        """The connection died or got GOAWAY: in-flight calls finish there (GOAWAY)
        or have failed (loss); new calls need a new connection."""
        if conn is not self.connection:
            return
        self.connection = None
        self._stop_health_watch()
        if self.state is not ConnectivityState.SHUTDOWN:
            # READY, CONNECTING (health watch pending) or TRANSIENT_FAILURE (health NOT_SERVING).
            self._connection_lost(conn)

    def _connection_lost(self, conn: ClientConnection) -> None:
        """An established connection went away: IDLE, backoff reset only if it proved itself."""
        loop = asyncio.get_running_loop()
        proven = (
            self._completed_calls() != self._completed_at_connect
            or loop.time() - self._connected_at >= self._backoff.config.base_delay
        )
        if proven:
            self._backoff.reset()
            self.quick_losses = 0
            self.next_attempt_at = None
        else:
            self.quick_losses += 1
            self.next_attempt_at = loop.time() + self._backoff.next_delay()
        self.last_error = f"connection to {self.address} {_gone(conn)}"
        self._set_state(ConnectivityState.IDLE)

    @property
    def connected_at(self) -> float | None:
        """Loop time the current connection was established, or None while there is none."""
        return self._connected_at if self.connection is not None else None

    def _completed_calls(self) -> int:
        """Calls that ended here (a call the server never processed counts in neither); any
        change since the connection was made is proof, a reset of the counters included."""
        return self.stats.calls_succeeded + self.stats.calls_failed

    def _stop_health_watch(self) -> None:
        task, self._health_task = self._health_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def shutdown(self) -> None:
        """SHUTDOWN: stop reconnecting and close the connection (after its calls, if any)."""
        if self.state is ConnectivityState.SHUTDOWN:
            return
        if self._connect_task is not None:
            self._connect_task.cancel()
        if self._backoff_timer is not None:
            self._backoff_timer.cancel()
            self._backoff_timer = None
        if self._deferred is not None:
            self._deferred.cancel()
            self._deferred = None
        self.next_attempt_at = None
        self._stop_health_watch()
        conn, self.connection = self.connection, None
        self._set_state(ConnectivityState.SHUTDOWN)
        if conn is not None:
            conn.close_when_idle()


def _gone(conn: ClientConnection) -> str:
    """How an established connection went away: "got GOAWAY (max_age)", "got GOAWAY" or "lost"."""
    if not conn.goaway:
        return "lost"
    debug = conn.goaway_debug.decode("ascii", "replace")
    return f"got GOAWAY ({debug})" if debug.isprintable() and debug else "got GOAWAY"
