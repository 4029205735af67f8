"""h2's inbound frame buffer with bounds on what a peer can make it hold.

h2's ``FrameBuffer`` checks a frame's length against SETTINGS_MAX_FRAME_SIZE only
once the whole frame has arrived, so a 9-byte header announcing 16 MiB makes a
connection buffer up to 16 MiB first; and it keeps an unfinished header block
(HEADERS, then CONTINUATION frames without END_HEADERS) for as long as the peer
likes, up to 64 frames of any size. :class:`BoundedFrameBuffer` refuses an
oversized frame from its 9-byte header (FRAME_SIZE_ERROR), bounds a header block
in bytes (PROTOCOL_ERROR, as golang.org/x/net/http2 and so grpc-go answer a header
block far over the header list limit), and counts the blocks it has started so
the connection's owner can bound them in time (:class:`.flood_guard.HeaderBlockTimer`).
"""

from __future__ import annotations

from collections.abc import Callable
from sys import getrefcount
from typing import Any

from h2.exceptions import FrameTooLargeError, ProtocolError
from h2.frame_buffer import FrameBuffer
from hyperframe.frame import Frame

from transport.http2.fast_path import DATA

#: A header block may be this many times the header list limit on the wire (golang.org/x/net/http2: twice)...
HEADER_BLOCK_FACTOR = 2
#: ...and never less than this, whatever the limit.
MIN_HEADER_BLOCK = 64 * 1024


def header_block_limit(max_header_list_size: int) -> int:
    """The most bytes of one encoded header block (HEADERS + CONTINUATION) a connection holds."""
    return max(HEADER_BLOCK_FACTOR * max_header_list_size, MIN_HEADER_BLOCK)


class HeaderBlockTooLarge(ProtocolError):
    """A header block grew past :func:`header_block_limit` (a CONTINUATION flood)."""


#: A large frame gets its own buffer only once this fraction of it has arrived (1/4: a peer makes us allocate
#: at most 4x what it sent, and never more than SETTINGS_MAX_FRAME_SIZE; the first 256 KiB of a 1 MiB frame).
LARGE_FRAME_AMPLIFICATION = 4


class LargeFrame(bytearray):
    """One large frame's bytes, read from the socket straight into a buffer of the frame's size
    (:meth:`BoundedFrameBuffer.take_partial_frame`): the frame buffer adopts it rather than copying it in."""


#: Large-frame buffers kept for reuse (:func:`large_frame`), at most this many a process (each at most our
#: SETTINGS_MAX_FRAME_SIZE, 1 MiB: 8 MiB at most, whatever peers send).
SPARE_FRAMES = 8
_spare: list[LargeFrame] = []


def large_frame(size: int) -> LargeFrame:
    """A buffer for one large frame of ``size`` bytes: a spare of that size that nothing refers to any more,
    or a new one, kept as a spare while there is room, or in place of a spare nothing refers to.

    The payload goes on as views of the buffer (``HELD_PAYLOAD``), and every view refers to it, so a buffer
    no one but this list refers to is free; its bytes are all overwritten (the frame's header and payload)
    before anyone sees them. A fresh buffer per frame, zeroed and soon freed, made the allocator hand
    pages back and fault them in again (a page fault per 4 KiB): with spares, a 1 MiB echo server takes
    about 45-430 page faults per call instead of about 800, and half the CPU (bench/ANALYSIS.md).
    """
    free = None
    for index in range(len(_spare)):
        frame = _spare[index]
        if getrefcount(frame) == _UNREFERENCED:
            if len(frame) == size:
                return frame
            free = index
    frame = LargeFrame(size)
    if free is not None:
        _spare[free] = frame
    elif len(_spare) < SPARE_FRAMES:
        _spare.append(frame)
    return frame


#: References to a spare that nothing else refers to: the list's, the loop variable's, getrefcount's argument.
_UNREFERENCED = 3


class BoundedFrameBuffer(FrameBuffer):
    """``FrameBuffer`` (h2 4.4.1) that validates a frame's length from its header and bounds header blocks."""

    def __init__(self, server: bool, max_header_block: Callable[[], int]) -> None:
        super().__init__(server=server)
        #: The header block bound, asked for only while a block is unfinished.
        self._max_header_block = max_header_block
        #: Header blocks begun without END_HEADERS so far.
        self.header_blocks_started = 0

    @property
    def header_block_pending(self) -> bool:
        """A header block has begun and not ended."""
        return bool(self._headers_buffer)

    @property
    def buffered_bytes(self) -> int:
        """Bytes the buffer holds: unparsed input plus an unfinished header block."""
        return len(self._data) + sum(len(f.data) for f in self._headers_buffer)

    def add_data(self, data: Any) -> None:
        if type(data) is LargeFrame and not self._data and not self._preamble_len:
            self._data = data  # (adopted: the bytes are the frame's own; nothing else writes them)
            return
        super().add_data(data)

    def take_partial_frame(self, min_length: int) -> tuple[LargeFrame, int] | None:
        """If all that is buffered is the beginning of one DATA frame of ``min_length`` bytes or more (within
        SETTINGS_MAX_FRAME_SIZE, and a quarter of it here), move it into a :class:`LargeFrame` of the whole
        frame's size and return that with the bytes already in it: the rest can be read into it directly,
        with no copy into this buffer and no regrowing of it read by read. Else None, and nothing changes."""
        data = self._data
        if len(data) < 9 or data[3] != DATA or self._preamble_len or self._headers_buffer:
            return None
        length = (data[0] << 16) | (data[1] << 8) | data[2]
        if length < min_length or length > self.max_frame_size or len(data) >= 9 + length:
            return None
        if len(data) * LARGE_FRAME_AMPLIFICATION < length:
            return None  # a frame header alone must not make us allocate the whole frame: wait for more of it
        frame = large_frame(9 + length)
        frame[: len(data)] = data
        self._data = bytearray()
        return frame, len(data)

    def discard(self) -> None:
        """Drop whatever is buffered (the connection is going away)."""
        self._data = bytearray()
        self._headers_buffer = []

    def __next__(self) -> Frame:
        data = self._data
        if len(data) >= 9:
            length = (data[0] << 16) | (data[1] << 8) | data[2]
            if length > self.max_frame_size:
                # Refuse it now rather than buffer it whole first (h2 checks only then).
                msg = f"Received overlong frame: length {length}, max {self.max_frame_size}"
                raise FrameTooLargeError(msg)
        return super().__next__()

    def _update_header_buffer(self, f: Frame | None) -> Frame | None:
        begins = not self._headers_buffer
        result = super()._update_header_buffer(f)
        if self._headers_buffer:
            if begins:
                self.header_blocks_started += 1
            else:
                size = sum(len(x.data) for x in self._headers_buffer)
                limit = self._max_header_block()
                if size > limit:
                    msg = f"header block of {size} bytes and not finished, over the limit of {limit}"
                    raise HeaderBlockTooLarge(msg)
        return result
