"""bench/floor_echo.py's frame counter: where a call ends, whatever way TCP cuts the bytes."""

from __future__ import annotations

import pytest

from bench.floor_echo import BUFFER_SIZE, FrameCounter

# One warm SayHello as our client and server write it (stream 41): HEADERS + DATA(END_STREAM), and
# HEADERS + DATA + trailers(END_STREAM).
REQUEST = bytes.fromhex("0000070104000000298386c2c1c0bfbe00000c00010000002900000000070a05776f726c64")
RESPONSE = bytes.fromhex(
    "00000201040000002988bf000014000000000029000000000f0a0d48656c6c6f2c20776f726c6421000001010500000029be"
)


def feed(counter: FrameCounter, data: bytes) -> int:
    buffer = counter.get_buffer()
    buffer[: len(data)] = data
    return counter.feed(len(data))


@pytest.mark.parametrize("wire", [REQUEST, RESPONSE], ids=["request", "response"])
def test_one_call_ends_once_however_the_reads_cut_it(wire: bytes) -> None:
    stream = wire * 3
    for cut in range(1, len(stream)):
        counter = FrameCounter()
        assert feed(counter, stream[:cut]) + feed(counter, stream[cut:]) == 3, f"cut at {cut}"
        assert counter.held == 0


def test_byte_by_byte_and_a_frame_too_large_for_the_buffer() -> None:
    counter = FrameCounter()
    assert sum(feed(counter, bytes([b])) for b in REQUEST * 2) == 2
    huge = (BUFFER_SIZE).to_bytes(3, "big") + b"\x00\x01\x00\x00\x00\x01"  # a DATA frame of 64 KiB
    with pytest.raises(ValueError, match="does not fit"):
        feed(FrameCounter(), huge)
