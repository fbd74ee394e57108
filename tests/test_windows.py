"""Shared window rules: sampling interval, hyperglycaemic events with start and end, overlap vs start counting."""

import numpy as np
import pandas as pd
import pytest

from sensecf.data.aireadi.reader import ParticipantStreams
from sensecf.data.windows import WindowRules, cgm_interval, hyper_events, participant_windows

TZ = "America/Los_Angeles"


def series(start: str, values, step_min: int = 5) -> pd.Series:
    idx = pd.date_range(pd.Timestamp(start, tz=TZ), periods=len(values), freq=f"{step_min}min")
    return pd.Series(np.asarray(values, dtype=float), index=idx)


def ts(s: str) -> pd.Timestamp:
    return pd.Timestamp(s, tz=TZ)


def test_event_ends_at_its_last_reading_above_180():
    ev = hyper_events(series("2023-09-01 08:00", [190, 190, 190, 150, 190, 150, 150, 150, 190]))
    assert list(ev["start"]) == [ts("2023-09-01 08:00")]
    assert list(ev["end"]) == [ts("2023-09-01 08:20")]          # the short dip does not end it; 3 readings do


def test_fifteen_minute_sampling_needs_one_reading_and_tolerates_30_min_steps():
    s = series("2023-09-01 08:00", [150, 200, 150, 150, 200, 200], 15)
    assert cgm_interval(s) == 15
    ev = hyper_events(s)
    assert list(ev["start"]) == [ts("2023-09-01 08:15"), ts("2023-09-01 09:00")]


def no_extras(rule: str = "overlap") -> WindowRules:
    return WindowRules(steps=False, sleep=False, stress_label=False, hyper_rule=rule)


@pytest.mark.parametrize("rule, expected", [("overlap", [1, 1, 1, 1]), ("start", [1, 1, 0, 0])])
def test_a_three_hour_event_counts_where_it_overlaps_or_where_it_starts(rule, expected):
    values = [100] * 12 + [200] * 36 + [100] * 12                 # 08:00-09:00 normal, 09:00-12:00 high
    ps = ParticipantStreams("p", TZ, cgm=series("2023-09-01 08:00", values))
    w, _ = participant_windows(ps, no_extras(rule))
    counts = dict(zip(w["window_start"].dt.hour, w["hyper_events"]))
    assert [counts[h] for h in (8, 9, 10, 11)] == expected


def test_coverage_follows_the_sampling_interval():
    sparse = series("2023-09-01 08:00", [120] * 8, 15)             # 2 h of 15-min readings
    w, counts = participant_windows(ParticipantStreams("p", TZ, cgm=sparse), no_extras())
    assert len(w) == 2 and counts["cgm_coverage"] == 0
    thin = series("2023-09-01 08:00", [120] * 11, 5)               # 55 min of 5-min readings: 11 < 12
    w, counts = participant_windows(ParticipantStreams("p", TZ, cgm=thin), no_extras())
    assert len(w) == 0 and counts["cgm_coverage"] == 1


def test_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="hyper_rule"):
        WindowRules(hyper_rule="middle")
