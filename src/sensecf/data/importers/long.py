"""Generic long format: one row per reading (docs/data-formats.md).

Columns are found by name (case and punctuation ignored) or named with `columns` (--columns role=NAME,...):
- id: participant_id, person_id, subject_id, patient_id, user_id, participant, subject, patient, person, user,
  pid, id (absent: the file name, or the folder below the imported root, is the participant id);
- time: timestamp, datetime, date_time, time_stamp, time, date, ts;
- signals: glucose (glucose*, gl, sgv, bg, cgm, egv, blood_glucose), steps (steps, step_count, step), stress
  (stress, stress_level, stress_score); a lone `value` column takes its signal from the file name (glucose/cgm,
  steps, stress);
- sleep stages: start, end and stage (start_time/end_time, sleep_stage); stages awake/wake, light/core/N1/N2,
  deep/N3/SWS, rem (Fitbit, Apple Health and PSG spellings), anything else is unstaged.
Glucose units: `units` (mg/dL or mmol/L), else the column name (`glucose_mmol_l`), else the values (median below
35 -> mmol/L); mmol/L x 18.016. Steps: a row counts the steps from its time until the participant's next row
(median spacing, at most 1 h); with start/end columns the interval is explicit. Stress: 0-100, negatives = no
reading. Several signals may share one file (`id,time,glucose,steps`).
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pandas as pd

from ...errors import ConfigError, DataError
from ..streams import STRESS_PLAUSIBLE, clean_values, glucose_mgdl
from .common import ImportedFile, add_warnings, norm, participant_from_path, read_table, table_name
from .times import parse_times

NAME = "long"
ROLES = {
    "id": ("participant_id", "person_id", "subject_id", "patient_id", "user_id", "participant", "subject",
           "patient", "person", "user", "pid", "id"),
    "time": ("timestamp", "datetime", "date_time", "time_stamp", "time", "date", "ts"),
    "glucose": ("glucose", "gl", "sgv", "bg", "cgm", "egv", "blood_glucose"),
    "steps": ("steps", "step_count", "step"),
    "stress": ("stress", "stress_level", "stress_score"),
    "start": ("start", "start_time", "start_date", "start_datetime", "begin"),
    "end": ("end", "end_time", "end_date", "end_datetime", "stop"),
    "stage": ("stage", "sleep_stage", "level"),
    "value": ("value",),
}
SIGNALS = {"glucose": "cgm", "steps": "steps", "stress": "stress"}
FILE_HINTS = {"cgm": ("glucose", "cgm", "egv"), "steps": ("step",), "stress": ("stress",)}
STAGE_WORDS = {"awake": "awake", "wake": "awake", "w": "awake", "light": "light", "core": "light", "n1": "light",
               "n2": "light", "deep": "deep", "n3": "deep", "n4": "deep", "sws": "deep", "rem": "rem", "r": "rem"}
UNITS = {"mgdl": False, "mg_dl": False, "mg": False, "mmol": True, "mmol_l": True, "mmoll": True}
MAX_STEP_INTERVAL = pd.Timedelta(hours=1)
DEFAULT_STEP_INTERVAL = pd.Timedelta(minutes=1)


def parse_columns(text: str | None) -> dict[str, str]:
    """'id=subject,time=ts' -> {'id': 'subject', 'time': 'ts'} (roles checked)."""
    out = {}
    for item in [t for t in str(text or "").split(",") if t.strip()]:
        role, sep, col = item.partition("=")
        role = role.strip().lower()
        if not sep or not col.strip() or role not in ROLES:
            raise ConfigError(f"--columns: cannot read {item.strip()!r}; give role=COLUMN pairs with roles "
                              f"{sorted(ROLES)}, e.g. id=subject,time=ts,glucose=gl")
        out[role] = col.strip()
    return out


def is_mmol(units: str | None) -> bool | None:
    """--units text -> True (mmol/L), False (mg/dL) or None (infer)."""
    if units is None or not str(units).strip() or norm(units) == "auto":
        return None
    key = norm(units)
    if key not in UNITS:
        raise ConfigError(f"--units must be mg/dL or mmol/L, got {units!r}")
    return UNITS[key]


def find_columns(columns, given: dict[str, str] | None = None, file: str = "") -> dict[str, str]:
    """Role -> column of a table's header: the user's names first (checked), then the known spellings."""
    by_norm = {norm(c): c for c in columns}
    found = {}
    for role, name in (given or {}).items():
        match = by_norm.get(norm(name))
        if match is None:
            close = difflib.get_close_matches(name, list(columns), n=1)
            raise DataError(f"--columns names {role}={name!r}, which is not a column; the file has {list(columns)}"
                            + (f" (did you mean {close[0]!r}?)" if close else ""), file=file, column=name)
        found[role] = match
    taken = set(found.values())
    for role, names in ROLES.items():
        if role in found:
            continue
        hit = next((by_norm[n] for n in names if n in by_norm and by_norm[n] not in taken), None)
        if hit is None and role == "glucose":
            hit = next((c for n, c in by_norm.items() if n.startswith("glucose") and c not in taken), None)
        if hit is not None:
            found[role] = hit
            taken.add(hit)
    return found


def signals_of(found: dict[str, str], path: Path) -> list[str]:
    """The modalities a long table holds, from its columns (and the file name for a lone `value` column)."""
    mods = [m for role, m in SIGNALS.items() if role in found]
    if {"start", "end", "stage"} <= set(found):
        mods.append("sleep")
    if not mods and "value" in found:
        name = table_name(path).lower()
        mods = [m for m, hints in FILE_HINTS.items() if any(h in name for h in hints)][:1]
    return mods


def matches(columns, given: dict[str, str] | None = None, path: Path = Path("")) -> bool:
    """Whether a header reads as the long format (a time and a signal, or sleep intervals)."""
    try:
        found = find_columns(columns, given, str(path))
    except DataError:
        return False
    mods = signals_of(found, path)
    return bool(mods) and ("time" in found or "sleep" in mods or "end" in found)


def _ids(df: pd.DataFrame, found: dict, path: Path, root: Path | None, out: ImportedFile) -> pd.Series:
    if "id" not in found:
        return pd.Series(participant_from_path(path, root), index=df.index)
    ids = df[found["id"]].str.strip()
    if (ids == "").any():
        out.warnings.append(f"{path}: {int((ids == '').sum())} row(s) without a participant id (column "
                            f"{found['id']!r}, first at line {ids.index[ids == ''][0]}) dropped")
    return ids


def _step_ends(frame: pd.DataFrame) -> pd.Series:
    """A step row's interval end: its time + the participant's median row spacing (<= 1 h)."""
    def spacing(t: pd.Series) -> pd.Timedelta:
        d = t.sort_values().diff().dropna()
        d = d[d > pd.Timedelta(0)]
        return min(d.median(), MAX_STEP_INTERVAL) if len(d) else DEFAULT_STEP_INTERVAL
    step = frame.groupby("participant_id")["time"].transform(lambda t: spacing(t))
    return frame["time"] + pd.to_timedelta(step)


def read(path: Path, root: Path | None = None, tz: str | None = None, date_order: str | None = None,
         units: str | None = None, columns: dict[str, str] | None = None) -> ImportedFile:
    """Read one long-format file (any of glucose, steps, stress, sleep stages)."""
    df = read_table(path)
    found = find_columns(df.columns, columns, str(path))
    mods = signals_of(found, path)
    if not mods:
        raise DataError(f"no signal column found: expected glucose, steps, stress, start/end/stage or a `value` "
                        f"column with the signal in the file name; the file has {list(df.columns)} (name them with "
                        "--columns, e.g. glucose=gl)", file=str(path))
    out = ImportedFile(path, NAME)
    ids = _ids(df, found, path, root, out)
    keep = ids != ""
    df, ids = df[keep], ids[keep]
    for mod in mods:
        if mod == "sleep":
            out.frames["sleep"] = _sleep(df, ids, found, path, tz, date_order, out)
            continue
        role = next((r for r, m in SIGNALS.items() if m == mod and r in found), "value")
        time_col = found.get("time") or found.get("end") or found.get("start")
        if time_col is None:
            raise DataError("no time column (timestamp, time, datetime, ...; name it with --columns time=NAME); "
                            f"the file has {list(df.columns)}", file=str(path))
        times, bad = parse_times(df[time_col], str(path), time_col, tz, date_order)
        raw = df[found[role]]
        if mod == "cgm":
            mmol = _glucose_units(raw, found[role], is_mmol(units))
            values, report = glucose_mgdl(raw, str(path), mmol=mmol)
            unit_note = " in mmol/L (converted to mg/dL)" if mmol else " in mg/dL"
        else:
            values, report = clean_values(raw, str(path), mod, STRESS_PLAUSIBLE if mod == "stress" else (0, 1e5))
            unit_note = ""
        frame = pd.DataFrame({"participant_id": ids.to_numpy(), "time": times, "value": values})
        if mod == "steps":
            frame["time"] = (pd.DatetimeIndex(parse_times(df[found["end"]], str(path), found["end"], tz,
                                                          date_order)[0])
                             if "end" in found and time_col != found["end"] else _step_ends(frame))
        out.frames[mod] = frame
        out.notes.append(f"{path.name}: long format, {mod} from column {found[role]!r}{unit_note}, "
                         f"{frame['participant_id'].nunique()} participant(s), {len(frame)} row(s)")
        add_warnings(out, report, bad, mod)
    return out


def _glucose_units(raw: pd.Series, column: str, given: bool | None) -> bool:
    if given is not None:
        return given
    name = norm(column)
    if "mmol" in name:
        return True
    if "mg" in name.split("_"):
        return False
    values = pd.to_numeric(raw, errors="coerce").dropna()
    return bool(len(values)) and float(values.median()) < 35.0


def stage_of(text: str) -> str:
    """A sleep-stage spelling -> awake/light/deep/rem/unknown."""
    key = norm(text).replace("hkcategoryvaluesleepanalysis", "").replace("asleep", "").strip("_")
    key = key.replace("_sleep", "").replace("sleep_", "").replace("stage_", "")
    return STAGE_WORDS.get(key, "unknown")


def _sleep(df: pd.DataFrame, ids: pd.Series, found: dict, path: Path, tz: str | None, date_order: str | None,
           out: ImportedFile) -> pd.DataFrame:
    start, bad_s = parse_times(df[found["start"]], str(path), found["start"], tz, date_order)
    end, bad_e = parse_times(df[found["end"]], str(path), found["end"], tz, date_order)
    stage = df[found["stage"]].map(stage_of)
    frame = pd.DataFrame({"participant_id": ids.to_numpy(), "start": start, "end": end, "stage": stage.to_numpy()})
    unknown = int((frame["stage"] == "unknown").sum())
    out.notes.append(f"{path.name}: long format, sleep stages from {found['stage']!r}, "
                     f"{frame['participant_id'].nunique()} participant(s), {len(frame)} epoch(s)"
                     f"{f', {unknown} unstaged' if unknown else ''}")
    if bad_s or bad_e:
        out.warnings.append(f"{path}: {max(bad_s, bad_e)} sleep epoch(s) with an unreadable start or end dropped")
    return frame.dropna(subset=["start", "end"])
