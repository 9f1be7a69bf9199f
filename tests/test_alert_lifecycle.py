"""The alert lifecycle on crafted series: each kind fires and resolves exactly when it
should, and never flaps inside the hysteresis band."""

from __future__ import annotations

from dataclasses import replace

import pytest

from shopwatch.alerts.lifecycle import Condition, Reading, State, Timing, advance, run


def minutes(*values: float | None) -> list[Reading]:
    """One reading a minute from t = 0."""
    return [Reading(60.0 * i, v) for i, v in enumerate(values)]


def test_a_threshold_with_for_fires_after_it_and_resolves_on_a_clear_value() -> None:
    error_rate = Condition(">", 0.05, clear=0.04)
    # t=1 min breaches (pending), breaches at 2 and 3 min: 2 minutes after the start of
    # the breach it fires (t=3); 0.05 and 0.045 are in the band: still firing; 0.03 is
    # clear: resolved at t=6.
    state, events = run(minutes(0.01, 0.06, 0.07, 0.08, 0.05, 0.045, 0.03, 0.02),
                        error_rate, Timing(for_s=120))
    assert events == [(180.0, "firing"), (360.0, "resolved")]
    assert state == State()


def test_a_breach_shorter_than_for_never_fires() -> None:
    state, events = run(minutes(0.06, 0.07, 0.01, 0.06, 0.02), Condition(">", 0.05),
                        Timing(for_s=180))
    assert events == [] and state.phase == "inactive"


def test_hovering_at_the_threshold_does_not_flap_with_hysteresis() -> None:
    hovering = [0.049, 0.051] * 30  # an hour around the threshold
    _, events = run(minutes(*hovering), Condition(">", 0.05, clear=0.04), Timing())
    assert events == [(60.0, "firing")]  # fired once, never resolved: no storm
    # Without a band the same series would notify 60 times: what hysteresis is for.
    _, flapping = run(minutes(*hovering), Condition(">", 0.05), Timing())
    assert len(flapping) == 59


def test_resolve_after_needs_clear_readings_for_that_long() -> None:
    timing = Timing(resolve_after_s=180)
    _, events = run(minutes(0.9, 0.0, 0.0, 0.9, 0.0, 0.0, 0.0, 0.0), Condition(">", 0.5),
                    timing)
    # Clear at 1-2 min, breached again at 3: no resolve; clear from 4, resolved at 7.
    assert events == [(0.0, "firing"), (420.0, "resolved")]


def test_below_a_threshold_for_falling_series() -> None:
    orders = Condition("<", 10, clear=12)
    _, events = run(minutes(20, 9, 8, 11, 11, 12, 30), orders, Timing(for_s=60))
    assert events == [(120.0, "firing"), (300.0, "resolved")]


def test_no_data_rules_fire_when_events_stop_and_resolve_when_they_return() -> None:
    stopped = Condition(">", 0, on_no_data="breach")
    _, events = run(minutes(5, 4, None, None, None, None, None, 3, None), stopped,
                    Timing(for_s=240))
    # Missing from t=2 min: pending, firing at t=6 (4 minutes), resolved by data at t=7;
    # the gap at t=8 is a new pending alert.
    assert events == [(360.0, "firing"), (420.0, "resolved")]
    # Other rules ignore missing readings: no change either way.
    _, quiet = run(minutes(0.9, None, None, 0.9), Condition(">", 0.5), Timing(for_s=120))
    assert quiet == [(180.0, "firing")]


def test_renotify_while_firing_until_acknowledged() -> None:
    condition, timing = Condition(">", 1), Timing(renotify_s=3600)
    state, events = run([Reading(0, 2), Reading(1800, 2), Reading(3600, 2),
                         Reading(7200, 2)], condition, timing)
    assert events == [(0.0, "firing"), (3600.0, "renotify"), (7200.0, "renotify")]
    acked = replace(state, acknowledged=True)
    state, events = run([Reading(10800, 2), Reading(14400, 0)], condition, timing, acked)
    assert events == [(14400.0, "resolved")]


def test_the_worst_value_is_kept_while_active() -> None:
    state, _ = run(minutes(0.06, 0.09, 0.07), Condition(">", 0.05), Timing(for_s=600))
    assert state.phase == "pending" and state.worst == 0.09
    state, event = advance(state, Reading(900, 0.08), Condition(">", 0.05),
                           Timing(for_s=600))
    assert event == "firing" and state.since == 0.0


def test_a_clear_bound_on_the_wrong_side_is_refused() -> None:
    with pytest.raises(ValueError, match=r"clear: 0.06 must be at or below the threshold "
                                         r"0.05 \(the healthy side of >\)"):
        Condition(">", 0.05, clear=0.06)
    with pytest.raises(ValueError, match="must be at or above"):
        Condition("<", 10, clear=8)
