"""Window features checked against numbers computed by hand on tiny in-memory streams."""

import numpy as np
import pandas as pd
import pytest

from sensecf.data.aireadi.features import OUTPUT_COLUMNS, participant_rows
from sensecf.data.aireadi.reader import ParticipantStreams
from sensecf.data.windows import daily_labels, hyper_events, night_stages, participant_windows


def hyper_event_starts(cgm: pd.Series) -> list:
    return list(hyper_events(cgm)["start"])

TZ = "America/Los_Angeles"


def ts(s: str) -> pd.Timestamp:
    return pd.Timestamp(s, tz=TZ)


def cgm_series(start: str, values, step_min: int = 5) -> pd.Series:
    idx = pd.date_range(ts(start), periods=len(values), freq=f"{step_min}min")
    return pd.Series(np.asarray(values, dtype=float), index=idx)


@pytest.mark.parametrize("values, n_events", [
    ([190, 190, 190, 150, 150, 190, 190, 190], 1),        # dip of 10 min does not end the event
    ([190, 190, 190, 150, 150, 150, 190, 190, 190], 2),   # 15 min <= 180 ends it -> a second event
    ([190, 190, 150, 190, 190, 150], 0),                  # never 15 consecutive minutes above
    ([181, 181, 181], 1),
    ([180, 180, 180, 180], 0),                            # 180 is not above 180
])
def test_hyper_events_consensus_rule(values, n_events):
    assert len(hyper_event_starts(cgm_series("2023-09-01 08:00", values))) == n_events


def test_hyper_event_start_time_and_gap_split():
    s = pd.concat([cgm_series("2023-09-01 08:00", [150, 200, 200, 200]),
                   cgm_series("2023-09-01 08:45", [200, 200, 200])])      # 30-min gap -> a new event
    starts = hyper_event_starts(s)
    assert list(starts) == [ts("2023-09-01 08:05"), ts("2023-09-01 08:45")]


def test_night_stage_percentages_by_hand():
    ep = [("light", "2023-08-31 23:00", "2023-08-31 23:30"), ("deep", "2023-08-31 23:30", "2023-09-01 00:30"),
          ("rem", "2023-09-01 00:30", "2023-09-01 01:00"), ("awake", "2023-09-01 01:00", "2023-09-01 01:10"),
          ("light", "2023-09-01 01:10", "2023-09-01 03:00"), ("unknown", "2023-09-01 03:00", "2023-09-01 03:20"),
          ("light", "2023-09-01 03:20", "2023-09-01 08:30"),             # 5 h 10 min epoch: converter artefact
          ("deep", "2023-09-01 14:00", "2023-09-01 14:30")]              # afternoon nap: night of Sep 1, < 2 h
    sleep = pd.DataFrame({"stage": [e[0] for e in ep], "start": [ts(e[1]) for e in ep],
                          "end": [ts(e[2]) for e in ep]})
    n = night_stages(sleep)
    assert list(n.index) == [pd.Timestamp("2023-08-31").date()]
    # staged minutes: light 30 + 110 = 140, deep 60, rem 30, awake 10 -> 240
    assert n.iloc[0].tolist() == pytest.approx([100 * 10 / 240, 100 * 140 / 240, 100 * 60 / 240, 100 * 30 / 240])


def test_daily_label_threshold_and_minimum_readings():
    day1 = cgm_series("2023-09-01 09:00", [80] * 20 + [70] * 10, 3)      # mean 76.67 > 75 -> 1
    day2 = cgm_series("2023-09-02 09:00", [75] * 25, 3)                  # mean 75 is not > 75 -> 0
    day3 = cgm_series("2023-09-03 09:00", [99] * 10, 3)                  # too few readings -> no label
    lab = daily_labels(pd.concat([day1, day2, day3]))
    assert lab["label"].to_dict() == {pd.Timestamp("2023-09-01").date(): 1, pd.Timestamp("2023-09-02").date(): 0}
    assert lab["mean_stress"].iloc[0] == pytest.approx(230 / 3)


def hand_streams() -> ParticipantStreams:
    # CGM 08:00-09:55 (24 readings): 12 x 100, then 6 x 200, then 6 x 60; then 3 readings from 11:00
    cgm = pd.concat([cgm_series("2023-09-01 08:00", [100] * 12 + [200] * 6 + [60] * 6),
                     cgm_series("2023-09-01 11:00", [100] * 3)])
    # steps by interval end: 08:15 -> 100, 08:30 -> missing, 09:00 -> 140 (hour 8), 10:00 -> 60 (hour 9)
    steps = pd.Series([100.0, 140.0, 60.0], index=[ts("2023-09-01 08:15"), ts("2023-09-01 09:00"),
                                                   ts("2023-09-01 10:00")])
    stress = cgm_series("2023-09-01 07:00", [80] * 20 + [70] * 10, 3)
    sleep = pd.DataFrame({"stage": ["light", "deep", "rem", "awake"],
                          "start": [ts("2023-08-31 23:00"), ts("2023-09-01 00:00"), ts("2023-09-01 01:30"),
                                    ts("2023-09-01 02:00")],
                          "end": [ts("2023-09-01 00:00"), ts("2023-09-01 01:30"), ts("2023-09-01 02:00"),
                                  ts("2023-09-01 02:30")]})
    return ParticipantStreams("1001", TZ, cgm=cgm, steps=steps, stress=stress, sleep=sleep)


def test_window_features_by_hand():
    w, dropped = participant_windows(hand_streams())
    w = w.set_index(w["window_start"].map(lambda t: t.strftime("%H:%M")))
    # candidate windows start 07:00 (first stress reading) ... 11:00; 07:00 and 09:00 hold exactly 12 of 24
    # readings (kept: >= 50 %), 10:00 and 11:00 only 3 (dropped)
    assert list(w.index) == ["07:00", "08:00", "09:00"]
    r = w.loc["08:00"]
    assert r["mean_glucose"] == pytest.approx((12 * 100 + 6 * 200 + 6 * 60) / 24)
    assert r["time_in_range_pct"] == pytest.approx(50.0)
    assert r["hyper_events"] == 1
    assert r["mean_steps"] == pytest.approx((100 + 140 + 60) / 120)
    assert w.loc["09:00", "hyper_events"] == 1 and w.loc["09:00", "mean_steps"] == pytest.approx(60 / 120)
    assert w.loc["09:00", "mean_glucose"] == pytest.approx((6 * 200 + 6 * 60) / 12)
    assert w.loc["07:00", "hyper_events"] == 0 and w.loc["07:00", "time_in_range_pct"] == 100.0
    # night of Aug 31: light 60, deep 90, rem 30, awake 30 of 210 min; day mean stress 76.67 -> label 1
    assert r[["awake_pct", "light_pct", "deep_pct", "rem_pct"]].tolist() == pytest.approx(
        [100 * 30 / 210, 100 * 60 / 210, 100 * 90 / 210, 100 * 30 / 210])
    assert (w["label"] == 1).all()
    assert dropped["cgm_coverage"] == 2


def test_windows_without_night_or_label_are_dropped():
    ps = hand_streams()
    ps.sleep = ps.sleep.iloc[:0]
    w, dropped = participant_windows(ps)
    assert len(w) == 0 and dropped["no_night"] == 3
    ps = hand_streams()
    ps.stress = ps.stress.iloc[:10]
    w, dropped = participant_windows(ps)
    assert len(w) == 0 and dropped["no_label"] == 3


def test_participant_rows_columns_and_immutables():
    info = {"age": 61.0, "gender": "female", "medication": "insulin", "subgroup": "insulin_t2dm",
            "recommended_split": "test"}
    out, dropped = participant_rows(hand_streams(), info)
    assert list(out.columns) == OUTPUT_COLUMNS and len(out) == 3 and (out["participant_id"] == "1001").all()
    assert out["window_start"].iloc[1] == "2023-09-01T08:00:00-07:00"
    assert out["window_end"].iloc[1] == "2023-09-01T10:00:00-07:00"
    assert out[["age", "gender", "medication", "subgroup", "recommended_split"]].iloc[0].tolist() == [
        61, "female", "insulin", "insulin_t2dm", "test"]
    assert dropped["cgm_coverage"] == 2
    none, dropped = participant_rows(hand_streams(), {**info, "age": None})
    assert len(none) == 0 and list(none.columns) == OUTPUT_COLUMNS and dropped["no_age"] == 3
