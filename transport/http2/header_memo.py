"""A header block seen before, taken from memory: its decoded, validated headers and their side effects.

Every call receives the same few header blocks (a request's, a response's, its
trailers), byte for byte once HPACK has indexed them. For each, h2 decodes the
block, looks for ``:status`` 1xx and ``content-length``, builds validation flags
and validates the list (:mod:`.hpack_memo` remembers the decoding and the
validation, but each step still runs). :class:`BlockMemo` remembers the outcome
of all of it for a block that did not change the HPACK table, keyed by the block
and what the outcome depends on (the stream's side and whether its headers came
already, END_STREAM, a HEAD request); on a hit only the stream state machine's
inputs run (in one step, :meth:`.GrpcStreamStateMachine.receive_headers`, with
exactly h2's states and events), and the headers,
the expected content length and the header list's size are set from memory.
A block is remembered only once h2 took it without error, so a bad block is
always judged by h2.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from h2.events import Event, InformationalResponseReceived
from h2.stream import H2Stream
from hpack import HeaderTuple

from transport.http2.stream_machine import GrpcStreamStateMachine

if TYPE_CHECKING:
    from transport.http2.connection import GrpcH2Connection

#: Blocks remembered per connection at most (the memo is cleared when full).
MEMO_SIZE = 256
#: Blocks longer than this are not remembered.
MEMO_MAX_BYTES = 4096


class _Taken(NamedTuple):
    """What h2 made of a block: valid while the HPACK table and limits are as they were."""

    version: int
    limit: int
    table_size: int
    list_size: int
    event: type[Event]
    headers: tuple[Any, ...]
    content_length: int | None


Key = tuple[bytes, bool, bool, bool]


class BlockMemo:
    """Per connection: header block → what receiving it did (see the module docstring)."""

    def __init__(self) -> None:
        self._taken: dict[Key, _Taken] = {}

    def lookup(self, conn: GrpcH2Connection, key: Key) -> _Taken | None:
        """What receiving the block of ``key`` did before, if it would do the same now."""
        hit = self._taken.get(key)
        decoder = conn.decoder
        if (
            hit is not None
            and hit.version == decoder.header_table.version
            and hit.limit == decoder.max_header_list_size
            and hit.table_size == decoder.max_allowed_table_size
        ):
            return hit
        return None

    @staticmethod
    def apply(conn: GrpcH2Connection, stream: H2Stream, hit: _Taken, end_stream: bool) -> list[Event]:
        """Receive a remembered block on ``stream``: h2's state inputs, the rest from memory."""
        conn.decoder.header_list_size = hit.list_size
        machine: GrpcStreamStateMachine = stream.state_machine  # type: ignore[assignment]  # (no cast(): a call)
        events = machine.receive_headers(end_stream)  # both inputs
        first: Any = events[0]
        stream._expected_content_length = hit.content_length
        first.headers = list(hit.headers)
        # The owner may key what it made of these headers (a server's routing) by this record's identity: the
        # same record comes back for every block that decodes to them while the HPACK table stays as it is.
        first.taken = hit
        return events

    def remember(self, conn: GrpcH2Connection, key: Key, version: int, stream: H2Stream, events: list[Event]) -> None:
        """h2 took the block of ``key`` (decoded at table ``version``) into ``events``: keep the outcome
        if the block left the table as it was and is an ordinary one (not 1xx, not a refused request)."""
        decoder = conn.decoder
        first = events[0] if events else None
        headers = getattr(first, "headers", None)
        if (
            first is None
            or headers is None
            or decoder.header_table.version != version
            or len(key[0]) > MEMO_MAX_BYTES
            or isinstance(first, InformationalResponseReceived)
            or any(type(h) is not HeaderTuple for h in headers)
        ):
            return
        if len(self._taken) >= MEMO_SIZE:
            self._taken.clear()
        self._taken[key] = _Taken(
            version,
            decoder.max_header_list_size,
            decoder.max_allowed_table_size,
            decoder.header_list_size,
            type(first),
            tuple(headers),
            stream._expected_content_length,
        )
