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
from rich.progress import track

from ...errors import DataError
from .schema import aireadi_stress_schema
from ..dataset import Dataset
from .reader import STAGES, Cohort, ParticipantStreams, _console, read_cohort

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


def extract_features(cohort: Cohort, progress: bool = True) -> pd.DataFrame:
    """Window feature table (columns OUTPUT_COLUMNS); drop counts per reason in `frame.attrs["dropped"]`."""
    parts = cohort.participants.set_index("participant_id")
    frames, dropped = [], dict.fromkeys(DROP_REASONS, 0)
    pids = list(cohort.streams)
    it = track(pids, description="extracting 2-h windows", console=_console) if progress else pids
    for pid in it:
        w, counts = participant_windows(cohort.streams[pid])
        for k, v in counts.items():
            dropped[k] += v
        if len(w) == 0:
            continue
        info = parts.loc[pid]
        if pd.isna(info["age"]):
            dropped["no_age"] += len(w)
            continue
        w.insert(0, "participant_id", pid)
        for col in ("age", "gender", "medication", "subgroup", "recommended_split"):
            w[col] = info[col]
        w["window_start"] = w["window_start"].map(pd.Timestamp.isoformat)
        w["window_end"] = w["window_end"].map(pd.Timestamp.isoformat)
        frames.append(w)
    if frames:
        out = pd.concat(frames, ignore_index=True)[OUTPUT_COLUMNS]
    else:
        out = pd.DataFrame(columns=OUTPUT_COLUMNS)
    out["label"] = out["label"].astype(int)
    out["hyper_events"] = out["hyper_events"].astype(int)
    out["age"] = out["age"].astype(int)
    out.attrs["dropped"] = dropped
    return out


def aireadi_dataset(root: str | Path, demographics: Path | None = None, progress: bool = True) -> Dataset:
    """Read an AI-READI root and return the validated window Dataset (notes carry provenance and skips)."""
    cohort = read_cohort(root, demographics=demographics, progress=progress)
    frame = extract_features(cohort, progress=progress)
    dropped = frame.attrs.get("dropped", {})
    if len(frame) == 0:
        raise DataError(f"no 2-h window has enough CGM data, a staged night and a stress label (dropped: "
                        f"{dropped}); version {cohort.version}", file=str(cohort.root))
    schema = aireadi_stress_schema()
    frame = schema.validate_frame(frame, source=str(cohort.root))
    notes = [f"AI-READI {cohort.version} layout at {cohort.root}: {len(cohort.participants)} participant(s) "
             f"listed, {len(cohort.streams)} loaded, {len(cohort.skipped)} skipped, "
             f"{frame['participant_id'].nunique()} contribute windows"]
    notes += cohort.notes
    notes += [f"skipped participant {pid}: {reason}" for pid, _, reason in cohort.skipped]
    notes.append("windows dropped: " + ", ".join(f"{k}={v}" for k, v in dropped.items()))
    return Dataset(name="aireadi", schema=schema, frame=frame, notes=notes)
