"""Snapshot tests: the screens a newcomer sees, pixel-for-pixel (well, cell-for-cell)."""

from __future__ import annotations

from typing import Any

from tests.app import scenarios


def test_first_screen(snap_compare: Any) -> None:
    assert snap_compare(scenarios.make_app(), terminal_size=(80, 24), run_before=scenarios.first_screen)


def test_pinned_after_20_greets(snap_compare: Any) -> None:
    assert snap_compare(scenarios.make_app(), terminal_size=(80, 24), run_before=scenarios.pinned)


def test_balanced_after_p_and_20_greets(snap_compare: Any) -> None:
    assert snap_compare(scenarios.make_app(), terminal_size=(80, 24), run_before=scenarios.balanced)


def test_help_screen(snap_compare: Any) -> None:
    assert snap_compare(scenarios.make_app(), terminal_size=(80, 24), run_before=scenarios.help_screen)


def test_wide_terminal_pinned(snap_compare: Any) -> None:
    assert snap_compare(scenarios.make_app(), terminal_size=(140, 40), run_before=scenarios.pinned)


def test_very_wide_terminal_balanced_shows_listings_side_by_side(snap_compare: Any) -> None:
    assert snap_compare(scenarios.make_app(), terminal_size=(210, 48), run_before=scenarios.balanced)
