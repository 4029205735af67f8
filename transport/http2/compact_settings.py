"""h2's ``Settings`` holding each setting's values in a short list instead of a ``collections.deque``.

h2 keeps, per setting, the current value followed by the values proposed and not yet acknowledged, in a
deque: an empty-ish deque is a 64-slot block, ≈ 760 bytes, and a connection has two ``Settings`` of 6 or
7 settings each, ≈ 10 KB per connection for what is almost always one int each. :class:`CompactSettings`
stores the same values, in the same order, in a list (≈ 100 bytes) that answers the two deque methods
h2 uses (``popleft`` when a change is acknowledged, ``append`` when one is proposed); the behaviour is
h2's own (h2 4.x: ``Settings._settings`` maps a setting to its values, current first). The two settings
every new stream reads are also kept as plain attributes, refreshed on every change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import h2.settings
from h2.settings import SettingCodes


class SettingValues(list[int | None]):
    """One setting's values, current first (None: a setting first proposed, with no current value yet)."""

    __slots__ = ()

    def popleft(self) -> int | None:
        return self.pop(0)


class CompactSettings(h2.settings.Settings):
    """``h2.settings.Settings`` with :class:`SettingValues` for its per-setting deques."""

    #: The current INITIAL_WINDOW_SIZE (None where h2's property raises KeyError: only proposed, or deleted)
    #: and MAX_CONCURRENT_STREAMS, as plain attributes for the per-stream paths; kept equal to the
    #: properties on every change (``test_compact_settings`` checks it).
    initial_window: int | None
    max_streams: int

    def __init__(self, client: bool = True, initial_values: dict[SettingCodes, int] | None = None) -> None:
        super().__init__(client=client, initial_values=initial_values)
        self._compact_all(self._settings)

    @classmethod
    def of(cls, settings: h2.settings.Settings) -> CompactSettings:
        """The same settings (values, proposals and side) as h2's ``settings``, held compactly."""
        compact = cls.__new__(cls)
        compact.__dict__.update(vars(settings))
        compact._compact_all(settings._settings)
        return compact

    def _compact_all(self, settings: Mapping[SettingCodes | int, Iterable[int | None]]) -> None:
        self._settings = {key: _compact(values) for key, values in settings.items()}  # type: ignore[misc]
        self._refresh()

    def _refresh(self) -> None:
        try:
            self.initial_window = self.initial_window_size
        except KeyError:
            self.initial_window = None
        self.max_streams = self.max_concurrent_streams

    def acknowledge(self) -> dict[SettingCodes | int, h2.settings.ChangedSetting]:
        changed = super().acknowledge()
        self._refresh()
        return changed

    def __delitem__(self, key: SettingCodes | int) -> None:
        super().__delitem__(key)
        self._refresh()

    def __setitem__(self, key: SettingCodes | int, value: int) -> None:
        super().__setitem__(key, value)  # validates; appends, or adds a deque for a setting not seen yet
        values: object = self._settings[key]
        if not isinstance(values, SettingValues):
            self._settings[key] = _compact(self._settings[key])  # type: ignore[assignment]
        self._refresh()


def _compact(values: Iterable[int | None]) -> SettingValues:
    return SettingValues(values)
