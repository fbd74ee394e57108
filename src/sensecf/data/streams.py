"""What every sensor reader shares (AI-READI and the CGM/wearable importers): the per-participant streams and the
cohort they form, readings cleaned with counts, and the plausible study span of a participant.

Rules (documented choices, docs/data-formats.md):
- glucose: the words "Low"/"LO" -> 39 mg/dL and "High"/"HI" -> 401 mg/dL (the Dexcom convention: below 40 /
  above 400); mmol/L x 18.016 = mg/dL; readings outside the plausible 20-700 mg/dL are dropped and counted;
- stress: Garmin's -1/-2 codes (no reading) are dropped silently, values outside -2..100 are dropped and counted;
- a value that is not a number ("abc", "", null, "high" for stress) is dropped and counted; every count is
  reported per file;
- study span: a participant's timestamps (all streams pooled) outside median +- max(60 days, 3 x interquartile
  range) are dropped and reported, so one stray record (e.g. year 1900) cannot stretch the window grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

STAGES = ("awake", "light", "deep", "rem")
GLUCOSE_LOW, GLUCOSE_HIGH = 39.0, 401.0
GLUCOSE_WORDS = {"low": GLUCOSE_LOW, "lo": GLUCOSE_LOW, "high": GLUCOSE_HIGH, "hi": GLUCOSE_HIGH}
GLUCOSE_PLAUSIBLE = (20.0, 700.0)           # mg/dL
STRESS_PLAUSIBLE = (-2.0, 100.0)            # Garmin 0-100 plus the -1/-2 "no reading" codes
MGDL_PER_MMOL = 18.016
SPAN_MIN_HALF_WIDTH = pd.Timedelta(days=60)
SPAN_IQR_FACTOR = 3.0


@dataclass
class ParticipantStreams:
    """One participant's sensor streams in local time (empty when the modality is missing); `issues` says what was
    dropped from its files (one line each, naming the file)."""

    pid: str
    tz: str
    cgm: pd.Series = None           # mg/dL, indexed by local reading time
    steps: pd.Series = None         # step counts, indexed by local interval end
    stress: pd.Series = None        # stress 0-100, negatives dropped
    sleep: pd.DataFrame = None      # columns start, end (local), stage (awake/light/deep/rem/unknown)
    issues: list[str] = field(default_factory=list)

    def __post_init__(self):
        empty = pd.DatetimeIndex([], tz=self.tz)
        for name in ("cgm", "steps", "stress"):
            if getattr(self, name) is None:
                setattr(self, name, pd.Series([], index=empty, dtype=float, name=name))
        if self.sleep is None:
            self.sleep = pd.DataFrame({"start": pd.Series([], dtype=f"datetime64[ns, {self.tz}]"),
                                       "end": pd.Series([], dtype=f"datetime64[ns, {self.tz}]"),
                                       "stage": pd.Series([], dtype=str)})


@dataclass
class Cohort:
    """Participants table plus per-participant streams; `skipped` lists (pid, file, reason)."""

    root: Path
    version: str
    participants: pd.DataFrame
    streams: dict[str, ParticipantStreams] = field(default_factory=dict)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class ValueReport:
    """Values of one stream of one file that were dropped or mapped, with a few examples each."""

    file: str
    what: str
    unit: str = ""
    not_numeric: int = 0
    implausible: int = 0
    mapped: int = 0
    examples: dict[str, list] = field(default_factory=dict)

    def message(self) -> str | None:
        """One line for the user, or None when nothing was dropped."""
        parts = []
        if self.not_numeric:
            parts.append(f"{self.not_numeric} not a number (e.g. {_examples(self.examples['not_numeric'])})")
        if self.implausible:
            parts.append(f"{self.implausible} outside the plausible range (e.g. "
                         f"{_examples(self.examples['implausible'])} {self.unit})".replace(" )", ")"))
        if not parts:
            return None
        return f"{self.file}: dropped {self.what} reading(s): " + "; ".join(parts)


def _examples(values: list) -> str:
    return ", ".join(repr(v) if isinstance(v, str) or v is None else f"{v:g}" for v in values)


def clean_values(raw, file: str, what: str, plausible: tuple[float, float], words: dict[str, float] | None = None,
                 scale: float = 1.0, unit: str = "") -> tuple[np.ndarray, ValueReport]:
    """Raw readings (numbers, numeric text, words, None) -> floats with NaN where dropped, and what was dropped.

    `words` maps lower-case text to a value (e.g. "low" -> 39); numbers are multiplied by `scale` (a unit
    conversion) before the plausibility check against `plausible` (inclusive).
    """
    s = pd.Series(list(raw), dtype=object)
    report = ValueReport(file, what, unit)
    if not len(s):
        return np.zeros(0), report
    text = s.map(lambda v: v.strip().lower() if isinstance(v, str) else None)
    mapped = text.map(words or {}).astype(float) if words else pd.Series(np.nan, index=s.index)
    num = pd.to_numeric(s.where(mapped.isna()), errors="coerce").astype(float) * scale
    num = num.where(mapped.isna(), mapped)
    bad = num.isna()
    off = ~bad & ((num < plausible[0]) | (num > plausible[1]) | ~np.isfinite(num))
    report.not_numeric, report.implausible, report.mapped = int(bad.sum()), int(off.sum()), int(mapped.notna().sum())
    report.examples = {"not_numeric": list(dict.fromkeys(s[bad].map(_show)))[:3],
                       "implausible": list(dict.fromkeys(num[off]))[:3]}
    return num.where(~off).to_numpy(), report


def _show(v):
    return None if v is None or (isinstance(v, float) and np.isnan(v)) else v


def glucose_mgdl(raw, file: str, mmol: bool = False) -> tuple[np.ndarray, ValueReport]:
    """Glucose readings -> mg/dL (Low/High words mapped, mmol/L converted, implausible values dropped)."""
    words = {k: v / MGDL_PER_MMOL for k, v in GLUCOSE_WORDS.items()} if mmol else GLUCOSE_WORDS
    return clean_values(raw, file, "glucose", GLUCOSE_PLAUSIBLE, words, MGDL_PER_MMOL if mmol else 1.0, "mg/dL")


def plausible_span(times: list[pd.DatetimeIndex]) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """median +- max(60 days, 3 x IQR) of all timestamps pooled (None when there are none)."""
    stamps = [t.asi8 for t in times if len(t)]
    if not stamps:
        return None
    allt = np.concatenate(stamps)
    q25, med, q75 = np.percentile(allt, [25, 50, 75])
    half = max(SPAN_MIN_HALF_WIDTH.value, SPAN_IQR_FACTOR * (q75 - q25))
    tz = next(t.tz for t in times if len(t))
    return (pd.Timestamp(int(med - half), tz="UTC").tz_convert(tz),
            pd.Timestamp(int(med + half), tz="UTC").tz_convert(tz))


def drop_outside_span(ps: ParticipantStreams) -> str | None:
    """Drop the records outside the participant's plausible span, in place; a line for the user, or None."""
    span = plausible_span([ps.cgm.index, ps.steps.index, ps.stress.index, pd.DatetimeIndex(ps.sleep["start"])])
    if span is None:
        return None
    lo, hi = span
    dropped: list[pd.Timestamp] = []
    for name in ("cgm", "steps", "stress"):
        s = getattr(ps, name)
        inside = (s.index >= lo) & (s.index <= hi)
        dropped += list(s.index[~inside])
        setattr(ps, name, s[inside])
    inside = (ps.sleep["start"] >= lo) & (ps.sleep["start"] <= hi)
    dropped += list(ps.sleep["start"][~inside])
    ps.sleep = ps.sleep[inside].reset_index(drop=True)
    if not dropped:
        return None
    return (f"participant {ps.pid}: {len(dropped)} record(s) far outside the study span dropped (e.g. "
            f"{', '.join(str(t) for t in sorted(dropped)[:3])}; kept {lo:%Y-%m-%d} to {hi:%Y-%m-%d}: the median "
            "+- max(60 days, 3 x IQR) of the participant's timestamps)")
