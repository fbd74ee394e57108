"""2-h windows of one participant's streams and their features, shared by the AI-READI reader and the CGM /
wearable importers (docs/architecture.md, "Window features").

Rules (documented choices):
- windows: 2 h long, 1-h stride (50 % overlap), one starting on every local clock hour the streams cover,
  [start, start + 2 h);
- sampling interval: the participant's median CGM reading interval (whole minutes); a window needs >= 50 % of
  the readings that interval implies (Dexcom 5 min: 12 of 24; Libre 15 min: 4 of 8);
- hyperglycaemic events (level 1, Battelino 2023): >= 15 min of consecutive readings > 180 mg/dL
  (ceil(15 / interval) readings: 3 at 5 min, 1 at 15 min); an event ends after >= 15 min of readings <= 180
  or a CGM gap longer than two intervals; it lasts from its first to its last reading above 180. A window
  counts the events that OVERLAP it (`hyper_rule="overlap"`, the default: "hyperglycaemia in this window") or
  those that START in it (`hyper_rule="start"`); with either rule one event can count in two overlapping windows;
- mean_glucose, time_in_range_pct (70-180 mg/dL inclusive): over the window's readings;
- steps (when used): mean_steps = window step sum / 120 (steps per minute); a record belongs to the hour of its
  interval END; a window without any activity record is dropped (missing data is not zero steps);
- nights (when used): staged epochs (awake/light/deep/rem; epochs > 4 h dropped as converter artefacts) belong
  to night = local date of (start - 12 h); nights with < 120 staged minutes are dropped; a window starting on
  local date D uses night D - 1;
- stress label (when used): per local day, mean stress (negatives dropped) > 75 -> 1, else 0, from >= 20
  readings; a window takes its start date's label.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .streams import STAGES

WINDOW_HOURS = 2
MIN_CGM_FRACTION = 0.5
DEFAULT_INTERVAL_MIN = 5.0
HYPER_THRESHOLD = 180.0
TIR_LOW, TIR_HIGH = 70.0, 180.0
EVENT_MINUTES = 15.0
MAX_EPOCH = pd.Timedelta(hours=4)
MIN_NIGHT_MINUTES = 120.0
MIN_STRESS_READINGS = 20
STRESS_THRESHOLD = 75.0
HYPER_RULES = ("overlap", "start")
HYPER_RULE_TEXT = {"overlap": "that overlap the window (any part of the event inside it)",
                   "start": "that start in the window"}
DROP_REASONS = ("cgm_coverage", "no_steps", "no_night", "no_label")
STAGE_COLUMNS = [f"{s}_pct" for s in STAGES]


@dataclass(frozen=True)
class WindowRules:
    """Which streams a window needs, where its label comes from and how hyperglycaemic events are counted."""

    steps: bool = True              # mean_steps, and a window needs an activity record
    sleep: bool = True              # last night's stage shares, and a window needs a staged night
    stress_label: bool = True       # label = the day's mean stress > 75, and a window needs that day's label
    hyper_rule: str = "overlap"     # "overlap" or "start"

    def __post_init__(self):
        if self.hyper_rule not in HYPER_RULES:
            raise ValueError(f"hyper_rule must be one of {HYPER_RULES}, got {self.hyper_rule!r}")


def cgm_interval(cgm: pd.Series) -> float:
    """The median interval between consecutive readings in whole minutes (>= 1; 5 with fewer than 2 readings)."""
    if len(cgm) < 2:
        return DEFAULT_INTERVAL_MIN
    d = np.diff(cgm.index.asi8)
    d = d[d > 0]
    return max(1.0, float(round(np.median(d) / 60e9))) if len(d) else DEFAULT_INTERVAL_MIN


def hyper_events(cgm: pd.Series, interval: float | None = None) -> pd.DataFrame:
    """Level-1 hyperglycaemic events: columns start and end (first and last reading above 180 mg/dL)."""
    cgm = cgm.sort_index()
    empty = pd.DataFrame({"start": cgm.index[:0], "end": cgm.index[:0]})
    if len(cgm) == 0:
        return empty
    interval = interval or cgm_interval(cgm)
    n_min = math.ceil(EVENT_MINUTES / interval - 1e-9)
    t = cgm.index.asi8
    above = cgm.to_numpy() > HYPER_THRESHOLD
    gap = np.diff(t) > 2 * interval * 60e9
    new_run = np.r_[True, (above[1:] != above[:-1]) | gap]
    starts = np.flatnonzero(new_run)
    length = np.diff(np.r_[starts, len(above)])
    run_above = above[starts]
    long_run = length >= n_min
    group = np.cumsum((~run_above & long_run) | np.r_[True, gap][starts])    # an event ends where a group ends
    qualifying = np.flatnonzero(run_above & long_run)
    if not len(qualifying):
        return empty
    first = qualifying[np.r_[True, group[qualifying][1:] > group[qualifying][:-1]]]
    reading_group = group[np.cumsum(new_run) - 1]
    last_above = pd.Series(np.flatnonzero(above)).groupby(reading_group[above]).max()
    return pd.DataFrame({"start": cgm.index[starts[first]], "end": cgm.index[last_above[group[first]].to_numpy()]})


def night_stages(sleep: pd.DataFrame) -> pd.DataFrame:
    """Per night (local date of start - 12 h): awake/light/deep/rem % of staged minutes (index = night date)."""
    if len(sleep) == 0:
        return pd.DataFrame(columns=STAGE_COLUMNS, index=pd.Index([], name="night"), dtype=float)
    dur = sleep["end"] - sleep["start"]
    ep = sleep[sleep["stage"].isin(STAGES) & (dur <= MAX_EPOCH)]
    minutes = (ep["end"] - ep["start"]).dt.total_seconds() / 60.0
    night = (ep["start"].dt.tz_localize(None) - pd.Timedelta(hours=12)).dt.date
    table = minutes.groupby([night.rename("night"), ep["stage"]]).sum().unstack("stage")
    table = table.reindex(columns=list(STAGES)).fillna(0.0)
    total = table.sum(axis=1)
    table = table[total >= MIN_NIGHT_MINUTES]
    pct = table.div(table.sum(axis=1), axis=0) * 100.0
    pct.columns = STAGE_COLUMNS
    return pct


def daily_labels(stress: pd.Series) -> pd.DataFrame:
    """Per local day: mean stress (negatives dropped), reading count and label (mean > 75)."""
    s = stress[stress >= 0]
    day = pd.Index(s.index.tz_localize(None).date, name="date")
    g = s.groupby(day).agg(["mean", "count"]).rename(columns={"mean": "mean_stress", "count": "n_stress"})
    g = g[g["n_stress"] >= MIN_STRESS_READINGS]
    g["label"] = (g["mean_stress"] > STRESS_THRESHOLD).astype(int)
    return g


def _hour_key(index: pd.DatetimeIndex, interval_end: bool = False) -> pd.DatetimeIndex:
    """UTC hour bin of each timestamp (bins are local clock hours: the zones used have whole-hour offsets)."""
    utc = index.tz_convert("UTC")
    if interval_end:
        utc = utc - pd.Timedelta(1, "ns")
    return utc.floor("h")


def _event_counts(events: pd.DataFrame, grid: pd.DatetimeIndex, rule: str) -> np.ndarray:
    """Events per window [grid[i], grid[i] + 2 h): overlapping it, or starting in it."""
    pos = np.arange(len(grid))
    first = np.sort(grid.get_indexer(_hour_key(pd.DatetimeIndex(events["start"]))))
    started_by_end = np.searchsorted(first, pos + WINDOW_HOURS - 1, side="right")
    if rule == "start":
        return started_by_end - np.searchsorted(first, pos, side="left")
    last = np.sort(grid.get_indexer(_hour_key(pd.DatetimeIndex(events["end"]))))
    return started_by_end - np.searchsorted(last, pos, side="left")


def participant_windows(ps, rules: WindowRules = WindowRules()) -> tuple[pd.DataFrame, dict[str, int]]:
    """The kept 2-h windows of one participant (a ParticipantStreams) with their features and drop counts.

    Columns: window_start, window_end (local), mean_glucose, time_in_range_pct, hyper_events, then mean_steps,
    the four stage shares and label as `rules` asks. Counts hold the first failing reason of each dropped window.
    """
    counts = dict.fromkeys(DROP_REASONS, 0)
    if not len(ps.cgm):
        return pd.DataFrame(), counts
    cgm = ps.cgm
    interval = cgm_interval(cgm)
    ck = _hour_key(cgm.index)
    sk = _hour_key(ps.steps.index, interval_end=True)
    keys = [ck] + [k for k, used in ((sk, rules.steps), (_hour_key(ps.stress.index), rules.stress_label))
                   if used and len(k)]
    grid = pd.date_range(min(k.min() for k in keys), max(k.max() for k in keys), freq="h", name="hour")
    hourly = pd.DataFrame({
        "n": cgm.groupby(ck).size(),
        "gsum": cgm.groupby(ck).sum(),
        "in_range": cgm.between(TIR_LOW, TIR_HIGH).groupby(ck).sum(),
    }).reindex(grid, fill_value=0)
    hourly["steps"] = ps.steps.groupby(sk).sum().reindex(grid, fill_value=0)
    hourly["n_steps"] = ps.steps.groupby(sk).size().reindex(grid, fill_value=0)
    hourly = hourly.astype(float)
    win = hourly + hourly.shift(-(WINDOW_HOURS - 1), fill_value=0.0)   # window [h, h + 2 h)

    start_local = grid.tz_convert(ps.tz)
    n = win["n"].where(win["n"] > 0)
    w = pd.DataFrame({
        "window_start": start_local,
        "window_end": start_local + pd.Timedelta(hours=WINDOW_HOURS),
        "mean_glucose": (win["gsum"] / n).to_numpy(),
        "time_in_range_pct": (100.0 * win["in_range"] / n).to_numpy(),
        "hyper_events": _event_counts(hyper_events(cgm, interval), grid, rules.hyper_rule),
    })
    ok = {"cgm_coverage": win["n"].to_numpy() >= MIN_CGM_FRACTION * WINDOW_HOURS * 60.0 / interval}
    if rules.steps:
        w["mean_steps"] = win["steps"].to_numpy() / (60.0 * WINDOW_HOURS)
        ok["no_steps"] = win["n_steps"].to_numpy() > 0
    if rules.sleep:
        prev_night = (start_local.tz_localize(None).normalize() - pd.Timedelta(days=1)).date
        w = pd.concat([w, night_stages(ps.sleep).reindex(prev_night).reset_index(drop=True)], axis=1)
        ok["no_night"] = w["awake_pct"].notna().to_numpy()
    if rules.stress_label:
        day = start_local.tz_localize(None).normalize().date
        w["label"] = daily_labels(ps.stress)["label"].reindex(day).to_numpy()
        ok["no_label"] = w["label"].notna().to_numpy()
    keep = np.ones(len(w), dtype=bool)
    for reason in DROP_REASONS:
        if reason in ok:
            counts[reason] = int((keep & ~ok[reason]).sum())      # first failing reason only
            keep &= ok[reason]
    return w[keep].reset_index(drop=True), counts
