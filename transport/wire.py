"""gRPC's wire encodings, free of any I/O.

- Length-prefixed messages: a 1-byte compressed flag, a 4-byte big-endian
  length, then the message. DATA frame boundaries are unrelated to message
  boundaries, so :class:`MessageDecoder` accepts bytes in any chunking.
- ``grpc-message``: percent-encoded UTF-8.
- ``grpc-timeout``: 1-8 digits and a unit (H M S m u n).
"""

from __future__ import annotations

import struct

from transport.status import RpcError, StatusCode

DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH = 4 * 1024 * 1024

_PREFIX = struct.Struct(">BI")
PREFIX_SIZE = _PREFIX.size


def message_prefix(length: int) -> bytes:
    """The 5-byte prefix of an uncompressed message of ``length`` bytes."""
    return _PREFIX.pack(0, length)


def encode_message(message: bytes) -> bytes:
    """Frame one uncompressed message."""
    return _PREFIX.pack(0, len(message)) + message


#: A message over this is sent as its prefix and itself (:func:`framed`).
UNFRAMED_MESSAGE = 256 * 1024


def framed(message: bytes) -> tuple[bytes, bytes]:
    """One uncompressed message to send as ``head`` then ``body``.

    - A message up to :data:`UNFRAMED_MESSAGE` is framed whole in ``body``: it goes out with its headers in
      one step, and with the other requests of the loop turn in one write (copying 64 KiB costs less than
      the writes of its own it would take).
    - A larger one is its 5-byte prefix and the message itself: it is never copied into a framed whole
      (1 MiB: a fresh 1 MiB allocation and copy per message), and goes to the socket as it is.
    """
    if len(message) > UNFRAMED_MESSAGE:
        return _PREFIX.pack(0, len(message)), message
    return b"", _PREFIX.pack(0, len(message)) + message


def one_message(data: bytes, max_length: int) -> bytes | None:
    """The message ``data`` holds, when it is exactly one whole, uncompressed message within ``max_length``
    (a unary call's DATA frame); None for anything else, which :class:`MessageDecoder` then judges."""
    if len(data) < PREFIX_SIZE:
        return None
    flag, length = _PREFIX.unpack_from(data)
    if flag or length > max_length or length + PREFIX_SIZE != len(data):
        return None
    return data[PREFIX_SIZE:]


#: A message longer than this that is not whole in one feed is held piece by piece (one copy when whole).
LARGE_MESSAGE = 64 * 1024
#: Pieces of a held body shorter than this are copied together, so that a body sent in many tiny
#: DATA frames costs its bytes, not an object per frame.
_SMALL_PIECE = 4096


class MessageDecoder:
    """Reassemble length-prefixed messages from arbitrarily split bytes.

    ``feed`` returns the messages completed by the new bytes. A message longer
    than ``max_length`` raises RESOURCE_EXHAUSTED as soon as its prefix is
    seen, before its body is buffered; a compressed message raises
    UNIMPLEMENTED or INTERNAL (we only speak ``identity``).

    Each message body is copied once on its way out: a small one from the buffer
    that gathers it; a large one (over :data:`LARGE_MESSAGE`, spread over many
    DATA frames) is held as the frames' own ``bytes`` and joined when whole.
    """

    __slots__ = ("_body", "_buffer", "_compression", "_held", "_max_length", "_missing")

    def __init__(
        self,
        max_length: int = DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH,
        compression: str | None = None,
    ) -> None:
        #: A prefix or a small message not yet whole.
        self._buffer = bytearray()
        self._max_length = max_length
        self._compression = compression
        #: A large message's body so far, its bytes held, and the bytes still to come (0: none begun).
        self._body: list[bytes | bytearray | memoryview] = []
        self._held = 0
        self._missing = 0

    @property
    def pending(self) -> int:
        """Bytes received that do not yet form a whole message."""
        return len(self._buffer) + (PREFIX_SIZE + self._held if self._missing else 0)

    def feed(self, data: bytes | memoryview, *, stable: bool = False) -> list[bytes]:
        """The messages ``data`` completes, as bytes.

        ``data`` may be a view: of a buffer its owner reuses (the default: what is kept is copied out), or
        with ``stable``, of bytes nothing changes again (a large DATA frame's payload): held as it is.
        """
        if self._missing:
            return self._feed_body(data, stable)
        if not self._buffer and len(data) > PREFIX_SIZE:
            flag, length = _PREFIX.unpack_from(data)
            if not flag and length <= self._max_length:
                if length + PREFIX_SIZE == len(data):
                    # The common case: exactly one whole, uncompressed message in one DATA frame.
                    # (A view's slice is a view: the message goes out as bytes of its own.)
                    return [data[PREFIX_SIZE:] if type(data) is bytes else bytes(data[PREFIX_SIZE:])]
                if length > LARGE_MESSAGE and length + PREFIX_SIZE > len(data):
                    # A large message begins: hold this part as it is, the rest comes frame by frame.
                    held = (
                        memoryview(data)[PREFIX_SIZE:] if stable or type(data) is bytes else bytes(data[PREFIX_SIZE:])
                    )
                    self._body = [held]
                    self._held = len(held)
                    self._missing = length - len(held)
                    return []
        buffer = self._buffer
        buffer += data
        messages: list[bytes] = []
        offset = 0
        size = len(buffer)
        with memoryview(buffer) as view:
            while size - offset >= PREFIX_SIZE:
                flag, length = _PREFIX.unpack_from(buffer, offset)
                if flag:
                    self._reject_compressed(flag)
                if length > self._max_length:
                    raise RpcError(
                        StatusCode.RESOURCE_EXHAUSTED,
                        f"received message larger than max ({length} vs. {self._max_length})",
                    )
                start = offset + PREFIX_SIZE
                end = start + length
                if end > size:
                    if length > LARGE_MESSAGE:
                        # The rest comes frame by frame: hold the frames, join them once whole.
                        self._body = [bytes(view[start:size])]
                        self._held = size - start
                        self._missing = end - size
                        offset = size
                    break
                messages.append(bytes(view[start:end]))
                offset = end
        if offset:
            del buffer[:offset]
        return messages

    def _feed_body(self, data: bytes | memoryview, stable: bool) -> list[bytes]:
        """More of a large message's body (and maybe what follows it)."""
        n = len(data)
        take = min(n, self._missing)
        piece: bytes | memoryview = data if take == n else memoryview(data)[:take]
        if type(data) is not bytes and not stable:
            piece = bytes(piece)  # a view of a buffer that will be reused: keep a copy, not the view
        body = self._body
        if take < _SMALL_PIECE:
            if body and type(body[-1]) is bytearray:
                body[-1] += piece
            else:
                body.append(bytearray(piece))
        else:
            body.append(piece)
        self._held += take
        self._missing -= take
        if self._missing:
            return []
        message = b"".join(body)
        self._body = []
        self._held = 0
        if take == n:
            return [message]
        return [message, *self.feed(data[take:], stable=stable)]

    def _reject_compressed(self, flag: int) -> None:
        if flag != 1:
            raise RpcError(StatusCode.INTERNAL, f"invalid compressed-flag byte {flag} in message prefix")
        if self._compression in (None, "identity"):
            raise RpcError(StatusCode.INTERNAL, "compressed message received without a grpc-encoding")
        raise RpcError(StatusCode.UNIMPLEMENTED, f"message compression {self._compression!r} is not supported")


# --- grpc-message percent-encoding ---------------------------------------

_UNRESERVED = frozenset(range(0x20, 0x7F)) - {ord("%")}


def percent_encode(message: str) -> bytes:
    """Encode a status message for ``grpc-message``."""
    raw = message.encode("utf-8", "replace")
    if all(b in _UNRESERVED for b in raw):
        return raw
    return b"".join(bytes((b,)) if b in _UNRESERVED else b"%%%02X" % b for b in raw)


def percent_decode(value: bytes) -> str:
    """Decode ``grpc-message``; a malformed escape is passed through, never an error."""
    if b"%" not in value:
        return value.decode("utf-8", "replace")
    out = bytearray()
    i = 0
    n = len(value)
    while i < n:
        b = value[i]
        if b == 0x25 and _is_hex(value[i + 1 : i + 3]):
            out.append(int(value[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(b)
            i += 1
    return out.decode("utf-8", "replace")


def _is_hex(pair: bytes) -> bool:
    return len(pair) == 2 and all(c in b"0123456789abcdefABCDEF" for c in pair)


# --- grpc-timeout ---------------------------------------------------------

_UNIT_SECONDS = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}
_ENCODE_UNITS = ((b"n", 1e-9), (b"u", 1e-6), (b"m", 1e-3), (b"S", 1.0), (b"M", 60.0), (b"H", 3600.0))
_MAX_DIGITS = 99_999_999


def encode_timeout(seconds: float) -> bytes:
    """The shortest exact-enough ``grpc-timeout`` for ``seconds`` (at most 8 digits)."""
    if seconds <= 0:
        return b"1n"
    for unit, scale in _ENCODE_UNITS:
        value = seconds / scale
        if value <= _MAX_DIGITS:
            # Round up so the server's deadline is never before the client's.
            amount = int(value) if value == int(value) else int(value) + 1
            return b"%d%s" % (amount, unit)
    return b"%dH" % _MAX_DIGITS


def decode_timeout(value: bytes) -> float:
    """Seconds in a ``grpc-timeout`` value; ValueError with a sentence if malformed."""
    digits, unit = value[:-1], value[-1:]
    if not 1 <= len(digits) <= 8 or not digits.isdigit() or unit not in _UNIT_SECONDS:
        raise ValueError(f"malformed grpc-timeout {value.decode('ascii', 'replace')!r}")
    return int(digits) * _UNIT_SECONDS[unit]
