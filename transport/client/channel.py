"""The Channel: resolver + load-balancing policy + subchannels, and the call path.

``Channel.dial(target, policy)`` is the scene's entry point. Per call the
channel runs the interceptor chain, asks the policy's current picker for a
subchannel and opens one HTTP/2 stream on that subchannel's connection.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar

from transport.address import Address
from transport.balancer import FailPicker, LoadBalancer, Picker, PickInfo, PickResult, QueuePicker, get_policy
from transport.client.backoff import BackoffConfig, ExponentialBackoff
from transport.client.connection import ClientConnection
from transport.client.interceptors import CallDetails, ClientInterceptor, chain
from transport.client.multicallable import (
    StreamStreamMultiCallable,
    StreamUnaryMultiCallable,
    UnaryStreamMultiCallable,
    UnaryUnaryMultiCallable,
)
from transport.client.resolver import parse_target
from transport.client.subchannel import Subchannel, SubchannelOptions
from transport.connectivity import ConnectivityState
from transport.http2 import DEFAULT_WINDOW_SIZE
from transport.status import RpcError, StatusCode
from transport.wire import DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH

#: One attempt's pick: the subchannel, its connection, and the pick's ``done`` (None: nothing to tell).
Picked = tuple[Subchannel, ClientConnection, Callable[[StatusCode], None] | None]

log = logging.getLogger(__name__)

Request = TypeVar("Request")
Response = TypeVar("Response")

#: DNS is re-resolved on connection loss at most this often (gRPC's 30 s:
#: grpc-core ``GRPC_ARG_DNS_MIN_TIME_BETWEEN_RESOLUTIONS_MS``).
MIN_RERESOLUTION_INTERVAL = 30.0


@dataclass(frozen=True, slots=True)
class ChannelOptions:
    backoff: BackoffConfig = field(default_factory=BackoffConfig)
    max_receive_message_length: int = DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH
    window_size: int = DEFAULT_WINDOW_SIZE
    #: Seeds backoff jitter and the round_robin start index; None = random.
    seed: int | None = None
    #: Client-side health checking (gRPC A17): the service name to Watch on each
    #: subchannel ("" = the whole server), for policies that use it; None = off.
    health_check_service: str | None = None
    #: Seconds between re-resolutions at least; a request inside the interval waits for its end.
    min_reresolution_interval: float = MIN_RERESOLUTION_INTERVAL
    #: The policy's settings (grpc's ``loadBalancingConfig`` entry for it), e.g.
    #: ``{"choice_count": 3}`` for least_request; None = its defaults. A bad one is a ValueError.
    lb_config: Mapping[str, object] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        if not self.min_reresolution_interval >= 0:
            raise ValueError(f"min_reresolution_interval must be >= 0, not {self.min_reresolution_interval}")


@dataclass(slots=True)
class ChannelStats:
    """Counters a UI can sample: every call ends as exactly one success or one failure."""

    calls_started: int = 0
    calls_succeeded: int = 0
    calls_failed: int = 0
    calls_in_flight: int = 0
    calls_by_status: list[int] = field(default_factory=lambda: [0] * len(StatusCode))
    #: Resolutions that produced addresses (the first one included), and those that failed.
    resolutions: int = 0
    resolution_failures: int = 0

    def status_counts(self) -> dict[str, int]:
        return {StatusCode(i).name: n for i, n in enumerate(self.calls_by_status) if n}

    def failures(self) -> dict[str, int]:
        return {name: n for name, n in self.status_counts().items() if name != "OK"}

    def reset(self) -> None:
        """Zero the totals; calls in flight stay counted as in flight (and will
        count once they end), so fired = ok + failed + in_flight holds."""
        self.calls_started = self.calls_in_flight
        self.calls_succeeded = self.calls_failed = 0
        self.calls_by_status = [0] * len(StatusCode)
        self.resolutions = self.resolution_failures = 0


ChannelListener = Callable[["Channel", str, Any], None]


class Channel:
    """A virtual connection to a target, balanced over subchannels by a policy."""

    def __init__(
        self,
        target: str,
        policy: str = "pick_first",
        *,
        options: ChannelOptions | None = None,
        interceptors: Sequence[ClientInterceptor] = (),
    ) -> None:
        self.target = target
        self.policy_name = policy
        self.options = options or ChannelOptions()
        self._resolver = parse_target(target)  # ValueError for a bad target
        policy_cls = get_policy(policy)  # ValueError for an unknown policy
        self.rng = random.Random(self.options.seed)
        self._subchannel_options = SubchannelOptions(
            backoff=self.options.backoff,
            max_receive_message_length=self.options.max_receive_message_length,
            window_size=self.options.window_size,
            health_check_service=self.options.health_check_service if policy_cls.health_checking else None,
        )
        self.loop = asyncio.get_running_loop()
        self.state = ConnectivityState.IDLE
        self.stats = ChannelStats()
        #: Every live subchannel, in creation order (for the UI).
        self.subchannels: list[Subchannel] = []
        self.addresses: list[Address] = []
        self.resolution_error = ""
        self._picker: Picker = QueuePicker()
        self._picker_changed: asyncio.Future[None] = self.loop.create_future()
        self._listeners: list[ChannelListener] = []
        self._closed = False
        self._idle: asyncio.Event = asyncio.Event()
        self._idle.set()
        self._last_resolution = -self.options.min_reresolution_interval
        self._resolving: asyncio.Task[None] | None = None
        #: A re-resolution requested inside the interval, due at its end.
        self._reresolution_timer: asyncio.TimerHandle | None = None
        #: Paces retries after a failed resolution (its own generator: seeded balancing stays put).
        self._resolution_backoff = ExponentialBackoff(self.options.backoff, random.Random(self.options.seed))
        #: The interceptors as one callable (None: none, the common case).
        self.interceptor_chain = chain(interceptors)
        config = self.options.lb_config
        self._lb = policy_cls(self) if config is None else policy_cls.from_config(self, config)
        self._resolve()

    @property
    def balancer(self) -> LoadBalancer:
        """The policy instance, for a UI to read what it keeps (e.g. least_request's ``outstanding``)."""
        return self._lb

    @classmethod
    def dial(
        cls,
        target: str,
        policy: str = "pick_first",
        *,
        options: ChannelOptions | None = None,
        interceptors: Sequence[ClientInterceptor] = (),
    ) -> Channel:
        """The scene's ``Channel.dial``: resolve ``target`` and connect as ``policy`` says."""
        return cls(target, policy, options=options, interceptors=interceptors)

    # --- resolution -------------------------------------------------------

    def _resolve(self) -> None:
        self._last_resolution = self.loop.time()
        self._resolving = self.loop.create_task(self._run_resolver())

    async def _run_resolver(self) -> None:
        """Resolve once and hand the addresses to the policy. A failure keeps the addresses we
        had (if any) and retries after the connection backoff, whatever the minimum interval
        (grpc-core ``PollingResolver``: ``backoff_.NextAttemptTime()``). An empty list goes to
        the policy (its subchannels are shut down) and is retried likewise: the policy rejects
        it (grpc-go ``ErrBadResolverState``). Any other answer resets the backoff."""
        try:
            addresses = await self._resolver.resolve()
        except OSError as exc:
            self._resolving = None
            if self._closed:
                return
            self.resolution_error = str(exc)
            self.stats.resolution_failures += 1
            self._emit("resolution_failed", self.resolution_error)
            if not self.addresses:
                self.update_state(ConnectivityState.TRANSIENT_FAILURE, FailPicker(self.resolution_error))
            self._retry_resolution()
            return
        finally:
            self._resolving = None
        if self._closed:
            return
        self.resolution_error = ""
        self.addresses = addresses
        self.stats.resolutions += 1
        self._emit("resolved", list(addresses))
        self._lb.update_addresses(addresses)
        if addresses:
            self._resolution_backoff.reset()
        else:
            self._retry_resolution()

    def _retry_resolution(self) -> None:
        """Resolve again after the next backoff delay; requests meanwhile wait for that."""
        if self._resolver.can_reresolve and not self._closed and self._reresolution_timer is None:
            delay = self._resolution_backoff.next_delay()
            self._reresolution_timer = self.loop.call_later(delay, self._deferred_reresolution)

    # --- the Helper interface the policy uses -------------------------------

    def create_subchannel(self, address: Address) -> Subchannel:
        sc = Subchannel(address, self._resolver.authority, self._subchannel_options, self.rng)
        sc.add_listener(self._on_subchannel_state)
        self.subchannels.append(sc)
        self._emit("subchannel_created", sc)
        return sc

    def update_state(self, state: ConnectivityState, picker: Picker) -> None:
        self._picker = picker
        if state is not self.state:
            self.state = state
            self._emit("state", state)
        changed, self._picker_changed = self._picker_changed, self.loop.create_future()
        changed.set_result(None)

    def request_reresolution(self) -> None:
        """Resolve again now, or at the end of the minimum interval if the last resolution
        started inside it: a request is deferred, not dropped, and requests meanwhile coalesce
        into that one (grpc-core ``PollingResolver::MaybeStartResolvingLocked``). A request
        while a resolution runs is answered by it."""
        if (
            not self._resolver.can_reresolve
            or self._closed
            or self._resolving is not None
            or self._reresolution_timer is not None
        ):
            return
        wait = self._last_resolution + self.options.min_reresolution_interval - self.loop.time()
        if wait > 0:
            self._reresolution_timer = self.loop.call_later(wait, self._deferred_reresolution)
        else:
            self._resolve()

    def _deferred_reresolution(self) -> None:
        self._reresolution_timer = None
        if not self._closed and self._resolving is None:
            self._resolve()

    def _on_subchannel_state(self, sc: Subchannel, old: ConnectivityState, new: ConnectivityState) -> None:
        if new is ConnectivityState.SHUTDOWN and sc in self.subchannels:
            self.subchannels.remove(sc)
        self._emit("subchannel_state", (sc, old, new))
        if not self._closed:
            self._lb.subchannel_state_changed(sc, old, new)

    # --- events -----------------------------------------------------------

    def add_listener(self, listener: ChannelListener) -> None:
        """``listener(channel, kind, data)`` for "state", "subchannel_created", "subchannel_state",
        "resolved" (the addresses) and "resolution_failed" (the error's sentence)."""
        self._listeners.append(listener)

    def _emit(self, kind: str, data: Any) -> None:
        for listener in list(self._listeners):
            try:
                listener(self, kind, data)
            except Exception:
                log.exception("channel listener failed")

    # --- calls ------------------------------------------------------------

    def unary_unary(
        self,
        method: str,
        request_serializer: Callable[[Request], bytes] | None = None,
        response_deserializer: Callable[[bytes], Response] | None = None,
    ) -> UnaryUnaryMultiCallable[Request, Response]:
        """A callable for ``method`` (grpc.aio's shape): ``await mc(request, timeout=...)``."""
        return UnaryUnaryMultiCallable(self, method, request_serializer, response_deserializer)

    def unary_stream(
        self,
        method: str,
        request_serializer: Callable[[Request], bytes] | None = None,
        response_deserializer: Callable[[bytes], Response] | None = None,
    ) -> UnaryStreamMultiCallable[Request, Response]:
        """A callable for a server-streaming ``method``: ``async for r in mc(request)``."""
        return UnaryStreamMultiCallable(self, method, request_serializer, response_deserializer)

    def stream_unary(
        self,
        method: str,
        request_serializer: Callable[[Request], bytes] | None = None,
        response_deserializer: Callable[[bytes], Response] | None = None,
    ) -> StreamUnaryMultiCallable[Request, Response]:
        """A callable for a client-streaming ``method``: write requests, then ``await`` the response."""
        return StreamUnaryMultiCallable(self, method, request_serializer, response_deserializer)

    def stream_stream(
        self,
        method: str,
        request_serializer: Callable[[Request], bytes] | None = None,
        response_deserializer: Callable[[bytes], Response] | None = None,
    ) -> StreamStreamMultiCallable[Request, Response]:
        """A callable for a bidirectional ``method``: write and read in any order."""
        return StreamStreamMultiCallable(self, method, request_serializer, response_deserializer)

    def call_started(self) -> None:
        self.stats.calls_started += 1
        self.stats.calls_in_flight += 1
        self._idle.clear()

    def call_ended(self, code: StatusCode) -> None:
        """A call's one status (every call ends as exactly one success or one failure)."""
        stats = self.stats
        stats.calls_in_flight -= 1
        stats.calls_by_status[code] += 1
        if code is StatusCode.OK:
            stats.calls_succeeded += 1
        else:
            stats.calls_failed += 1
        if not stats.calls_in_flight:
            self._idle.set()

    def pick(self, details: CallDetails, deadline: float | None) -> Picked | Coroutine[Any, Any, Picked]:
        """The subchannel (and its connection) for one attempt of a call, and the pick's ``done``; or, when
        the pick cannot take the call now, a coroutine to ``await`` for it (the hot path makes none).

        That waits for a new picker while the policy queues calls (or, with
        ``wait_for_ready``, while it fails them), bounded by ``deadline``.
        """
        if self._closed:
            raise RpcError(StatusCode.UNAVAILABLE, "channel is closed")
        info = PickInfo(details.method, details.metadata) if details.metadata else _pick_info(details.method)
        try:
            picked = self._picker.pick(info)
        except RpcError:
            if not details.wait_for_ready:
                raise
            picked = None
        if picked is not None:
            sc = picked.subchannel
            if isinstance(sc, Subchannel) and (conn := sc.connection) is not None and conn.usable:
                return sc, conn, picked.done
        return self._pick_later(info, picked, deadline, details.wait_for_ready)

    async def _pick_later(
        self, info: PickInfo, unusable: PickResult | None, deadline: float | None, wait_for_ready: bool
    ) -> Picked:
        picked, sc, conn = await self._wait_for_pick(info, unusable, deadline, wait_for_ready)
        return sc, conn, picked.done

    async def _wait_for_pick(
        self, info: PickInfo, unusable: PickResult | None, deadline: float | None, wait_for_ready: bool
    ) -> tuple[PickResult, Subchannel, ClientConnection]:
        """Pick again, and after every new picker, until a pick can take the call now. A pick
        that cannot (its connection just went away) ends at once: its ``done`` gets UNAVAILABLE."""
        if unusable is not None and unusable.done is not None:
            _end_pick(unusable.done, StatusCode.UNAVAILABLE)
        while True:
            try:
                picked = self._picker.pick(info)
            except RpcError:
                if not wait_for_ready:
                    raise
                picked = None
            if picked is not None:
                sc = picked.subchannel
                if not isinstance(sc, Subchannel):
                    error = RpcError(
                        StatusCode.INTERNAL, f"the {self.policy_name} picker returned {sc!r}, not a subchannel"
                    )
                    if picked.done is not None:
                        _end_pick(picked.done, error)
                    raise error
                if (conn := sc.connection) is not None and conn.usable:
                    return picked, sc, conn
                if picked.done is not None:
                    _end_pick(picked.done, StatusCode.UNAVAILABLE)
            if self._closed:
                raise RpcError(StatusCode.UNAVAILABLE, "channel is closed")
            timeout = None if deadline is None else deadline - self.loop.time()
            if timeout is not None and timeout <= 0:
                raise RpcError(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded while waiting for a connection")
            changed = self._picker_changed
            if picked is not None:
                # The picker chose a subchannel whose connection just went away;
                # its state change (and a new picker) is on the way.
                await asyncio.sleep(0)
                if changed is not self._picker_changed:
                    continue
            try:
                await asyncio.wait_for(asyncio.shield(changed), timeout)
            except TimeoutError:
                raise RpcError(
                    StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded while waiting for a connection"
                ) from None

    # --- lifecycle --------------------------------------------------------

    async def wait_for_state(self, state: ConnectivityState, timeout: float | None = None) -> None:
        """Wait until the channel is in ``state`` (e.g. READY)."""
        async with asyncio.timeout(timeout):
            while self.state is not state:
                await asyncio.shield(self._picker_changed)

    def connect(self) -> None:
        """Ask an IDLE policy to connect now, without a call (grpc-go ``ClientConn.Connect``;
        grpcio's ``channel_ready_future`` does the same): after a lost connection pick_first
        waits for the next call otherwise (gRFC A62)."""
        if not self._closed:
            self._lb.exit_idle()

    @property
    def closed(self) -> bool:
        return self._closed

    async def close(self, grace: float | None = None) -> None:
        """Refuse new calls; let running ones finish for up to ``grace`` seconds
        (forever if None); then shut every subchannel down."""
        if self._closed:
            return
        self._closed = True
        if self._resolving is not None:
            self._resolving.cancel()
        if self._reresolution_timer is not None:
            self._reresolution_timer.cancel()
            self._reresolution_timer = None
        if self.stats.calls_in_flight:
            try:
                await asyncio.wait_for(self._idle.wait(), grace)
            except TimeoutError:
                pass
        self._lb.shutdown()
        self.update_state(ConnectivityState.SHUTDOWN, FailPicker("channel is closed"))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close(grace=0)


@functools.lru_cache(maxsize=256)
def _pick_info(method: str) -> PickInfo:
    """The PickInfo of every call of ``method`` without metadata: frozen, so shared (building one
    costs ~0.9 µs per call, a cache hit ~0.1 µs)."""
    return PickInfo(method, ())


def _end_pick(done: Callable[[StatusCode], None], outcome: StatusCode | BaseException) -> None:
    """Run a pick's ``done`` with the status its attempt ended with; a failing callback is
    logged and never changes the call's outcome."""
    if isinstance(outcome, BaseException):
        if isinstance(outcome, RpcError):
            outcome = outcome.code
        else:
            outcome = StatusCode.CANCELLED if isinstance(outcome, asyncio.CancelledError) else StatusCode.UNKNOWN
    try:
        done(outcome)
    except Exception:
        log.exception("a pick's done callback failed")
