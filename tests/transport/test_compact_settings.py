"""``CompactSettings`` behaves as h2's ``Settings`` under any sequence of proposals and acknowledgements."""

from __future__ import annotations

import sys
from typing import Any

import h2.settings
from h2.exceptions import InvalidSettingsValueError
from h2.settings import SettingCodes
from hypothesis import given
from hypothesis import strategies as st

from transport.http2.compact_settings import CompactSettings, SettingValues

#: Every known setting and one h2 does not know (settings a peer may send).
KEYS = [*SettingCodes, 0x99]
#: Around each bound h2 checks: valid values and invalid ones.
VALUES = st.sampled_from([0, 1, 2, 100, 4096, 16_383, 16_384, 65_535, 2**24 - 1, 2**24, 2**31 - 1, 2**31])
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("set"), st.sampled_from(KEYS), VALUES),
        st.tuples(st.just("ack")),
        st.tuples(st.just("get"), st.sampled_from(KEYS)),
        st.tuples(st.just("del"), st.sampled_from(KEYS)),
    ),
    max_size=30,
)


def apply(settings: h2.settings.Settings, op: tuple[Any, ...]) -> object:
    """What ``op`` returns, or the type of what it raised."""
    try:
        if op[0] == "set":
            settings[op[1]] = op[2]
            return None
        if op[0] == "ack":
            return {k: (c.original_value, c.new_value) for k, c in settings.acknowledge().items()}
        if op[0] == "get":
            return settings[op[1]]
        del settings[op[1]]
        return None
    except (KeyError, InvalidSettingsValueError) as exc:
        return type(exc)


def state(settings: h2.settings.Settings) -> object:
    return sorted(settings), {k: settings.get(k) for k in KEYS}, len(settings), properties(settings)


def properties(settings: h2.settings.Settings) -> object:
    """The properties the fast paths read (ours answer them without the Mapping layers)."""
    try:
        window: object = settings.initial_window_size
    except KeyError as exc:
        window = type(exc)
    if isinstance(settings, CompactSettings):  # its plain attributes say the same
        assert (settings.initial_window if settings.initial_window is not None else KeyError) == window
        assert settings.max_streams == settings.max_concurrent_streams
    return window, settings.max_concurrent_streams


@given(client=st.booleans(), initial=st.booleans(), ops=OPS)
def test_compact_settings_answer_as_h2s_settings(client: bool, initial: bool, ops: list[tuple[Any, ...]]) -> None:
    initial_values = {SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20, SettingCodes.MAX_CONCURRENT_STREAMS: 100}
    kwargs: dict[str, Any] = {"client": client, "initial_values": initial_values if initial else None}
    ours, h2s = CompactSettings(**kwargs), h2.settings.Settings(**kwargs)
    assert state(ours) == state(h2s)
    for op in ops:
        assert apply(ours, op) == apply(h2s, op), op
        assert state(ours) == state(h2s), op
    assert all(type(values) is SettingValues for values in ours._settings.values())


def test_a_setting_holds_a_short_list_not_a_deque() -> None:
    """The point of it: h2's deque is a 64-slot block per setting, the list a few words."""
    ours, h2s = CompactSettings(), h2.settings.Settings()
    ours_bytes = sum(sys.getsizeof(v) for v in ours._settings.values())
    h2_bytes = sum(sys.getsizeof(v) for v in h2s._settings.values())
    assert ours_bytes * 4 < h2_bytes, (ours_bytes, h2_bytes)


@given(client=st.booleans(), ops=OPS)
def test_compact_settings_made_of_h2s_answer_the_same(client: bool, ops: list[tuple[Any, ...]]) -> None:
    """``CompactSettings.of``: what a GrpcH2Connection makes of the Settings h2's constructor built."""
    h2s = h2.settings.Settings(client=client, initial_values={SettingCodes.MAX_CONCURRENT_STREAMS: 100})
    for op in ops[: len(ops) // 2]:
        apply(h2s, op)
    ours = CompactSettings.of(h2s)
    assert state(ours) == state(h2s)
    for op in ops[len(ops) // 2 :]:
        assert apply(ours, op) == apply(h2s, op), op
        assert state(ours) == state(h2s), op
