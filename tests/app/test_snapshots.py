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


# --- the configurations (issue 12): 3 max age, 4 L7 proxy, 5 least_request, 6 scale-up -----------


def test_configuration_3_max_age_after_a_rotation(snap_compare: Any) -> None:
    app = scenarios.make_configuration_app(configuration_age=2.0)
    assert snap_compare(app, terminal_size=(80, 24), run_before=scenarios.max_age_rotated)


def test_configuration_4_l7_proxy_after_a_burst(snap_compare: Any) -> None:
    assert snap_compare(scenarios.make_app(), terminal_size=(80, 24), run_before=scenarios.l7_burst)


def test_configuration_5_least_request_with_a_slow_pod(snap_compare: Any) -> None:
    assert snap_compare(scenarios.make_app(), terminal_size=(80, 24), run_before=scenarios.least_request_slow_pod)


def test_configuration_6_scaled_up_to_six_pods(snap_compare: Any) -> None:
    app = scenarios.make_configuration_app(configuration_age=600.0)
    assert snap_compare(app, terminal_size=(80, 24), run_before=scenarios.scaled_up)


def test_configuration_6_wide(snap_compare: Any) -> None:
    app = scenarios.make_configuration_app(configuration_age=600.0)
    assert snap_compare(app, terminal_size=(140, 40), run_before=scenarios.scaled_up)


# --- the teaching layer (issue 13) ---------------------------------------------------------------


def test_replay_step_5_connection_pinning(snap_compare: Any) -> None:
    assert snap_compare(scenarios.make_app(), terminal_size=(120, 36), run_before=scenarios.replay_pinned)


def test_replay_step_5_at_80x24(snap_compare: Any) -> None:
    assert snap_compare(scenarios.make_app(), terminal_size=(80, 24), run_before=scenarios.replay_pinned)


def test_chat_with_two_answers(snap_compare: Any) -> None:
    assert snap_compare(scenarios.make_app(), terminal_size=(120, 36), run_before=scenarios.chat_two_answers)


def test_history_after_a_policy_switch(snap_compare: Any) -> None:
    assert snap_compare(scenarios.make_app(), terminal_size=(120, 36), run_before=scenarios.history_after_switch)
