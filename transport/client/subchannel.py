"""A Subchannel: one long-lived HTTP/2 connection to one address."""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from transport.address import Address
from transport.client.backoff import BackoffConfig, ExponentialBackoff
from transport.client.connection import ClientConnection
from transport.connectivity import ConnectivityState
from transport.health.messages import ServingStatus, decode_response, encode_request
from transport.health.service import WATCH
from transport.http2 import DEFAULT_WINDOW_SIZE
from transport.status import RpcError, StatusCode
from transport.wire import DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH

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

    def reset(self) -> None:
        self.calls_started = self.calls_succeeded = self.calls_failed = 0
        self.connects = self.connect_failures = 0


class Subchannel:
    """Connects on request, reports gRPC connectivity states, backs off after failures.

    IDLE --request_connection--> CONNECTING --(server SETTINGS)--> READY
    CONNECTING --(refused/timeout)--> TRANSIENT_FAILURE --(backoff)--> IDLE
    READY --(connection lost or GOAWAY)--> IDLE
    any --shutdown--> SHUTDOWN
    The load-balancing policy decides when an IDLE subchannel connects again.
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
        #: Loop time of the next connection attempt while backing off, else None.
        self.next_attempt_at: float | None = None
        #: The last health status seen (e.g. "SERVING", "NOT_SERVING"), or None
        #: when not health checking.
        self.health: str | None = None
        self._health_task: asyncio.Task[None] | None = None
        self._backoff = ExponentialBackoff(self.options.backoff, rng)
        self._listeners: list[StateListener] = []
        self._connect_task: asyncio.Task[None] | None = None
        self._backoff_timer: asyncio.TimerHandle | None = None

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

    def request_connection(self) -> None:
        """Start connecting if IDLE; otherwise nothing (backoff is respected)."""
        if self.state is ConnectivityState.IDLE:
            self._set_state(ConnectivityState.CONNECTING)
            self._connect_task = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        timeout = self._backoff.connect_timeout()
        conn: ClientConnection | None = None
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    lambda: ClientConnection(
                        self.authority,
                        max_receive_message_length=self.options.max_receive_message_length,
                        window_size=self.options.window_size,
                        on_closed=self._on_connection_closed,
                    ),
                    self.address.host,
                    self.address.port,
                )
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
        if self.state is not ConnectivityState.CONNECTING or not conn.usable:
            conn.close()
            if self.state is ConnectivityState.CONNECTING:
                self._connect_failed(ConnectionError("connection closed during the handshake"))
            return
        self._backoff.reset()
        self.stats.connects += 1
        self.last_error = ""
        self.connection = conn
        if self.options.health_check_service is None:
            self._set_state(ConnectivityState.READY)
        else:  # stay CONNECTING until the server says SERVING
            self._health_task = loop.create_task(self._watch_health(conn, self.options.health_check_service))

    def _connect_failed(self, exc: BaseException) -> None:
        self.stats.connect_failures += 1
        if isinstance(exc, OSError) and exc.errno:
            reason = os.strerror(exc.errno).lower()
        else:
            reason = str(exc) or type(exc).__name__
        if isinstance(exc, TimeoutError):
            reason = "connection attempt timed out"
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
                stream = await conn.unary_stream(WATCH.encode(), encode_request(service), [], None)
                async for message in stream:
                    status = decode_response(message)
                    if conn is not self.connection:
                        return
                    self.health = status.name
                    if status is ServingStatus.SERVING:
                        self.last_error = ""
                        self._set_state(ConnectivityState.READY)
                    else:
                        self.last_error = f"{self.address} reports health {status.name}"
                        self._set_state(ConnectivityState.TRANSIENT_FAILURE)
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
        if self.state is ConnectivityState.READY or (
            self.state is ConnectivityState.TRANSIENT_FAILURE and self.next_attempt_at is None
        ):
            self.last_error = f"connection to {self.address} {'got GOAWAY' if conn.goaway else 'lost'}"
            self._set_state(ConnectivityState.IDLE)

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
        self.next_attempt_at = None
        self._stop_health_watch()
        conn, self.connection = self.connection, None
        self._set_state(ConnectivityState.SHUTDOWN)
        if conn is not None:
            conn.close_when_idle()
