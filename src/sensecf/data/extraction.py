"""CGM / wearable exports -> a window feature Dataset whose features follow the data (docs/data-formats.md).

- modalities decide the features: CGM is required (mean_glucose, time_in_range_pct, hyper_events); steps add
  mean_steps, staged sleep adds the four stage shares; a modality is used when any participant has it, and then
  a participant without it keeps no window (said in the notes);
- the participants file's numeric and categorical columns (age, sex, ...) become immutable features;
- the label: `label` names a participants-file column (or "stress"); without it a participants-file column
  named `label` is used, else Garmin-style stress (day mean > 75); a column with two values is mapped to 0/1
  (0 = the negative-sounding value: 0/false/no/negative/healthy/control/none/normal, else alphabetical; or the
  value given as `positive` is 1 and every other value 0); class 0 is the desired class;
- the schema is built from the features present (actionability, `better`, bounds as in the AI-READI schema;
  mean_glucose bounds widened to the readings seen) and records the hyperglycaemic-event rule;
- every dropped window and participant is counted and explained; when no window is kept the error says why.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError
from ..files import write_csv
from ..schema import FeatureSpec, Schema
from .aireadi.schema import aireadi_stress_schema
from .dataset import Dataset
from .importers import ImportedCohort, read_export
from .importers.common import norm
from .streams import STAGES
from .windows import DROP_REASONS, HYPER_RULE_TEXT, HYPER_RULES, STAGE_COLUMNS, WindowRules, participant_windows

GLUCOSE_FEATURES = ["mean_glucose", "time_in_range_pct", "hyper_events"]
NEGATIVE_WORDS = {"0", "false", "no", "n", "negative", "neg", "healthy", "control", "none", "normal", "absent"}
POSITIVE_WORDS = {"1", "true", "yes", "y", "positive", "pos", "present"}
REASON_TEXT = {"cgm_coverage": "too few CGM readings", "no_steps": "no steps record", "no_night": "no staged night",
               "no_label": "no label", "no_participant_value": "a participants-file value missing"}


@dataclass
class Extraction:
    """An imported Dataset plus what the user must see: features not available (and why), per-participant drops,
    warnings about the files."""

    dataset: Dataset
    unavailable: dict[str, str] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def label_values(cells: pd.Series, column: str, source: str, positive: str | None = None) -> tuple[pd.Series, dict]:
    """Per-participant label text -> 0/1 (NaN where empty) and label_names (see the module doc)."""
    text = cells.fillna("").astype(str).str.strip()
    as_num = pd.to_numeric(text, errors="coerce")
    text = text.where(~as_num.isin([0, 1]), as_num.astype("Int64").astype(str))
    values = sorted(set(text) - {""})
    if positive is not None:
        if str(positive) not in values:
            raise DataError(f"--positive {positive!r} is not a value of the label column; it has {values[:10]}",
                            file=source, column=column)
        pos = str(positive)
        neg = " / ".join(v for v in values if v != pos) or "other"
    elif set(values) <= {"0", "1"}:
        neg, pos = f"{column} 0", f"{column} 1"
        text = text.replace({"0": neg, "1": pos})
    elif len(values) == 2:
        low = [v.lower() for v in values]
        if low[1] in NEGATIVE_WORDS or low[0] in POSITIVE_WORDS:
            values.reverse()
        neg, pos = values
    else:
        raise DataError(f"the label column has {len(values)} distinct value(s) {values[:10]}; a binary label is "
                        "needed: name the value that counts as 1 with --positive VALUE (all others become 0)",
                        file=source, column=column)
    out = pd.Series(np.where(text == pos, 1.0, 0.0), index=cells.index).where(text != "")
    return out, {0: neg, 1: pos}


def _label_source(ic: ImportedCohort, label: str | None, has_stress: bool) -> str | None:
    """'stress', a participants-file column, or None (no label can be determined)."""
    parts = ic.participants
    if label is not None and norm(label) == "stress":
        if not has_stress:
            raise DataError("--label stress, but no stress readings were imported", file=str(ic.cohort.root))
        return "stress"
    if label is not None:
        if parts is None:
            raise DataError(f"--label {label!r} names a participants-file column, but there is no participants file "
                            "(participants.csv in the folder, or --participants FILE)", file=str(ic.cohort.root))
        if label not in parts.text.columns:
            close = difflib.get_close_matches(label, list(parts.text.columns), n=1)
            raise DataError(f"no column {label!r}; the participants file has {list(parts.text.columns)}"
                            + (f" (did you mean {close[0]!r}?)" if close else ""), file=parts.source, column=label)
        return label
    if parts is not None:
        named = next((c for c in parts.text.columns if norm(c) == "label"), None)
        if named is not None:
            return named
    return "stress" if has_stress else None


def _feature_specs(rules: WindowRules, frame: pd.DataFrame, hyper_rule: str) -> list[FeatureSpec]:
    catalog = {f.name: f for f in aireadi_stress_schema(hyper_rule).features}
    names = list(STAGE_COLUMNS if rules.sleep else []) + (["mean_steps"] if rules.steps else []) + GLUCOSE_FEATURES
    specs = []
    for name in names:
        f = catalog[name]
        if name == "mean_glucose":
            lo, hi = f.bounds
            seen = frame[name]
            f = replace(f, bounds=(float(min(lo, np.floor(seen.min()))), float(max(hi, np.ceil(seen.max())))))
        specs.append(f)
    return specs


def _participant_specs(parts, columns: list[str], frame: pd.DataFrame) -> list[FeatureSpec]:
    specs = []
    for col in columns:
        if col in parts.numeric:
            values = frame[col].dropna()
            integral = bool(len(values)) and bool(np.allclose(values, np.round(values)))
            specs.append(FeatureSpec(col, "integer" if integral else "continuous",
                                     description=f"{col} from the participants file", immutable=True,
                                     precision=0 if integral else 2))
        else:
            specs.append(FeatureSpec(col, "categorical", description=f"{col} from the participants file",
                                     immutable=True, levels=sorted(set(parts.table[col]))))
    return specs


def _unavailable(rules: WindowRules, has: dict[str, bool], parts, label_src: str) -> dict[str, str]:
    out = {}
    if not rules.steps:
        out["mean_steps"] = "no steps data"
    if not rules.sleep:
        why = "sleep has no stages (awake/light/deep/rem)" if has["sleep"] else "no sleep data"
        out.update({c: why for c in STAGE_COLUMNS})
    for name in ("age", "gender", "medication", "subgroup"):
        if parts is None:
            out[name] = "no participants file"
        elif name not in parts.numeric + parts.categorical:
            out[name] = "not a column of the participants file"
    if label_src != "stress" and has["stress"]:
        out["stress label"] = f"the label comes from the participants-file column {label_src!r}"
    return out


def import_dataset(path: str | Path, format: str = "auto", participants: str | Path | None = None,
                   label: str | None = None, positive: str | None = None, timezone: str | None = None,
                   units: str | None = None, date_order: str | None = None, columns: dict[str, str] | None = None,
                   hyper_rule: str = "overlap") -> Extraction:
    """Read exports (importers.read_export) and extract the window features the data support (module doc)."""
    if hyper_rule not in HYPER_RULES:
        raise ConfigError(f"--hyper-rule must be one of {HYPER_RULES}, got {hyper_rule!r}")
    ic = read_export(path, format, participants, timezone, units, date_order, columns)
    cohort, parts = ic.cohort, ic.participants
    streams = cohort.streams
    has = {"cgm": any(len(s.cgm) for s in streams.values()),
           "steps": any(len(s.steps) for s in streams.values()),
           "stress": any(len(s.stress) for s in streams.values()),
           "sleep": any(len(s.sleep) for s in streams.values()),
           "staged": any(s.sleep["stage"].isin(STAGES).any()
                         for s in streams.values())}
    if not has["cgm"]:
        raise DataError("no glucose readings were imported: CGM data are required (the features are built on "
                        "2-h CGM windows)", file=str(cohort.root))
    label_src = _label_source(ic, label, has["stress"])
    if label_src is None:
        raise DataError("cannot determine the label: there are no stress readings and no participants file with a "
                        "'label' column; add a 'label' column to participants.csv, or name a participants-file column "
                        "with `sensecf data extract PATH --label COLUMN --out features.csv` and use --data "
                        "features.csv", file=str(cohort.root))
    rules = WindowRules(steps=has["steps"], sleep=has["staged"], stress_label=label_src == "stress",
                        hyper_rule=hyper_rule)
    label_names = {0: "moderate stress", 1: "high stress"}
    per_pid_label = None
    if label_src != "stress":
        per_pid_label, label_names = label_values(parts.text[label_src], label_src, parts.source, positive)
    used_cols = [c for c in (parts.numeric + parts.categorical if parts else []) if c != label_src]
    notes, frames = list(cohort.notes), []
    dropped = dict.fromkeys((*DROP_REASONS, "no_participant_value"), 0)
    no_window = []
    for pid, ps in streams.items():
        w, counts = participant_windows(ps, rules)
        for k, v in counts.items():
            dropped[k] += v
        reasons = {k: v for k, v in counts.items() if v}
        if len(w) and per_pid_label is not None:
            lab = per_pid_label.get(pid, np.nan)
            if pd.isna(lab):
                dropped["no_label"] += len(w)
                reasons["no_label"] = len(w)
                w = w.iloc[:0]
            else:
                w["label"] = lab
        missing = [c for c in used_cols if c in parts.numeric and pd.isna(parts.table[c].get(pid, np.nan))]
        if len(w) and missing:
            dropped["no_participant_value"] += len(w)
            reasons["no_participant_value"] = len(w)
            w = w.iloc[:0]
            notes.append(f"participant {pid}: no value for {', '.join(missing)} in the participants file, so its "
                         "windows are dropped")
        if not len(w):
            no_window.append(f"{pid} ({_reasons(reasons, ps, rules)})")
            continue
        w.insert(0, "participant_id", pid)
        for c in used_cols:
            w[c] = parts.table[c].get(pid, "unknown" if c in parts.categorical else np.nan)
        if parts is not None and parts.split:
            w["recommended_split"] = parts.table[parts.split].get(pid, "")
        frames.append(w)
    if no_window:
        notes.append(f"{len(no_window)} participant(s) keep no window: " + "; ".join(no_window[:20])
                     + (" ..." if len(no_window) > 20 else ""))
    if not frames:
        raise DataError("no window kept: " + _all_dropped(dropped, rules, label_src, len(streams)),
                        file=str(cohort.root))
    frame = pd.concat(frames, ignore_index=True)
    for col in ("window_start", "window_end"):
        frame[col] = frame[col].map(lambda t: (t.tz_localize(None) if ic.local_clock else t).isoformat())
    specs = _feature_specs(rules, frame, hyper_rule) + _participant_specs(parts, used_cols, frame)
    unavailable = _unavailable(rules, has, parts, label_src)
    clock = "the local clock as written in the files" if ic.local_clock else f"local time in {timezone}"
    schema = Schema(
        name="sensor-import", label="label", label_names=label_names, group="participant_id", desired_class=0,
        description=f"2-h windows of imported {cohort.version} data ({clock}); label = "
                    + ("the day's mean stress > 75" if label_src == "stress" else
                       f"participants-file column {label_src!r} ({label_names[1]} = 1)")
                    + f"; hyper_events counts events {HYPER_RULE_TEXT[hyper_rule]}",
        features=specs)
    meta = ["participant_id", "window_start", "window_end"]
    extra = ["recommended_split"] if "recommended_split" in frame.columns else []
    frame = frame[meta + schema.feature_names + ["label"] + extra]
    frame = schema.validate_frame(frame, source=str(cohort.root))
    summary = (f"imported {cohort.version} data at {cohort.root}: {len(streams)} participant(s) with data, "
               f"{frame['participant_id'].nunique()} contribute {len(frame)} window(s); features: "
               f"{', '.join(schema.feature_names)}; label: "
               + ("daily stress" if label_src == "stress" else f"participants-file column {label_src!r}"))
    notes = [summary] + notes
    notes.append("windows dropped: " + ", ".join(f"{k}={v}" for k, v in dropped.items() if v or k in DROP_REASONS))
    notes.append(f"hyper_events counts level-1 events {HYPER_RULE_TEXT[hyper_rule]} (rule {hyper_rule!r})")
    if label_src != "stress":
        notes.append(f"label from column {label_src!r}: {label_names[1]!r} = 1, {label_names[0]!r} = 0 "
                     "(every window of a participant has that participant's label)")
    ds = Dataset(name="sensor-import", schema=schema, frame=frame, notes=notes)
    return Extraction(ds, unavailable, dropped, ic.warnings)


def _reasons(reasons: dict[str, int], ps, rules: WindowRules) -> str:
    if not reasons:
        return "no window: too little CGM data"
    missing = [m for m, used in (("steps", rules.steps), ("stress", rules.stress_label)) if used
               and not len(getattr(ps, m))]
    if rules.sleep and not ps.sleep["stage"].isin(STAGES).any():
        missing.append("staged sleep")
    why = ", ".join(f"{REASON_TEXT[k]}: {v}" for k, v in reasons.items())
    return why + (f"; has no {', '.join(missing)} data" if missing else "")


def _all_dropped(dropped: dict[str, int], rules: WindowRules, label_src: str, n: int) -> str:
    top = max(dropped, key=dropped.get)
    hint = {"cgm_coverage": "the CGM traces are too sparse (a window needs half of the readings its sampling "
                            "interval implies)",
            "no_steps": "steps are used because some participant has them, but the windows have no steps record",
            "no_night": "staged sleep is used because some participant has it, but no window follows a staged "
                        "night of >= 120 minutes",
            "no_label": ("no day has >= 20 stress readings" if label_src == "stress" else
                         f"the participants' {label_src!r} cells are empty or the ids do not match the data"),
            "no_participant_value": "participants-file values are missing"}[top]
    counts = ", ".join(f"{REASON_TEXT[k]}: {v}" for k, v in dropped.items() if v)
    return f"{n} participant(s), windows dropped for {counts}; mostly because {hint}"


def schema_path_for(out: Path) -> Path:
    """Where the schema YAML of a feature table goes: FEATURES.csv -> FEATURES.schema.yaml."""
    return out.with_name(f"{out.name.rsplit('.', 1)[0]}.schema.yaml")


def write_features(ds: Dataset, out: str | Path) -> Path:
    """Write a Dataset's table (CSV or Parquet by the suffix; integer features as whole numbers) atomically and its
    schema YAML beside it; returns the schema path."""
    out = Path(out)
    frame = ds.frame.copy()
    for f in ds.schema.features:
        if f.kind == "integer":
            frame[f.name] = frame[f.name].round().astype(int)
    if out.suffix.lower() == ".parquet":
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        frame.to_parquet(tmp, index=False)
        tmp.replace(out)
    else:
        write_csv(out, frame)
    path = schema_path_for(out)
    ds.schema.to_yaml(path)
    return path
