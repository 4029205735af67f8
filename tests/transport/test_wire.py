"""Pure wire-level functions: framing, percent-encoding, timeouts, statuses, metadata, targets, backoff."""

from __future__ import annotations

import random
import struct
import tracemalloc

import pytest
from h2.errors import ErrorCodes
from hypothesis import given, settings
from hypothesis import strategies as st

from transport.address import Address
from transport.client.backoff import BackoffConfig, ExponentialBackoff
from transport.client.resolver import DnsResolver, StaticResolver, parse_target
from transport.metadata import decode_metadata, encode_metadata, metadata_value
from transport.status import RpcError, StatusCode, status_from_http, status_from_rst
from transport.wire import (
    LARGE_MESSAGE,
    PREFIX_SIZE,
    UNFRAMED_MESSAGE,
    MessageDecoder,
    decode_timeout,
    encode_message,
    encode_timeout,
    framed,
    percent_decode,
    percent_encode,
)

# --- MessageDecoder ---------------------------------------------------------


def _feed_in_chunks(decoder: MessageDecoder, data: bytes, cuts: list[int]) -> list[bytes]:
    out: list[bytes] = []
    prev = 0
    for cut in sorted(set(cuts)) + [len(data)]:
        out += decoder.feed(data[prev:cut])
        prev = cut
    return out


def test_decoder_reassembles_byte_by_byte() -> None:
    """Messages fed one byte at a time come out whole, in order, and nothing stays pending."""
    messages = [b"", b"a", b"hello world" * 10]
    data = b"".join(encode_message(m) for m in messages)
    decoder = MessageDecoder()
    out: list[bytes] = []
    for i in range(len(data)):
        out += decoder.feed(data[i : i + 1])
    assert out == messages
    assert decoder.pending == 0


def test_decoder_several_messages_in_one_chunk() -> None:
    """One chunk holding several messages and a partial one yields the whole ones only."""
    data = encode_message(b"one") + encode_message(b"two") + encode_message(b"three")[:4]
    decoder = MessageDecoder()
    assert decoder.feed(data) == [b"one", b"two"]
    assert decoder.pending == 4


@settings(max_examples=200, deadline=None)
@given(
    messages=st.lists(st.binary(max_size=300), max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=20),
)
def test_decoder_any_split_gives_same_messages(messages: list[bytes], cuts: list[int]) -> None:
    """Any split of any list of framed messages decodes to exactly those messages."""
    data = b"".join(encode_message(m) for m in messages)
    decoder = MessageDecoder()
    assert _feed_in_chunks(decoder, data, [c for c in cuts if c <= len(data)]) == messages
    assert decoder.pending == 0


@settings(max_examples=300, deadline=None)
@given(chunks=st.lists(st.binary(max_size=64), max_size=10), max_length=st.integers(min_value=0, max_value=1 << 20))
def test_decoder_random_bytes_raise_only_rpc_error(chunks: list[bytes], max_length: int) -> None:
    """Garbage never raises anything but RpcError."""
    decoder = MessageDecoder(max_length=max_length)
    try:
        for chunk in chunks:
            decoder.feed(chunk)
    except RpcError:
        pass


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.sampled_from([0, 7, LARGE_MESSAGE, LARGE_MESSAGE + 1, 3 * LARGE_MESSAGE + 17]), max_size=5),
    cuts=st.lists(st.integers(min_value=0, max_value=4 * LARGE_MESSAGE), max_size=30),
    as_views=st.booleans(),
)
def test_decoder_large_messages_any_split(sizes: list[int], cuts: list[int], as_views: bool) -> None:
    """Large messages (held frame by frame) mixed with small ones decode whole under any split, as bytes,
    with ``pending`` = the bytes received that form no whole message yet, at every step; pieces handed in
    as views of a buffer that is then overwritten (as a read buffer is) do not change what comes out."""
    rng = random.Random(len(sizes) * 7919 + len(cuts))
    messages = [rng.randbytes(n) for n in sizes]
    data = b"".join(encode_message(m) for m in messages)
    decoder = MessageDecoder()
    out: list[bytes] = []
    prev = 0
    scratch = bytearray(len(data))
    for cut in sorted({c for c in cuts if c <= len(data)}) + [len(data)]:
        if as_views:
            scratch[: cut - prev] = data[prev:cut]
            got = decoder.feed(memoryview(scratch)[: cut - prev])  # type: ignore[arg-type]
            scratch[: cut - prev] = bytes(cut - prev)  # the buffer is reused
        else:
            got = decoder.feed(data[prev:cut])
        assert all(type(m) is bytes for m in got)
        out += got
        consumed = sum(PREFIX_SIZE + len(m) for m in out)
        assert decoder.pending == cut - consumed
        prev = cut
    assert out == messages
    assert decoder.pending == 0


@pytest.mark.parametrize("frame", [16 * 1024, 16])
def test_decoder_holds_a_large_message_once(frame: int) -> None:
    """A 4 MiB message fed in DATA-frame-sized pieces (16 KiB, or 16 bytes as a hostile peer might) costs at
    most ≈ 2× its size at the peak: the pieces held (≈ 1×) and the message they are joined into (1×); not
    a growing buffer plus a slice of it plus a copy of the slice (≈ 3×), nor an object per tiny piece."""
    size = 4 * 1024 * 1024
    data = encode_message(random.Random(1).randbytes(size))
    pieces = [data[i : i + frame] for i in range(0, len(data), frame)]
    decoder = MessageDecoder()
    tracemalloc.start()
    try:
        out: list[bytes] = []
        for piece in pieces:
            out += decoder.feed(piece)
            del piece
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(out) == 1 and out[0] == data[PREFIX_SIZE:]
    assert peak <= 2.2 * size, f"peak {peak / size:.2f}× the message"


def test_framed_sends_a_large_message_as_it_is() -> None:
    """A small message goes framed whole (one step with its headers); a large one as its prefix and itself,
    never copied into a framed whole."""
    small, large = b"x" * UNFRAMED_MESSAGE, b"y" * (UNFRAMED_MESSAGE + 1)
    assert framed(small) == (b"", encode_message(small))
    head, body = framed(large)
    assert body is large
    assert head + body == encode_message(large)
    assert MessageDecoder().feed(head + body) == [large]


def test_decoder_oversize_prefix_rejected_before_body() -> None:
    """A prefix announcing more than max_length raises RESOURCE_EXHAUSTED with only the prefix received."""
    decoder = MessageDecoder(max_length=1024)
    with pytest.raises(RpcError) as info:
        decoder.feed(struct.pack(">BI", 0, 1025))
    assert info.value.code is StatusCode.RESOURCE_EXHAUSTED
    # exactly max_length is fine
    ok = MessageDecoder(max_length=4)
    assert ok.feed(encode_message(b"abcd")) == [b"abcd"]


def test_decoder_compressed_flag_without_encoding_is_internal() -> None:
    """Compressed flag 1 with no grpc-encoding → INTERNAL."""
    with pytest.raises(RpcError) as info:
        MessageDecoder().feed(struct.pack(">BI", 1, 3) + b"abc")
    assert info.value.code is StatusCode.INTERNAL


def test_decoder_invalid_flag_is_internal() -> None:
    """A flag byte other than 0/1 → INTERNAL."""
    with pytest.raises(RpcError) as info:
        MessageDecoder().feed(struct.pack(">BI", 7, 0))
    assert info.value.code is StatusCode.INTERNAL


# --- percent-encoding -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "encoded"),
    [
        ("héllo", b"h%C3%A9llo"),
        ("%", b"%25"),
        ("plain ascii ~!", b"plain ascii ~!"),
        ("a\nb", b"a%0Ab"),
        ("✗", b"%E2%9C%97"),
        ("100%", b"100%25"),
        ("", b""),
    ],
)
def test_percent_encode_known(text: str, encoded: bytes) -> None:
    """Known strings encode to the exact grpc-message bytes and decode back."""
    assert percent_encode(text) == encoded
    assert percent_decode(encoded) == text


@given(st.text())
def test_percent_round_trip(text: str) -> None:
    """decode(encode(s)) == s for any text; the encoding is printable ASCII without bare %."""
    encoded = percent_encode(text)
    assert all(0x20 <= b <= 0x7E for b in encoded)
    assert percent_decode(encoded) == text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"%", "%"),
        (b"%4", "%4"),
        (b"%zz", "%zz"),
        (b"abc%", "abc%"),
        (b"%%41", "%A"),
        (b"%G1x", "%G1x"),
        (b"%C3", "\ufffd"),
    ],
)
def test_percent_decode_malformed_passes_through(value: bytes, expected: str) -> None:
    """Malformed escapes are passed through as they are, never an error."""
    assert percent_decode(value) == expected


@given(st.binary())
def test_percent_decode_never_raises(value: bytes) -> None:
    """Any bytes decode to some str."""
    assert isinstance(percent_decode(value), str)


# --- grpc-timeout -----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (b"2H", 7200.0),
        (b"3M", 180.0),
        (b"5S", 5.0),
        (b"250m", 0.25),
        (b"1500u", 0.0015),
        (b"20n", 20e-9),
        (b"99999999S", 99999999.0),
        (b"0S", 0.0),
    ],
)
def test_decode_timeout_units(value: bytes, seconds: float) -> None:
    """Every unit H M S m u n decodes to the right number of seconds."""
    assert decode_timeout(value) == pytest.approx(seconds, rel=1e-12)


@pytest.mark.parametrize("value", [b"", b"1", b"S", b"123456789S", b"10x", b"-1S", b"1.5S", b" 1S", b"1s"])
def test_decode_timeout_malformed(value: bytes) -> None:
    """Malformed grpc-timeout values raise ValueError."""
    with pytest.raises(ValueError):
        decode_timeout(value)


_NS = {b"H": 3600 * 10**9, b"M": 60 * 10**9, b"S": 10**9, b"m": 10**6, b"u": 10**3, b"n": 1}


@settings(max_examples=500)
@given(st.floats(min_value=1e-9, max_value=99_999_999 * 3600.0, allow_nan=False))
def test_encode_timeout_bounds(seconds: float) -> None:
    """At most 8 digits, a valid unit, and never shorter than the requested timeout."""
    encoded = encode_timeout(seconds)
    digits, unit = encoded[:-1], encoded[-1:]
    assert 1 <= len(digits) <= 8 and digits.isdigit(), encoded
    assert unit in _NS
    # exact integer arithmetic: amount*unit >= requested (allowing float repr of the request)
    assert int(digits) * _NS[unit] >= int(seconds * 1e9 * (1 - 1e-12)), (seconds, encoded)
    assert decode_timeout(encoded) >= seconds * (1 - 1e-12)


def test_encode_timeout_known() -> None:
    """Small values use fine units; whole values stay exact."""
    assert encode_timeout(1.0) == b"1000000u"
    assert decode_timeout(encode_timeout(0.25)) == pytest.approx(0.25)
    assert encode_timeout(0.0) == b"1n"
    assert decode_timeout(encode_timeout(3600 * 24 * 365.0)) >= 3600 * 24 * 365.0


# --- statuses ---------------------------------------------------------------


def test_status_codes_are_the_17() -> None:
    """Exactly 17 codes, numbered 0..16."""
    assert sorted(int(c) for c in StatusCode) == list(range(17))
    assert StatusCode.UNAUTHENTICATED == 16 and StatusCode.OK == 0 and StatusCode.UNAVAILABLE == 14


@pytest.mark.parametrize(
    ("http", "code"),
    [
        (400, StatusCode.INTERNAL),
        (401, StatusCode.UNAUTHENTICATED),
        (403, StatusCode.PERMISSION_DENIED),
        (404, StatusCode.UNIMPLEMENTED),
        (429, StatusCode.UNAVAILABLE),
        (502, StatusCode.UNAVAILABLE),
        (503, StatusCode.UNAVAILABLE),
        (504, StatusCode.UNAVAILABLE),
        (500, StatusCode.UNKNOWN),
        (415, StatusCode.UNKNOWN),
        (302, StatusCode.UNKNOWN),
    ],
)
def test_status_from_http(http: int, code: StatusCode) -> None:
    """HTTP → gRPC status per the spec's table."""
    assert status_from_http(http) is code


@pytest.mark.parametrize(
    ("rst", "code"),
    [
        (ErrorCodes.CANCEL, StatusCode.CANCELLED),
        (ErrorCodes.REFUSED_STREAM, StatusCode.UNAVAILABLE),
        (ErrorCodes.ENHANCE_YOUR_CALM, StatusCode.RESOURCE_EXHAUSTED),
        (ErrorCodes.INADEQUATE_SECURITY, StatusCode.PERMISSION_DENIED),
        (ErrorCodes.NO_ERROR, StatusCode.INTERNAL),
        (ErrorCodes.PROTOCOL_ERROR, StatusCode.INTERNAL),
        (ErrorCodes.INTERNAL_ERROR, StatusCode.INTERNAL),
        (ErrorCodes.FLOW_CONTROL_ERROR, StatusCode.INTERNAL),
        (0x99, StatusCode.INTERNAL),
    ],
)
def test_status_from_rst(rst: int, code: StatusCode) -> None:
    """RST_STREAM error code → status per the spec; plain ints work like the enum."""
    assert status_from_rst(rst) is code
    assert status_from_rst(int(rst)) is code


# --- metadata ---------------------------------------------------------------


def test_metadata_encode_text_and_bin() -> None:
    """Text values pass as ASCII; -bin values are base64 without padding."""
    headers = encode_metadata([("x-user", "ada"), ("trace-bin", b"\x00\xff\x10"), ("k-bin", b"ab")])
    assert headers == [(b"x-user", b"ada"), (b"trace-bin", b"AP8Q"), (b"k-bin", b"YWI")]


@given(st.binary(max_size=64))
def test_metadata_bin_round_trip(value: bytes) -> None:
    """Any bytes under a -bin key survive encode → decode."""
    assert decode_metadata(encode_metadata([("blob-bin", value)])) == (("blob-bin", value),)


@pytest.mark.parametrize("wire", [b"YWI", b"YWI="])
def test_metadata_bin_padded_or_not(wire: bytes) -> None:
    """Padded and unpadded base64 both decode."""
    assert decode_metadata([(b"k-bin", wire)]) == (("k-bin", b"ab"),)


def test_metadata_decode_drops_protocol_headers() -> None:
    """Pseudo-headers and gRPC protocol headers are not application metadata."""
    headers = [
        (b":status", b"200"),
        (b"content-type", b"application/grpc"),
        (b"grpc-status", b"0"),
        (b"grpc-message", b"x"),
        (b"te", b"trailers"),
        (b"x-a", b"1"),
    ]
    md = decode_metadata(headers)
    assert md == (("x-a", "1"),)
    assert metadata_value(md, "x-a") == "1"
    assert metadata_value(md, "nope") is None


@pytest.mark.parametrize("key", ["", "Upper", "has space", "grpc-reserved", "ümlaut", "a:b", "k\n"])
def test_metadata_invalid_key(key: str) -> None:
    """Invalid or reserved keys raise ValueError."""
    with pytest.raises(ValueError):
        encode_metadata([(key, "v")])


@pytest.mark.parametrize("value", ["héllo", "a\nb", "tab\there", b"bytes-on-text-key"])
def test_metadata_invalid_value(value: str | bytes) -> None:
    """Non-printable/non-ASCII text values and bytes on a text key raise ValueError."""
    with pytest.raises(ValueError):
        encode_metadata([("x-k", value)])


# --- targets ----------------------------------------------------------------


def test_parse_target_host_port() -> None:
    """host:port: one address; an IP literal is static, a name uses DNS (first address only)."""
    r = parse_target("127.0.0.1:50051")
    assert isinstance(r, StaticResolver) and r.addresses == [Address("127.0.0.1", 50051)]
    d = parse_target("localhost:50051")
    assert isinstance(d, DnsResolver) and (d.host, d.port, d.all_addresses) == ("localhost", 50051, False)
    assert d.authority == "localhost:50051"


def test_parse_target_ipv4_list() -> None:
    """ipv4:a:p,b:p lists every address in order."""
    r = parse_target("ipv4:127.0.0.1:1000,10.0.0.2:2000")
    assert isinstance(r, StaticResolver)
    assert r.addresses == [Address("127.0.0.1", 1000), Address("10.0.0.2", 2000)]


def test_parse_target_ipv6() -> None:
    """ipv6:[::1]:p gives the v6 address, printed in brackets."""
    r = parse_target("ipv6:[::1]:8080")
    assert isinstance(r, StaticResolver)
    assert r.addresses == [Address("::1", 8080)]
    assert str(r.addresses[0]) == "[::1]:8080"


async def test_parse_target_dns_resolves_localhost() -> None:
    """dns:///localhost:p resolves every address, all on port p."""
    r = parse_target("dns:///localhost:50051")
    assert isinstance(r, DnsResolver) and r.all_addresses and r.host == "localhost" and r.port == 50051
    addresses = await r.resolve()
    assert addresses and all(a.port == 50051 for a in addresses)
    assert {a.host for a in addresses} & {"127.0.0.1", "::1"}


@pytest.mark.parametrize(
    "target",
    [
        "",
        "   ",
        "ipv4:",
        "ipv4:localhost:80",
        "ipv4:1.2.3.4:99999",
        "host:port",
        "dns:///",
        "ipv6:[::1",
        "ipv4:[::1]:80",
        "ipv6:127.0.0.1:80",
        "127.0.0.1:-1",
    ],
)
def test_parse_target_bad(target: str) -> None:
    """Bad targets raise ValueError with a readable sentence naming the problem."""
    with pytest.raises(ValueError) as info:
        parse_target(target)
    message = str(info.value)
    assert len(message) > 15 and " " in message
    if target.strip():
        assert target.strip() in message or "target" in message


def test_parse_target_names_the_wrong_address_family() -> None:
    """An IPv6 literal in an ipv4: list (or the reverse) is refused with both families named."""
    with pytest.raises(ValueError, match="is an IPv6 address, not IPv4"):
        parse_target("ipv4:127.0.0.1:80,[::1]:81")
    with pytest.raises(ValueError, match="is an IPv4 address, not IPv6"):
        parse_target("ipv6:[::1]:80,127.0.0.1:81")


# --- backoff ----------------------------------------------------------------


def test_backoff_sequence_without_jitter() -> None:
    """1, 1.6, 2.56, ... capped at max_delay; reset() goes back to base."""
    b = ExponentialBackoff(BackoffConfig(jitter=0.0, max_delay=10.0))
    delays = [b.next_delay() for _ in range(8)]
    assert delays[:5] == pytest.approx([1.0, 1.6, 2.56, 4.096, 6.5536])
    assert delays[5:] == pytest.approx([10.0, 10.0, 10.0])
    b.reset()
    assert b.current == 1.0
    assert b.next_delay() == pytest.approx(1.0)


def test_backoff_jitter_bounds() -> None:
    """Each jittered delay stays within ±20 % of the un-jittered one, and jitter actually varies."""
    config = BackoffConfig()
    b = ExponentialBackoff(config, random.Random(1))
    seen = []
    for _ in range(30):
        expected = b.current
        delay = b.next_delay()
        assert expected * 0.8 <= delay <= expected * 1.2
        seen.append(delay / expected)
        b.reset()
    assert max(seen) - min(seen) > 0.05


def test_backoff_connect_timeout_and_validation() -> None:
    """Connect timeout is at least min_connect_timeout; invalid configs are rejected."""
    b = ExponentialBackoff(BackoffConfig())
    assert b.connect_timeout() == 20.0
    with pytest.raises(ValueError):
        BackoffConfig(base_delay=0)
    with pytest.raises(ValueError):
        BackoffConfig(jitter=1.0)
    with pytest.raises(ValueError):
        BackoffConfig(base_delay=5, max_delay=1)
