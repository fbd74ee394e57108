"""The paper's window features from an AI-READI cohort (see docs/architecture.md, "AI-READI features").

Rules (documented choices):
- windows: 2 h long, 1-h stride (50 % overlap), starting on every local clock hour covered by the streams;
  a window is [start, start + 2 h);
- CGM coverage: a window needs >= 12 of the 24 expected 5-min readings (50 %), else it is dropped;
- steps: mean_steps = steps in the window / 120 (steps per minute); a step record belongs to the hour of its
  interval END (an interval ending 10:00 counts in 09:00-10:00); a window with no activity record is dropped
  (absent data is not zero steps);
- hyper_events: consensus level-1 events (Battelino 2023): an event starts with >= 3 consecutive readings
  (15 min) > 180 mg/dL and ends after >= 3 consecutive readings <= 180 or a CGM gap > 10 min; each event is
  counted in the window where it STARTS (so overlapping windows can both count it);
- time_in_range_pct: share of the window's readings within 70-180 mg/dL inclusive; mean_glucose their mean;
- nights: every staged sleep epoch (awake/light/deep/rem; epochs > 4 h dropped as converter artefacts) belongs
  to night = local date of (epoch start - 12 h); stage % = stage minutes / staged minutes; nights with
  < 120 staged minutes are dropped;
- night join: a window whose start has local date D uses night D - 1 (the sleep that began the evening before
  day D), also for windows between midnight and waking (they overlap that night);
- label: per local day, mean Garmin stress (values < 0 dropped) > 75 -> 1 else 0; a day needs >= 20 valid
  readings; a window takes the label of its start's local date; windows without night or label are dropped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .schema import aireadi_stress_schema
from ..dataset import Dataset
from .reader import STAGES, ParticipantStreams

WINDOW_HOURS = 2
EXPECTED_READINGS = WINDOW_HOURS * 12          # Dexcom G6: one reading every 5 min
MIN_CGM_FRACTION = 0.5
HYPER_THRESHOLD = 180.0
TIR_LOW, TIR_HIGH = 70.0, 180.0
EVENT_MIN_READINGS = 3                          # 15 min at 5-min sampling
MAX_READING_GAP = pd.Timedelta(minutes=10)
MAX_EPOCH = pd.Timedelta(hours=4)
MIN_NIGHT_MINUTES = 120.0
MIN_STRESS_READINGS = 20
STRESS_THRESHOLD = 75.0
DROP_REASONS = ("cgm_coverage", "no_steps", "no_night", "no_label", "no_age")

OUTPUT_COLUMNS = ["participant_id", "window_start", "window_end"] + aireadi_stress_schema().feature_names + [
    "label", "recommended_split"]


def hyper_event_starts(cgm: pd.Series) -> pd.DatetimeIndex:
    """Start times of level-1 hyperglycaemic events (>= 15 min > 180 mg/dL; ends after >= 15 min <= 180 or a gap)."""
    cgm = cgm.sort_index()
    if len(cgm) == 0:
        return cgm.index[:0]
    t = cgm.index.asi8
    above = cgm.to_numpy() > HYPER_THRESHOLD
    gap = np.diff(t) > MAX_READING_GAP.value
    new_run = np.r_[True, (above[1:] != above[:-1]) | gap]
    starts = np.flatnonzero(new_run)
    length = np.diff(np.r_[starts, len(above)])
    run_above = above[starts]
    after_gap = np.r_[True, gap][starts]
    long_run = length >= EVENT_MIN_READINGS
    resets = np.cumsum((~run_above & long_run) | after_gap)
    qualifying = np.flatnonzero(run_above & long_run)
    first_of_event = np.r_[True, resets[qualifying][1:] > resets[qualifying][:-1]] if len(qualifying) else []
    return cgm.index[starts[qualifying[first_of_event]]] if len(qualifying) else cgm.index[:0]


def night_stages(sleep: pd.DataFrame) -> pd.DataFrame:
    """Per night (local date of start - 12 h): awake/light/deep/rem % of staged minutes (index = night date)."""
    cols = [f"{s}_pct" for s in STAGES]
    if len(sleep) == 0:
        return pd.DataFrame(columns=cols, index=pd.Index([], name="night"), dtype=float)
    dur = sleep["end"] - sleep["start"]
    ep = sleep[sleep["stage"].isin(STAGES) & (dur <= MAX_EPOCH)]
    minutes = (ep["end"] - ep["start"]).dt.total_seconds() / 60.0
    night = (ep["start"].dt.tz_localize(None) - pd.Timedelta(hours=12)).dt.date
    table = minutes.groupby([night.rename("night"), ep["stage"]]).sum().unstack("stage")
    table = table.reindex(columns=list(STAGES)).fillna(0.0)
    total = table.sum(axis=1)
    table = table[total >= MIN_NIGHT_MINUTES]
    pct = table.div(table.sum(axis=1), axis=0) * 100.0
    pct.columns = cols
    return pct


def daily_labels(stress: pd.Series) -> pd.DataFrame:
    """Per local day: mean stress (negatives already dropped), reading count and label (mean > 75)."""
    s = stress[stress >= 0]
    day = pd.Index(s.index.tz_localize(None).date, name="date")
    g = s.groupby(day).agg(["mean", "count"]).rename(columns={"mean": "mean_stress", "count": "n_stress"})
    g = g[g["n_stress"] >= MIN_STRESS_READINGS]
    g["label"] = (g["mean_stress"] > STRESS_THRESHOLD).astype(int)
    return g


def _hour_key(index: pd.DatetimeIndex, interval_end: bool = False) -> pd.DatetimeIndex:
    """UTC hour bin of each timestamp (bins are local clock hours: US zones have whole-hour offsets)."""
    utc = index.tz_convert("UTC")
    if interval_end:
        utc = utc - pd.Timedelta(1, "ns")
    return utc.floor("h")


def participant_windows(ps: ParticipantStreams) -> tuple[pd.DataFrame, dict[str, int]]:
    """All candidate 2-h windows of one participant with their features, night, label and drop reason."""
    counts = dict.fromkeys(DROP_REASONS, 0)
    if not len(ps.cgm):
        return pd.DataFrame(), counts
    cgm = ps.cgm
    ck = _hour_key(cgm.index)
    sk = _hour_key(ps.steps.index, interval_end=True)
    keys = [k for k in (ck, sk, _hour_key(ps.stress.index)) if len(k)]
    grid = pd.date_range(min(k.min() for k in keys), max(k.max() for k in keys), freq="h", name="hour")
    hourly = pd.DataFrame({
        "n": cgm.groupby(ck).size(),
        "gsum": cgm.groupby(ck).sum(),
        "in_range": cgm.between(TIR_LOW, TIR_HIGH).groupby(ck).sum(),
    }).reindex(grid, fill_value=0)
    ev = hyper_event_starts(cgm)
    hourly["events"] = pd.Series(1, index=ev).groupby(_hour_key(ev)).sum().reindex(grid, fill_value=0)
    hourly["steps"] = ps.steps.groupby(sk).sum().reindex(grid, fill_value=0)
    hourly["n_steps"] = ps.steps.groupby(sk).size().reindex(grid, fill_value=0)
    hourly = hourly.astype(float)
    win = hourly + hourly.shift(-(WINDOW_HOURS - 1), fill_value=0.0)   # window [h, h + 2 h)

    start_local = grid.tz_convert(ps.tz)
    w = pd.DataFrame({
        "window_start": start_local,
        "window_end": start_local + pd.Timedelta(hours=WINDOW_HOURS),
        "mean_steps": win["steps"].to_numpy() / (60.0 * WINDOW_HOURS),
        "mean_glucose": (win["gsum"] / win["n"].where(win["n"] > 0)).to_numpy(),
        "hyper_events": win["events"].to_numpy().astype(int),
        "time_in_range_pct": (100.0 * win["in_range"] / win["n"].where(win["n"] > 0)).to_numpy(),
        "n_cgm": win["n"].to_numpy(),
        "n_steps": win["n_steps"].to_numpy(),
    })
    day = pd.Series(start_local.tz_localize(None).normalize().date, index=w.index)
    nights = night_stages(ps.sleep)
    labels = daily_labels(ps.stress)
    prev_night = (start_local.tz_localize(None).normalize() - pd.Timedelta(days=1)).date
    w = pd.concat([w, nights.reindex(prev_night).reset_index(drop=True),
                   labels[["label"]].reindex(day.to_numpy()).reset_index(drop=True)], axis=1)

    ok_cgm = w["n_cgm"] >= MIN_CGM_FRACTION * EXPECTED_READINGS
    ok_steps = w["n_steps"] > 0
    ok_night = w["awake_pct"].notna()
    ok_label = w["label"].notna()
    keep = pd.Series(True, index=w.index)
    for reason, ok in zip(("cgm_coverage", "no_steps", "no_night", "no_label"),
                          (ok_cgm, ok_steps, ok_night, ok_label)):
        counts[reason] = int((keep & ~ok).sum())      # first failing reason only
        keep &= ok
    return w[keep].drop(columns=["n_cgm", "n_steps"]), counts


IMMUTABLE_COLUMNS = ("age", "gender", "medication", "subgroup", "recommended_split")


def participant_rows(ps: ParticipantStreams, info: dict) -> tuple[pd.DataFrame, dict[str, int]]:
    """One participant's output rows (columns OUTPUT_COLUMNS, ISO window times) and drop counts per reason.

    `info` holds the participant's IMMUTABLE_COLUMNS; a participant without an age contributes no rows.
    """
    w, counts = participant_windows(ps)
    if len(w) and pd.isna(info["age"]):
        counts["no_age"] += len(w)
        w = w.iloc[:0]
    if len(w) == 0:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in OUTPUT_COLUMNS}), counts
    w.insert(0, "participant_id", ps.pid)
    for col in IMMUTABLE_COLUMNS:
        w[col] = info[col]
    w["window_start"] = w["window_start"].map(pd.Timestamp.isoformat)
    w["window_end"] = w["window_end"].map(pd.Timestamp.isoformat)
    w = w[OUTPUT_COLUMNS].reset_index(drop=True)
    return w.astype({"label": int, "hyper_events": int, "age": int}), counts


def aireadi_dataset(root: str | Path, demographics: Path | None = None, progress: bool = True,
                    workers: int | None = None) -> Dataset:
    """Read an AI-READI root and return the validated window Dataset (notes carry provenance and skips).

    Extraction runs through `pipeline.extract_cohort` (participants in parallel, into a temporary folder).
    """
    import tempfile

    from .pipeline import extract_cohort, read_table

    with tempfile.TemporaryDirectory(prefix="sensecf-extract-") as tmp:
        summary = extract_cohort(root, Path(tmp) / "features.parquet", demographics=demographics,
                                 workers=workers, progress=progress)
        frame = read_table(summary.out)
    schema = aireadi_stress_schema()
    frame = schema.validate_frame(frame, source=str(summary.root))
    return Dataset(name="aireadi", schema=schema, frame=frame, notes=summary.notes)
