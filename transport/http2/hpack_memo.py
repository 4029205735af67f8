"""Memoized header work: a header block seen before is not encoded, decoded or validated again.

A gRPC connection sends and receives the same few header blocks over and over:
``:status 200`` + ``content-type``, ``grpc-status 0``, and a request whose
fields are all in the HPACK table after the first call. h2 spends most of its
per-call time on exactly that work (HPACK and header validation are about two
thirds of the h2 ceiling in ``bench/``), so each step here remembers its answer:

- :class:`MemoDecoder` maps a header block's bytes to its header list;
- :class:`MemoEncoder` maps a header list to its header block;
- :func:`validated` maps a decoded header list and its validation flags to h2's
  validated, normalized list.

An HPACK answer depends on the dynamic table, so it is remembered only while
the table is unchanged: :class:`VersionedTable` counts every insertion and
resize, and an entry made under another version is a miss. A block that
changes the table (a literal with incremental indexing, a size update) is
never remembered, since replaying it would skip the change. Validation depends
only on the headers and the flags, so it is always safe to remember; what h2
rejects raises before anything is stored. Nothing is skipped that would change
what goes on the wire or which input is refused.

:class:`MemoDecoder` also judges the header list limit the way gRPC needs it:
over the limit is one stream's error, not the connection's, and an HPACK
decoder that stops half-way through a block leaves its dynamic table out of step
with the peer's. So it decodes the whole block up to :func:`hard_limit` (beyond
it, hpack's ``OversizedHeaderListError``: the connection error an HPACK bomb
deserves) and reports the list's size (RFC 7541 §4.1) in
:attr:`MemoDecoder.header_list_size` for the connection to judge.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from hpack import Decoder, Encoder, HeaderTuple
from hpack.table import HeaderTable

#: Entries kept per memo before it is cleared (a connection sees a handful in practice).
MEMO_SIZE = 64
#: Larger blocks and header lists are not remembered: a gRPC call's are a few hundred bytes at most,
#: and this bounds what a peer sending distinct large blocks can make a connection hold.
MEMO_MAX_BYTES = 1024

Headers = list[tuple[bytes, bytes]]

#: A header list over the limit but within this many times it is decoded whole and refused per stream.
HARD_LIMIT_FACTOR = 4


def hard_limit(max_header_list_size: int) -> int:
    """The decoded size beyond which a header block is a connection error (an HPACK bomb guard)."""
    return HARD_LIMIT_FACTOR * max_header_list_size


def header_list_size(headers: Iterable[tuple[bytes | str, bytes | str]]) -> int:
    """A header list's size as SETTINGS_MAX_HEADER_LIST_SIZE counts it (RFC 7541 §4.1: name + value + 32 each)."""
    return sum(len(name) + len(value) + 32 for name, value in headers)


class VersionedTable(HeaderTable):
    """HPACK's dynamic table with a version that moves on every change."""

    def __init__(self) -> None:
        super().__init__()
        self.version = 0

    def add(self, name: bytes, value: bytes) -> None:
        self.version += 1
        super().add(name, value)

    @property
    def maxsize(self) -> int:
        return self._maxsize

    @maxsize.setter
    def maxsize(self, newmax: int) -> None:
        self.version += 1
        HeaderTable.maxsize.fset(self, newmax)  # type: ignore[attr-defined]


class MemoDecoder(Decoder):
    """An HPACK decoder that answers a repeated block from memory while the table is unchanged.

    ``max_header_list_size`` is the limit a header list is judged by; a block is
    decoded whole up to :func:`hard_limit` of it, and its list's size left in
    :attr:`header_list_size` (larger than ``max_header_list_size``: that stream's error).
    """

    header_table: VersionedTable

    def __init__(self) -> None:
        super().__init__()
        self.header_table = VersionedTable()
        self._memo: dict[bytes, tuple[int, int, int, list[HeaderTuple], int]] = {}
        #: The size (RFC 7541 §4.1) of the header list decoded last.
        self.header_list_size = 0

    def decode(self, data: bytes, raw: bool = False) -> Any:
        table = self.header_table
        version = table.version
        limit = self.max_header_list_size
        key = bytes(data)
        if raw:
            hit = self._memo.get(key)
            if hit is not None and hit[0] == version and hit[1] == limit and hit[2] == self.max_allowed_table_size:
                self.header_list_size = hit[4]
                return list(hit[3])
        # hpack stops at max_header_list_size, mid-block: let it go on to the hard limit instead.
        self.max_header_list_size = hard_limit(limit)
        try:
            headers = super().decode(data, raw)
        finally:
            self.max_header_list_size = limit
        size = self.header_list_size = header_list_size(headers)
        if raw and table.version == version and len(key) <= MEMO_MAX_BYTES:
            if len(self._memo) >= MEMO_SIZE:
                self._memo.clear()
            self._memo[key] = (version, limit, self.max_allowed_table_size, list(headers), size)
        return headers


class MemoEncoder(Encoder):
    """An HPACK encoder that answers a repeated header list from memory while the table is unchanged.

    Only plain ``(name, value)`` tuples are remembered: a ``NeverIndexedHeaderTuple``
    compares equal to a plain tuple but must be encoded differently. A header list given as a *tuple* is
    one its caller keeps unchanged (a constant block): it is remembered by its identity.
    """

    header_table: VersionedTable

    def __init__(self) -> None:
        super().__init__()
        self.header_table = VersionedTable()
        self._memo: dict[tuple[tuple[tuple[bytes, bytes], ...], bool], tuple[int, bytes]] = {}
        self._constants: dict[int, tuple[tuple[Any, ...], int, bool, bytes]] = {}

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        table = self.header_table
        if type(headers) is tuple and not table.resized:
            # A constant block of the caller's (a tuple it keeps, e.g. a server's OK answer): known by identity,
            # without hashing its headers; the tuple is held, so its id stays its own.
            known = self._constants.get(id(headers))
            if known is not None and known[0] is headers and known[1] == table.version and known[2] == huffman:
                return known[3]
            version = table.version
            block = self.encode(list(headers), huffman)
            if table.version == version:
                if len(self._constants) >= MEMO_SIZE:
                    self._constants.clear()
                self._constants[id(headers)] = (headers, version, huffman, block)
            return block
        if table.resized or type(headers) is not list:
            return super().encode(headers, huffman)
        for header in headers:  # (a loop, not any(): no generator per call)
            if type(header) is not tuple:
                return super().encode(headers, huffman)
        key = (tuple(headers), huffman)
        version = table.version
        hit = self._memo.get(key)
        if hit is not None and hit[0] == version:
            return hit[1]
        block = super().encode(headers, huffman)
        if table.version == version and len(block) <= MEMO_MAX_BYTES:
            if len(self._memo) >= MEMO_SIZE:
                self._memo.clear()
            self._memo[key] = (version, block)
        return block


def validated(
    memo: dict[Any, list[Any]], headers: Iterable[Any], flags: Any, process: Callable[[list[Any]], list[Any]]
) -> list[Any]:
    """h2's inbound validation + normalization of ``headers``, remembered in ``memo``.

    ``process`` is h2's own pipeline; it runs on a miss and raises on bad
    headers exactly as it would without the memo. Only lists of plain
    ``HeaderTuple`` are remembered, so a never-indexed field keeps its type.
    """
    headers = list(headers)
    if any(type(h) is not HeaderTuple for h in headers):
        return process(headers)
    key = (tuple(headers), flags)
    hit = memo.get(key)
    if hit is not None:
        return list(hit)
    result = process(headers)
    if sum(len(name) + len(value) for name, value in headers) <= MEMO_MAX_BYTES:
        if len(memo) >= MEMO_SIZE:
            memo.clear()
        memo[key] = list(result)
    return result
