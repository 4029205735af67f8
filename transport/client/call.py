"""Client calls of the four cardinalities, shaped like grpc.aio's call objects.

Each call is one RPC: the interceptors run once, then an *attempt* picks a
subchannel (through the channel's picker) and opens one stream on its
connection. An attempt the server never processed (REFUSED_STREAM, above a
GOAWAY's last stream id, a connection that closed first) is retried once,
transparently, on a fresh pick — as long as nothing the call sent or received
would be lost by it. Whatever happens, a call ends exactly once with one status,
counted once by the channel, the subchannel and the pick's ``done`` callback.

A unary call runs inside the ``await`` that asks for its result: no Task, no
extra loop turn (the unary hot path). Asking for metadata first, or streaming,
starts what is needed when it is needed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Coroutine, Generator, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from h2.errors import ErrorCodes

from transport.client.connection import ClientConnection, StreamNotProcessed
from transport.client.interceptors import CallDetails
from transport.client.orca import note_load_report
from transport.client.outcome import stream_error
from transport.eof import EOF, _End
from transport.http2.stream import Stream, StreamReset
from transport.metadata import Metadata, decode_metadata, encode_metadata, metadata_value
from transport.status import RpcError, StatusCode
from transport.wire import framed

if TYPE_CHECKING:
    from transport.address import Address
    from transport.client.channel import Channel, Picked
    from transport.client.subchannel import Subchannel, SubchannelStats

log = logging.getLogger(__name__)

Request = TypeVar("Request")
Response = TypeVar("Response")

DoneCallback = Callable[["Call"], None]


class Call:
    """What every call has: status, metadata, cancellation, and the attempt machinery."""

    __slots__ = (
        "_callbacks",
        "_channel",
        "_conn",
        "_deadline",
        "_error",
        "_finish_waiters",
        "_finished",
        "_judging",
        "_opening",
        "_pick_done",
        "_request_data",
        "_request_head",
        "_retried",
        "_sent_or_received",
        "_started",
        "_stream",
        "_subchannel",
        "_task",
        "_timer",
        "call_details",
    )

    def __init__(self, channel: Channel, details: CallDetails) -> None:
        self._channel = channel
        #: Method, timeout, metadata...: what the interceptors see and may change.
        self.call_details = details
        self._deadline: float | None = None
        self._stream: Stream | None = None
        self._conn: ClientConnection | None = None
        self._subchannel: Subchannel | None = None
        self._pick_done: Callable[[StatusCode], None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._error: RpcError | None = None
        self._finished = False
        #: Futures of those waiting for the status while someone else works it out.
        self._finish_waiters: list[asyncio.Future[None]] | None = None
        #: Someone is waiting for the stream's end to decide the status (and maybe retry).
        self._judging = False
        self._started = False
        self._retried = False
        #: The attempt has sent a message the caller gave, or received one: a retry would lose it.
        self._sent_or_received = False
        #: A unary request as sent: ``_request_head`` (a large message's prefix, else empty), then ``_request_data``.
        self._request_data: bytes | None = None
        self._request_head = b""
        self._callbacks: list[DoneCallback] | None = None
        #: The stream being opened in the background (when metadata is asked for first).
        self._opening: asyncio.Task[Stream] | None = None
        #: A Task driving a unary-response call whose status was asked for before its result.
        self._task: asyncio.Task[Any] | None = None
        channel.call_started()

    # --- what grpc.aio's calls offer ------------------------------------------

    @property
    def address(self) -> Address | None:
        """The subchannel address the call rode (a proxy's, behind an L4 balancer)."""
        return self._subchannel.address if self._subchannel is not None else None

    def done(self) -> bool:
        return self._finished

    def cancelled(self) -> bool:
        return self._error is not None and self._error.code is StatusCode.CANCELLED

    def cancel(self) -> bool:
        """Cancel the call (RST_STREAM CANCEL); False if it had already ended."""
        if self._finished:
            return False
        error = RpcError(StatusCode.CANCELLED, "cancelled by the client")
        stream = self._stream
        if stream is not None:
            stream.reset(ErrorCodes.CANCEL, error)
        for task in (self._task, self._opening):
            if task is not None:
                task.cancel()
        self._finish(error)
        return True

    def add_done_callback(self, callback: DoneCallback) -> None:
        """Run ``callback(call)`` once the call has its status (at once if it has)."""
        if self._finished:
            callback(self)
        elif self._callbacks is None:
            self._callbacks = [callback]
        else:
            self._callbacks.append(callback)

    async def wait_for_connection(self) -> None:
        """Wait until the call's stream is open and its headers are sent (grpc.aio's name); RpcError if it failed first."""
        if self._finished and self._error is not None:
            raise self._error
        await self._stream_ready()

    async def initial_metadata(self) -> Metadata:
        """The response headers' metadata (empty if the call failed before any)."""
        if not self._finished:
            try:
                stream = await self._stream_ready()
            except RpcError:
                return ()
            while stream.headers is None and not stream.closed and not self._finished:
                await stream.wait_for_data()
        last = self._stream
        return decode_metadata(last.headers) if last is not None and last.headers else ()

    async def trailing_metadata(self) -> Metadata:
        await self._wait_finished()
        if self._error is not None:
            return self._error.trailing_metadata
        stream = self._stream
        return decode_metadata(stream.trailers) if stream is not None and stream.trailers else ()

    async def code(self) -> StatusCode:
        await self._wait_finished()
        return self._error.code if self._error is not None else StatusCode.OK

    async def details(self) -> str:
        await self._wait_finished()
        return self._error.details if self._error is not None else ""

    def sent_response_headers(self) -> bool:
        """The server sent response headers apart from its status (not Trailers-Only, not reset first).

        A proxy needs it to answer the same way: headers now, or one header block at the end.
        """
        stream = self._stream
        return (
            stream is not None and stream.headers is not None and not (stream.trailers is None and stream.remote_ended)
        )

    def metadata_value(self, key: str) -> str | bytes | None:
        """A value from the response headers, else the trailers, of a call that has them."""
        stream = self._stream
        if stream is None:
            return None
        for block in (stream.headers, stream.trailers):
            if block:
                value = metadata_value(decode_metadata(block), key)
                if value is not None:
                    return value
        return None

    # --- the stream -------------------------------------------------------

    def _opened_stream(self) -> Stream | None:
        """The call's stream if its opening is done (no wait), else None: then :meth:`_stream_ready`."""
        return self._stream if self._started and self._opening is None else None

    async def _stream_ready(self) -> Stream:
        """The call's stream: opened now if nothing started it, else when its opening is done."""
        stream = self._opened_stream()
        if stream is not None:
            return stream
        if not self._started:
            self._opening = asyncio.get_running_loop().create_task(self._start_stream())
            self._opening.add_done_callback(_retrieve)
            self._started = True
        opening = self._opening
        if opening is not None:
            if not opening.done():
                await asyncio.wait([opening])
            if opening.cancelled():
                raise self._error or RpcError(StatusCode.CANCELLED, "cancelled by the client")
            exc = opening.exception()
            if exc is not None:
                raise self._error or (exc if isinstance(exc, RpcError) else self._fail(exc))
            if self._opening is opening:
                self._opening = None  # opened: later reads and writes take the stream at once
        if self._stream is None:
            raise self._error or RpcError(StatusCode.INTERNAL, "the call has no stream")
        return self._stream

    async def _start_stream(self) -> Stream:
        """Open the first attempt's stream and send what the call already knows (a unary request)."""
        self._started = True
        try:
            request = self._request_bytes()
            if request is not None:
                self._request_head, self._request_data = framed(request)
            # (what _open does without interceptors, without its coroutine)
            waiting = self._attempt_now(self.call_details) if self._channel.interceptor_chain is None else self._open()
        except Exception as exc:  # noqa: BLE001 - every failure becomes the call's one status
            raise self._fail(exc) from None
        return await self._finish_opening(waiting)

    async def _finish_opening(self, waiting: Coroutine[Any, Any, Any] | None) -> Stream:
        """The rest of opening the first attempt: wait for it (``waiting``), then send what its stream did not."""
        try:
            if waiting is not None:
                await waiting
            stream = self._stream
            assert stream is not None
            if not stream.local_ended:
                await self._send_request(stream)
        except asyncio.CancelledError:
            self._fail(asyncio.CancelledError())
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes the call's one status
            raise self._fail(exc) from None
        return stream

    def _request_bytes(self) -> bytes | None:
        """The serialized request of a unary-request call (None for streaming requests)."""
        return None

    async def _send_request(self, stream: Stream) -> None:
        """Send the rest of a unary request the fast path could not (a large message)."""
        if self._request_data is not None and not stream.local_ended:
            try:
                await stream.send_data(self._request_data, end_stream=True, head=self._request_head)
            except StreamReset:
                pass  # the server answered (or reset) before taking it all: the outcome says which

    async def _open(self) -> Stream:
        """Run the interceptors (once) and open the first attempt's stream."""
        interceptors = self._channel.interceptor_chain
        if interceptors is not None:
            await interceptors(self.call_details, self, self._attempt)
            if self._stream is None:
                raise RpcError(StatusCode.INTERNAL, "an interceptor returned without invoking the call")
        else:
            await self._attempt(self.call_details)
        assert self._stream is not None
        return self._stream

    async def _attempt(self, details: CallDetails) -> None:
        """Pick a subchannel and open a stream on it (sending the whole request when it is known)."""
        waiting = self._attempt_now(details)
        if waiting is not None:
            await waiting

    def _attempt_now(self, details: CallDetails) -> Coroutine[Any, Any, None] | None:
        """:meth:`_attempt` in this step when the pick takes the call and its connection has a stream slot:
        None once the stream is open; else a coroutine to await for the rest (the hot path makes none)."""
        channel = self._channel
        if self._finished:
            raise self._error or RpcError(StatusCode.CANCELLED, "cancelled by the client")
        if self._deadline is None and details.timeout is not None:
            loop = channel.loop
            self._deadline = loop.time() + details.timeout
            self._timer = loop.call_at(self._deadline, self._on_deadline)
        try:
            metadata = encode_metadata(details.metadata) if details.metadata else []
        except ValueError as exc:
            raise RpcError(StatusCode.INTERNAL, str(exc)) from exc
        picked: Picked | Coroutine[Any, Any, Picked] | None = channel.pick(details, self._deadline)
        if isinstance(picked, tuple) and picked[1].has_stream_slot:
            if self._open_on(picked, details, metadata, counted=False):
                return None
            picked = None  # that connection is going away: pick again
        return self._attempt_later(details, metadata, picked)

    async def _attempt_later(
        self, details: CallDetails, metadata: list[tuple[bytes, bytes]], picked: Picked | Awaitable[Picked] | None
    ) -> None:
        """The rest of an attempt: wait for the pick (``picked``; None: pick again) and a stream slot, then open."""
        while True:
            if picked is None:
                picked = self._channel.pick(details, self._deadline)
            if not isinstance(picked, tuple):
                picked = await picked
            subchannel, conn, done = picked
            stats = subchannel.stats
            stats.calls_started += 1
            stats.calls_in_flight += 1
            if not conn.has_stream_slot:
                try:
                    await conn.wait_stream_slot(self._deadline)
                except BaseException as exc:
                    _attempt_failed(stats, done, exc)
                    raise
            if self._open_on(picked, details, metadata, counted=True):
                return
            picked = None  # that connection is going away: pick again

    def _open_on(
        self, picked: Picked, details: CallDetails, metadata: list[tuple[bytes, bytes]], *, counted: bool
    ) -> bool:
        """Open the attempt's stream on the picked connection (``counted``: its subchannel already counts the
        call); False when that connection takes no new stream, the pick then ended as UNAVAILABLE."""
        subchannel, conn, done = picked
        stats = subchannel.stats
        if not counted:
            stats.calls_started += 1
            stats.calls_in_flight += 1
        try:
            headers = conn.request_headers(details.method.encode(), metadata, self._deadline)
            stream = conn.open_stream(headers, None if self._request_head else self._request_data)
        except StreamNotProcessed:
            stats.calls_started -= 1  # the server never saw it
            stats.calls_in_flight -= 1
            if done is not None:
                _run_done(done, StatusCode.UNAVAILABLE)
            return False
        except BaseException as exc:
            _attempt_failed(stats, done, exc)
            raise
        self._stream, self._conn, self._subchannel, self._pick_done = stream, conn, subchannel, done
        return True

    async def _retry(self) -> Stream | None:
        """Attempt again (transparent retry: once, and only if nothing would be lost); the new stream."""
        if self._retried or self._sent_or_received or self._finished:
            return None
        self._retried = True
        self._release(StatusCode.UNAVAILABLE, counted=False)
        await self._attempt(self.call_details)
        stream = self._stream
        assert stream is not None
        await self._send_request(stream)
        return stream

    async def _outcome(self, stream: Stream, *, follow: bool = True) -> tuple[Stream, RpcError | None]:
        """Wait for ``stream`` to end; its status, after a transparent retry when one applies.

        With ``follow=False`` (a reader of streamed responses) a retry returns its new stream at once,
        with no status yet: the reader reads it (waiting for its end could deadlock on flow control,
        which the reader's taking opens). One caller decides (and retries); a second one meanwhile
        waits for the call's status.
        """
        if self._judging:
            await self._until_finished()
            assert self._stream is not None
            return self._stream, self._error
        self._judging = True
        try:
            while True:
                while not (stream.remote_ended or stream.error is not None):  # (wait_closed, without its coroutine)
                    await stream.arrival()
                error = stream_error(stream)
                if isinstance(error, StreamNotProcessed):
                    retried = await self._retry()
                    if retried is not None:
                        if not follow:
                            return retried, None
                        stream = retried
                        continue
                return stream, error
        finally:
            self._judging = False

    async def _until_finished(self) -> None:
        if not self._finished:
            waiter = self._channel.loop.create_future()
            if self._finish_waiters is None:
                self._finish_waiters = [waiter]
            else:
                self._finish_waiters.append(waiter)
            await waiter

    def _on_deadline(self) -> None:
        self._timer = None
        if self._finished:
            return
        error = RpcError(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        stream = self._stream
        if stream is not None:
            stream.reset(ErrorCodes.CANCEL, error)
        for task in (self._task, self._opening):
            if task is not None and not task.done():
                task.cancel()
        self._finish(error)

    def _release(self, code: StatusCode, *, counted: bool = True) -> None:
        """This attempt is over: free its stream, count it, tell the picker."""
        conn, subchannel = self._conn, self._subchannel
        if conn is None or subchannel is None or self._stream is None:
            return
        self._conn = None
        stream = self._stream
        conn.forget(stream)  # the call keeps the stream for its metadata
        stats = subchannel.stats
        stats.calls_in_flight -= 1
        # gRFC A51: the server's load report, if its trailers (or Trailers-Only headers) hold more than the status
        block = stream.trailers if stream.trailers is not None else stream.headers
        if block is not None and len(block) > 1:
            note_load_report(subchannel, block, self._channel.loop)
        if not counted:
            stats.calls_started -= 1  # the server never saw it
        elif code is StatusCode.OK:
            stats.calls_succeeded += 1
        else:
            stats.calls_failed += 1
        done, self._pick_done = self._pick_done, None
        if done is not None:
            _run_done(done, code)

    def _finish(self, error: RpcError | None) -> None:
        """The call's one status: counted once, callbacks run once."""
        if self._finished:
            return
        self._finished = True
        self._error = error
        code = error.code if error is not None else StatusCode.OK
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._release(code)
        self._channel.call_ended(code)
        waiters, self._finish_waiters = self._finish_waiters, None
        if waiters:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
        callbacks, self._callbacks = self._callbacks, None
        if callbacks:
            for callback in callbacks:
                callback(self)

    def _fail(self, exc: BaseException) -> RpcError:
        """End the call with what interrupted it; the error its caller should see."""
        if isinstance(exc, RpcError):
            error = exc
        elif isinstance(exc, asyncio.CancelledError):
            error = RpcError(StatusCode.CANCELLED, "cancelled by the client")
            stream = self._stream
            if stream is not None and not stream.closed:
                stream.reset(ErrorCodes.CANCEL, error)
        else:
            error = RpcError(StatusCode.UNKNOWN, f"call failed on the client: {type(exc).__name__}: {exc}")
        self._finish(error)
        return self._error or error

    async def _wait_finished(self) -> None:
        """Wait for the call's status (driving a unary-response call if nothing else does)."""
        if self._finished:
            return
        try:
            stream = await self._stream_ready()
            _, error = await self._outcome(stream)
        except RpcError:
            return
        self._finish(error)


def _attempt_failed(stats: SubchannelStats, done: Callable[[StatusCode], None] | None, exc: BaseException) -> None:
    """An attempt failed before its stream opened: counted as failed, and its pick told."""
    stats.calls_in_flight -= 1
    stats.calls_failed += 1
    if done is not None:
        _run_done(done, exc.code if isinstance(exc, RpcError) else StatusCode.CANCELLED)


def _run_done(done: Callable[[StatusCode], None], code: StatusCode) -> None:
    """Tell the picker how its pick ended; a failing callback is logged and changes nothing."""
    try:
        done(code)
    except Exception:
        log.exception("a pick's done callback failed")


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


def _serialize(details: CallDetails, request: Any) -> bytes:
    """A request message as bytes (INTERNAL, with the reason, if the serializer fails)."""
    try:
        return bytes(details.request_serializer(request))
    except Exception as exc:
        raise RpcError(StatusCode.INTERNAL, f"could not serialize the request: {exc}") from exc


def _one_message(stream: Stream) -> bytes:
    message = stream.take_only_message()
    if message is None:
        if stream.queued != 1:
            raise RpcError(StatusCode.INTERNAL, f"unary call got {stream.queued} response messages, expected 1")
        message = stream.take_message()  # (the stream was reset after its one message: it is still the answer)
        assert message is not None
    return message


# --- unary response ---------------------------------------------------------------


class UnaryUnaryCall(Call, Generic[Response]):
    """``await call`` gives the response (or raises RpcError)."""

    __slots__ = ("_request", "_response")

    def __init__(self, channel: Channel, details: CallDetails, request: Any) -> None:
        super().__init__(channel, details)
        self._request = request
        self._response: Any = _NO_RESPONSE

    def __await__(self) -> Generator[Any, None, Response]:
        return self._result().__await__()

    def _request_bytes(self) -> bytes | None:
        return _serialize(self.call_details, self._request)

    def _start_now(self) -> Stream | Coroutine[Any, Any, Stream]:
        """The hot path: the stream opened and the whole request sent in this step when nothing must be
        waited for (no interceptors, a pick that takes the call, a stream slot, a request that fits the
        windows); else a coroutine to await for the rest."""
        if self._channel.interceptor_chain is not None:
            return self._start_stream()
        self._started = True
        try:
            self._request_head, self._request_data = framed(_serialize(self.call_details, self._request))
            waiting = self._attempt_now(self.call_details)
        except Exception as exc:  # noqa: BLE001 - every failure becomes the call's one status
            raise self._fail(exc) from None
        stream = self._stream
        if waiting is None and stream is not None and stream.local_ended:
            return stream
        return self._finish_opening(waiting)

    async def _result(self) -> Response:
        response: Response = self._response  # (no cast(): it is a call, on every call)
        if response is not _NO_RESPONSE:
            return response
        try:
            if self._started:
                stream = await self._stream_ready()
            else:  # the hot path: no Task, the whole call runs in this await
                opened = self._start_now()
                stream = opened if isinstance(opened, Stream) else await opened
            stream, error = await self._outcome(stream)
            if self._finished and self._error is not None:
                raise self._error
            if error is not None:
                raise error
            if self._response is _NO_RESPONSE:
                try:
                    self._response = self.call_details.response_deserializer(_one_message(stream))
                except RpcError:
                    raise
                except Exception as exc:
                    raise RpcError(StatusCode.INTERNAL, f"could not parse the response: {exc}") from exc
        except asyncio.CancelledError:
            self._fail(asyncio.CancelledError())
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes the call's one status
            raise self._fail(exc) from None
        self._finish(None)
        response = self._response
        return response

    async def _wait_finished(self) -> None:
        if not self._finished:
            try:
                await self._result()
            except RpcError:
                pass
            await self._until_finished()


_NO_RESPONSE: Any = object()


class _StreamingRequests(Call, Generic[Request]):
    """What a streaming-request call adds: ``write``/``done_writing`` or a request iterator (``_Writer``)."""

    __slots__ = ()
    _writer: _Writer

    def _request_bytes(self) -> bytes | None:
        return None

    async def write(self, request: Request) -> None:
        await self._writer.write(request)

    async def done_writing(self) -> None:
        await self._writer.done_writing()

    async def _start_stream(self) -> Stream:
        stream = await super()._start_stream()
        self._writer.started(stream)
        return stream

    def _start_now(self) -> Stream | Coroutine[Any, Any, Stream]:
        """A streaming request is not known whole: the stream opens as :meth:`_start_stream` opens it (this
        overrides :class:`UnaryUnaryCall`'s for :class:`StreamUnaryCall`)."""
        return self._start_stream()

    def _finish(self, error: RpcError | None) -> None:
        super()._finish(error)
        self._writer.stop()


class StreamUnaryCall(_StreamingRequests[Request], UnaryUnaryCall[Response]):
    """Requests written (or from an iterator), then ``await call`` gives the response."""

    __slots__ = ("_writer",)

    def __init__(self, channel: Channel, details: CallDetails, request_iterator: Any) -> None:
        super().__init__(channel, details, None)
        self._writer = _Writer(self, request_iterator)


# --- streaming response -------------------------------------------------------------


class UnaryStreamCall(Call, Generic[Response]):
    """``async for response in call`` (or ``await call.read()`` until ``EOF``)."""

    __slots__ = ("_reader", "_request")

    def __init__(self, channel: Channel, details: CallDetails, request: Any) -> None:
        super().__init__(channel, details)
        self._request = request
        self._reader: AsyncIterator[Response] | None = None

    def _request_bytes(self) -> bytes | None:
        return _serialize(self.call_details, self._request)

    def __aiter__(self) -> AsyncIterator[Response]:
        if self._reader is None:
            self._reader = self._responses()
        return self._reader

    async def read(self) -> Response | _End:
        """The next response, or ``EOF`` after the last."""
        try:
            return await anext(self.__aiter__())
        except StopAsyncIteration:
            return EOF

    async def _responses(self) -> AsyncIterator[Response]:
        deserialize = self.call_details.response_deserializer
        try:
            stream = await self._stream_ready()
            while True:
                try:
                    data = await stream.recv_message()
                except StreamReset:
                    data = None
                if data is None:
                    retried, error = await self._outcome(stream, follow=False)
                    if retried is not stream:
                        stream = retried
                        continue  # a transparent retry: read its responses
                    if self._finished and self._error is not None:
                        raise self._error
                    if error is not None:
                        raise error
                    break
                self._sent_or_received = True
                try:
                    response: Response = deserialize(data)
                except Exception as exc:
                    raise RpcError(StatusCode.INTERNAL, f"could not parse the response: {exc}") from exc
                yield response
        except GeneratorExit:
            self.cancel()  # the caller stopped reading
            raise
        except asyncio.CancelledError:
            self._fail(asyncio.CancelledError())
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes the call's one status
            raise self._fail(exc) from None
        self._finish(None)


class StreamStreamCall(_StreamingRequests[Request], UnaryStreamCall[Response]):
    """Write and read in any order: ``write``, ``done_writing``, ``read`` / ``async for``."""

    __slots__ = ("_writer",)

    def __init__(self, channel: Channel, details: CallDetails, request_iterator: Any) -> None:
        super().__init__(channel, details, None)
        self._writer = _Writer(self, request_iterator)


class _Writer:
    """The request side of a streaming-request call: ``write``/``done_writing``, or a request iterator."""

    __slots__ = ("_call", "_iterator", "_pump")

    def __init__(self, call: Call, request_iterator: Iterable[Any] | AsyncIterable[Any] | None) -> None:
        self._call = call
        self._iterator = request_iterator
        self._pump: asyncio.Task[None] | None = None

    def started(self, stream: Stream) -> None:
        """The stream is open: start sending the request iterator, if the call has one."""
        if self._iterator is not None and self._pump is None:
            self._pump = asyncio.get_running_loop().create_task(self._send_all(self._iterator))
            self._pump.add_done_callback(_retrieve)

    async def write(self, request: Any) -> None:
        if self._iterator is not None:
            raise RuntimeError("write() is not for a call made with a request iterator")
        call = self._call
        await self._send(call._opened_stream() or await call._stream_ready(), request)

    async def done_writing(self) -> None:
        stream = await self._call._stream_ready()
        if not stream.closed:
            stream.end()

    async def _send(self, stream: Stream, request: Any) -> None:
        call = self._call
        if call._finished and call._error is not None:
            raise call._error
        if stream.local_ended:
            raise RuntimeError("the call's requests were already ended (done_writing)")
        payload = _serialize(call.call_details, request)
        call._sent_or_received = True
        try:
            if not stream.try_send_message(payload):
                await stream.send_message(payload)
        except StreamReset:
            # The call ended while we wrote: its status is what the reader (or await) reports.
            raise call._error or RpcError(StatusCode.CANCELLED, "the call ended before the request was sent") from None

    async def _send_all(self, iterator: Iterable[Any] | AsyncIterable[Any]) -> None:
        stream = self._call._stream
        assert stream is not None
        try:
            if isinstance(iterator, AsyncIterable):
                async for request in iterator:
                    await self._send(stream, request)
            else:
                for request in iterator:
                    await self._send(stream, request)
        except RpcError:
            return  # the call's status says what happened
        if not stream.closed:
            stream.end()

    def stop(self) -> None:
        if self._pump is not None and not self._pump.done() and self._pump is not asyncio.current_task():
            self._pump.cancel()


class UnaryResult:
    """A finished unary call: the response and where it came from (``with_call``)."""

    __slots__ = ("call", "response")

    def __init__(self, response: Any, call: Call) -> None:
        self.response = response
        self.call = call

    @property
    def address(self) -> Address | None:
        """The subchannel address the call rode (a proxy's, behind an L4 balancer)."""
        return self.call.address

    @property
    def initial_metadata(self) -> Metadata:
        stream = self.call._stream
        return decode_metadata(stream.headers) if stream is not None and stream.headers else ()

    @property
    def trailing_metadata(self) -> Metadata:
        stream = self.call._stream
        return decode_metadata(stream.trailers) if stream is not None and stream.trailers else ()

    def metadata_value(self, key: str) -> str | bytes | None:
        """A value from the response headers, else the trailers."""
        return self.call.metadata_value(key)
