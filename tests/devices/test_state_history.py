"""StateHistory: a value's recent changes, answering what it was at a past wall time."""

from __future__ import annotations

import pytest

from devices.state_history import StateHistory, StateHistoryError


def test_the_value_at_a_time_is_that_of_the_last_change_at_or_before_it():
    h = StateHistory("shutter 's'", "closed", 100.0, maxlen=8)
    h.record("open", 101.0)
    h.record("closed", 103.0)
    assert [h.at(t) for t in (50.0, 100.0, 100.9, 101.0, 102.9, 103.0, 1e12)] == \
        ["closed", "closed", "closed", "open", "open", "closed", "closed"]
    assert h.latest == "closed"


def test_a_repeated_value_is_not_a_change():
    h = StateHistory("beam", 1.0, 0.0, maxlen=4)
    for t in range(1, 100):
        h.record(1.0, float(t))
    assert len(h) == 1
    h.record(0.5, 200.0)
    assert len(h) == 2 and h.at(199.0) == 1.0 and h.at(200.0) == 0.5


def test_a_clock_stepping_back_keeps_the_order_of_the_changes():
    h = StateHistory("shutter 's'", "closed", 10.0, maxlen=4)
    h.record("open", 20.0)
    h.record("closed", 15.0)  # (wall clock stepped back by an NTP correction)
    assert h.at(19.0) == "closed" and h.at(20.0) == "closed" and h.latest == "closed"


def test_memory_is_bounded_and_a_forgotten_time_is_an_error_not_a_guess():
    h = StateHistory("beam monitor 'ring'", 0, 0.0, maxlen=10)
    for i in range(1, 1001):
        h.record(i, float(i))
    assert 10 <= len(h) <= 20
    assert h.at(1000.5) == 1000 and h.at(995.0) == 995  # recent changes exact
    with pytest.raises(StateHistoryError,
                       match=r"beam monitor 'ring': state at wall time 3\.000000 asked, "
                             r"\d+\.\d+ s before the oldest change still kept "
                             r"\(the last 10 changes are kept\)"):
        h.at(3.0)


def test_maxlen_must_be_positive():
    with pytest.raises(ValueError, match="shutter 'x': history maxlen must be >= 1, got 0"):
        StateHistory("shutter 'x'", "open", 0.0, maxlen=0)
