"""Read the raw AI-READI layout (v1/v2/v3; see docs/aireadi-format.md) into per-participant local-time streams.

Rules (documented choices):
- files are found by directory convention (`<datatype>/<modality>/<device>/<pid>/<pid>_<suffix>.json`); a manifest
  `*_filepath` cell (leading "/" stripped) is used only when the convention path is absent; "None" = no file;
- CGM keeps `event_type == "EGV"` rows when the field exists; "Low" -> 39 mg/dL, "High" -> 401 mg/dL; readings
  outside 20-700 mg/dL and values that are not numbers are dropped and reported per file (data/streams.py);
- steps are `base_movement_quantity.value` coerced to numbers ("" -> missing, dropped), indexed by interval end;
- stress values < 0 (-1 off-wrist / too little data, -2 too much motion) are dropped; values above 100 or not
  numbers (e.g. "high") are dropped and reported per file;
- timestamps are UTC (with or without "T"/"Z"), converted to the local zone from the file header `timezone`
  (US codes pst/pdt, mst/mdt, cst/cdt, est/edt, akst/akdt, hst, utc, or an IANA name) or else from the
  participant-id prefix (7*** = America/Chicago, otherwise America/Los_Angeles); an unknown code is a warning
  naming the file and the value, and the id-prefix zone is used;
- a participant's records outside its plausible study span (median +- max(60 days, 3 x IQR)) are dropped and
  reported; duplicate timestamps keep their first record;
- an age that is not a number is a warning naming participants.tsv, the row and the column (that participant
  keeps no window).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import orjson  # 2-3x faster than the stdlib json on large wearable files
import pandas as pd
from rich.console import Console
from rich.progress import track

from ...errors import DataError
from ..streams import (STAGES, STRESS_PLAUSIBLE, Cohort, ParticipantStreams, clean_values, drop_outside_span,
                       glucose_mgdl)

__all__ = ["STAGES", "Cohort", "ParticipantStreams", "read_cohort", "read_participant", "open_cohort"]

STUDY_GROUPS = {
    "healthy": "healthy",
    "pre_diabetes_lifestyle_controlled": "prediabetes",
    "oral_medication_and_or_non_insulin_injectable_medication_controlled": "oral_t2dm",
    "insulin_dependent": "insulin_t2dm",
}
SUBGROUP_MEDICATION = {"healthy": "none", "prediabetes": "none", "oral_t2dm": "oral", "insulin_t2dm": "insulin"}
TZ_CODES = {"pst": "America/Los_Angeles", "pdt": "America/Los_Angeles", "mst": "America/Denver",
            "mdt": "America/Denver", "cst": "America/Chicago", "cdt": "America/Chicago", "est": "America/New_York",
            "edt": "America/New_York", "akst": "America/Anchorage", "akdt": "America/Anchorage",
            "hst": "Pacific/Honolulu", "utc": "UTC", "gmt": "UTC"}

# modality -> (datatype folder, modality folder, device folder, file suffix, manifest file-path column)
MODALITIES = {
    "cgm": ("wearable_blood_glucose", "continuous_glucose_monitoring", "dexcom_g6", "DEX", "glucose_filepath"),
    "steps": ("wearable_activity_monitor", "physical_activity", "garmin_vivosmart5", "activity",
              "physical_activity_filepath"),
    "stress": ("wearable_activity_monitor", "stress", "garmin_vivosmart5", "stress", "stress_level_filepath"),
    "sleep": ("wearable_activity_monitor", "sleep", "garmin_vivosmart5", "sleep", "sleep_filepath"),
}
GENDER_WORDS = {"f": "female", "female": "female", "woman": "female", "8532": "female",
                "m": "male", "male": "male", "man": "male", "8507": "male",
                "unknown": "unknown", "u": "unknown", "other": "unknown", "0": "unknown"}
MEDICATION_WORDS = {"none": "none", "no": "none", "oral": "oral", "insulin": "insulin"}

_console = Console(stderr=True)


# ---- small helpers ---------------------------------------------------------------------------------

def _pad(pid) -> str:
    s = str(pid).strip()
    if s.endswith(".0"):
        s = s[:-2]
    return s.zfill(4)


def _id_column(df: pd.DataFrame, source: str) -> str:
    for col in ("participant_id", "person_id"):
        if col in df.columns:
            return col
    raise DataError("no 'participant_id' or 'person_id' column", file=source, column="participant_id")


def default_timezone(pid: str) -> str:
    """The site's zone from the id prefix: 7*** (UAB) -> America/Chicago, else America/Los_Angeles."""
    return "America/Chicago" if str(pid).startswith("7") else "America/Los_Angeles"


def parse_utc(values, file: str, pid: str) -> pd.DatetimeIndex:
    """UTC timestamps with or without 'T'/'Z' -> tz-aware UTC index (ISO8601 first, per-element fallback)."""
    try:
        return pd.DatetimeIndex(pd.to_datetime(values, utc=True, format="ISO8601"))
    except (ValueError, TypeError):
        try:
            return pd.DatetimeIndex(pd.to_datetime(values, utc=True, format="mixed"))
        except (ValueError, TypeError) as e:
            raise DataError(f"unparseable timestamp: {e}", file=file, participant=pid) from None


def _read_table(path: Path) -> pd.DataFrame:
    sep = "," if path.suffix.lower() == ".csv" else "\t"
    try:
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise DataError(f"cannot parse table: {e}", file=str(path)) from None


def find_root(root: str | Path) -> Path:
    """The directory holding participants.tsv (accepts a FAIRhub download's parent folder too)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError("AI-READI root directory not found", file=str(root))
    for cand in (root, root / "dataset"):
        if (cand / "participants.tsv").is_file():
            return cand
    raise DataError("no participants.tsv in the AI-READI root (expected <root>/participants.tsv)", file=str(root))


# ---- participants and demographics -----------------------------------------------------------------

def read_participants(root: Path, notes: list[str] | None = None) -> tuple[pd.DataFrame, str]:
    """participants.tsv -> (DataFrame with padded participant_id and paper subgroup, id column name).

    An age that is not a number becomes missing, with a warning (file, participant, row, column) in `notes`.
    """
    path = root / "participants.tsv"
    raw = _read_table(path)
    idcol = _id_column(raw, str(path))
    for col in ("study_group", "age"):
        if col not in raw.columns:
            raise DataError(f"missing column {col!r}", file=str(path), column=col)
    groups = raw["study_group"].str.strip()
    known = groups.isin(STUDY_GROUPS) | groups.isin(SUBGROUP_MEDICATION)
    if not known.all():
        i = int(np.flatnonzero(~known.to_numpy())[0])
        raise DataError(f"unknown study_group {groups.iloc[i]!r}; expected one of {sorted(STUDY_GROUPS)}",
                        file=str(path), participant=_pad(raw[idcol].iloc[i]), row=i + 1, column="study_group")
    out = pd.DataFrame({
        "participant_id": raw[idcol].map(_pad),
        "study_group": groups,
        "subgroup": groups.map(lambda g: STUDY_GROUPS.get(g, g)),
        "age": pd.to_numeric(raw["age"], errors="coerce"),
        "clinical_site": raw.get("clinical_site", pd.Series("", index=raw.index)).str.strip(),
        "recommended_split": raw.get("recommended_split", pd.Series("", index=raw.index)).str.strip(),
    })
    bad_age = out["age"].isna() & (raw["age"].str.strip() != "")
    for i in np.flatnonzero(bad_age.to_numpy()):
        msg = DataError(f"age {raw['age'].iloc[i]!r} is not a number, so this participant keeps no window",
                        file=str(path), participant=out["participant_id"].iloc[i], row=i + 1, column="age")
        if notes is not None:
            notes.append(f"warning: {msg}")
    dup = out["participant_id"].duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise DataError(f"duplicate participant id {out['participant_id'].iloc[i]}", file=str(path), row=i + 1,
                        column=idcol)
    return out, idcol


def _apply_demographics(parts: pd.DataFrame, demographics: Path | None, notes: list[str]) -> pd.DataFrame:
    parts = parts.copy()
    derived = parts["subgroup"].map(SUBGROUP_MEDICATION)
    if demographics is None:
        parts["gender"] = "unknown"
        parts["medication"] = derived
        notes.append("gender is controlled-access in AI-READI and no demographics file was given: gender = "
                     "'unknown' for everyone; medication derived from study_group (insulin_dependent -> insulin, "
                     "oral_medication... -> oral, others -> none)")
        return parts
    demographics = Path(demographics)
    if not demographics.is_file():
        raise DataError("demographics file not found", file=str(demographics))
    demo = _read_table(demographics)
    demo.columns = [c.strip().lower() for c in demo.columns]
    idcol = _id_column(demo, str(demographics))
    if "gender" not in demo.columns:
        raise DataError("missing column 'gender'", file=str(demographics), column="gender")
    demo = demo.assign(participant_id=demo[idcol].map(_pad)).drop_duplicates("participant_id")
    for col, words in (("gender", GENDER_WORDS), ("medication", MEDICATION_WORDS)):
        if col not in demo.columns:
            continue
        vals = demo[col].str.strip().str.lower()
        mapped = vals.map(words)
        bad = mapped.isna() & (vals != "")
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{col} value {demo[col].iloc[i]!r} not understood; expected one of "
                            f"{sorted(set(words.values()))}", file=str(demographics),
                            participant=demo["participant_id"].iloc[i], row=i + 1, column=col)
        demo[col] = mapped
    lookup = demo.set_index("participant_id")
    parts["gender"] = parts["participant_id"].map(lookup["gender"]).fillna("unknown")
    if "medication" in lookup.columns:
        parts["medication"] = parts["participant_id"].map(lookup["medication"]).fillna(derived)
        n_missing = int(parts["participant_id"].map(lookup["medication"]).isna().sum())
    else:
        parts["medication"] = derived
        n_missing = len(parts)
    n_unmatched = int((~parts["participant_id"].isin(lookup.index)).sum())
    notes.append(f"demographics from {demographics.name}: {len(parts) - n_unmatched} participant(s) matched, "
                 f"{n_unmatched} without a row get gender 'unknown'")
    if n_missing:
        notes.append(f"medication derived from study_group for {n_missing} participant(s) without a medication "
                     "value")
    return parts


def _read_manifest(path: Path) -> dict[str, dict[str, str]]:
    """manifest.tsv -> {pid: {filepath column: root-relative path or ''}} (missing file -> {})."""
    if not path.is_file():
        return {}
    df = _read_table(path)
    idcol = _id_column(df, str(path))
    cols = [c for c in df.columns if c.endswith("_filepath")]
    out = {}
    for rec in df[[idcol] + cols].to_dict("records"):
        out[_pad(rec[idcol])] = {c: ("" if str(rec[c]).strip() in ("", "None", "nan") else
                                     str(rec[c]).strip().lstrip("/")) for c in cols}
    return out


# ---- per-file parsers ------------------------------------------------------------------------------

def _load_json(path: Path, pid: str):
    try:
        doc = orjson.loads(path.read_bytes())
    except (orjson.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"malformed JSON: {e}", file=str(path), participant=pid) from None
    if not isinstance(doc, dict) or "body" not in doc:
        raise DataError("not an AI-READI record file (no top-level 'body')", file=str(path), participant=pid)
    header = doc.get("header") if isinstance(doc.get("header"), dict) else {}
    return header, doc["body"]


def _records(body, key: str, path: Path, pid: str) -> list:
    recs = body.get(key, []) if isinstance(body, dict) else body
    if recs is None:
        return []
    if not isinstance(recs, list):
        raise DataError(f"'body.{key}' is not a list", file=str(path), participant=pid)
    return recs


def _extract(recs: list, getter, path: Path, pid: str, what: str) -> list:
    """Apply getter to every record; a structural error names the first bad record."""
    try:
        return [getter(r) for r in recs]
    except (KeyError, TypeError, AttributeError):
        for i, r in enumerate(recs):
            try:
                getter(r)
            except (KeyError, TypeError, AttributeError) as e:
                raise DataError(f"record {i} lacks {what} ({type(e).__name__}: {e})", file=str(path),
                                participant=pid) from None
        raise


def _series(times, values, tz: str, path: Path, pid: str, name: str) -> pd.Series:
    idx = parse_utc(times, str(path), pid).tz_convert(tz)
    s = pd.Series(np.asarray(values, dtype=float), index=idx, name=name)
    s = s[s.notna()]
    s = s[~s.index.duplicated(keep="first")]
    return s.sort_index()


def _parse_cgm(body, path: Path, pid: str, tz: str, issues: list[str]) -> tuple[pd.Series, set[str]]:
    """Dexcom body -> (glucose Series, version markers); v1 bodies are bare lists; drops go to `issues`."""
    markers = {"v1"} if isinstance(body, list) else set()
    recs = _records(body, "cgm", path, pid)
    rows = _extract(recs, lambda r: (r["effective_time_frame"]["time_interval"]["start_date_time"],
                                     r["blood_glucose"]["value"], r.get("event_type")), path, pid,
                    "effective_time_frame.time_interval.start_date_time / blood_glucose.value")
    rows = [r for r in rows if r[2] is None or str(r[2]).upper() == "EGV"]
    values, report = glucose_mgdl([r[1] for r in rows], str(path))
    issues += [report.message()] if report.message() else []
    return _series([r[0] for r in rows], values, tz, path, pid, "cgm"), markers


def _parse_steps(body, path: Path, pid: str, tz: str) -> pd.Series:
    """Garmin activity body -> step counts at interval end ('' and non-numeric values dropped)."""
    recs = _records(body, "activity", path, pid)

    def get(r):
        tf = r["effective_time_frame"]["time_interval"]
        return tf.get("end_date_time") or tf["start_date_time"], r["base_movement_quantity"]["value"]

    rows = _extract(recs, get, path, pid, "effective_time_frame.time_interval / base_movement_quantity.value")
    values = pd.to_numeric(pd.Series([r[1] for r in rows], dtype=object), errors="coerce")
    return _series([r[0] for r in rows], values, tz, path, pid, "steps")


def _parse_stress(body, path: Path, pid: str, tz: str, issues: list[str]) -> pd.Series:
    """Garmin stress body -> stress 0-100 (negative codes dropped; other drops go to `issues`)."""
    recs = _records(body, "stress", path, pid)
    rows = _extract(recs, lambda r: (r["effective_time_frame"]["date_time"], r["stress"]["value"]), path, pid,
                    "effective_time_frame.date_time / stress.value")
    values, report = clean_values([r[1] for r in rows], str(path), "stress", STRESS_PLAUSIBLE)
    issues += [report.message()] if report.message() else []
    s = _series([r[0] for r in rows], values, tz, path, pid, "stress")
    return s[s >= 0]


def _parse_sleep(body, path: Path, pid: str, tz: str) -> tuple[pd.DataFrame, set[str]]:
    """Garmin sleep body -> epochs (start, end, stage) in local time, plus version markers.

    v2 uses `sleep_stage_time_frame`, v3 `effective_time_frame`; v1 records carry only `sleep_duration`,
    so their stage is 'unknown'.
    """
    recs = _records(body, "sleep", path, pid)
    markers: set[str] = set()

    def get(r):
        frame_key = "effective_time_frame" if "effective_time_frame" in r else "sleep_stage_time_frame"
        tf = r[frame_key]["time_interval"]
        stage = r.get("sleep_stage_state")
        markers.add("v1" if stage is None and "sleep_duration" in r else
                    ("v3" if frame_key == "effective_time_frame" else "v2"))
        return tf["start_date_time"], tf["end_date_time"], str(stage).strip().lower() if stage else "unknown"

    rows = _extract(recs, get, path, pid, "a sleep_stage_time_frame/effective_time_frame time_interval")
    if not rows:
        return ParticipantStreams(pid, tz).sleep, markers
    start = parse_utc([r[0] for r in rows], str(path), pid).tz_convert(tz)
    end = parse_utc([r[1] for r in rows], str(path), pid).tz_convert(tz)
    stage = [r[2] if r[2] in STAGES else "unknown" for r in rows]
    df = pd.DataFrame({"start": start, "end": end, "stage": stage})
    df = df[df["end"] > df["start"]].drop_duplicates("start").sort_values("start", ignore_index=True)
    return df, markers


# ---- cohort ----------------------------------------------------------------------------------------

def _file_path(root: Path, pid: str, modality: str, manifests: dict) -> Path | None:
    datatype, mod, device, suffix, mcol = MODALITIES[modality]
    conv = root / datatype / mod / device / pid / f"{pid}_{suffix}.json"
    if conv.is_file():
        return conv
    rel = manifests.get(datatype, {}).get(pid, {}).get(mcol, "")
    if rel and (root / rel).is_file():
        return root / rel
    return None


def read_participant(root: Path, pid: str, manifests: dict) -> tuple[ParticipantStreams, set[str], list[str]]:
    """Load one participant's four streams; returns (streams, version markers, missing modalities).

    The local zone is the first file header's known `timezone` code (see TZ_CODES; or an IANA name), else the
    id-prefix default; unknown codes and dropped values are listed in `ParticipantStreams.issues`.
    """
    docs = {}
    for m in MODALITIES:
        path = _file_path(root, pid, m, manifests)
        if path is not None:
            docs[m] = (path, *_load_json(path, pid))
    issues: list[str] = []
    codes = [str(h.get("timezone", "") or "").strip() for _, h, _ in docs.values()]
    zones = [_zone(c) for c in codes]
    for (path, _, _), code, zone in zip(docs.values(), codes, zones):
        if code and zone is None:
            issues.append(f"{path}: unknown time zone code {code!r} in the header; using "
                          f"{default_timezone(pid)} (from the participant id); known codes: {sorted(TZ_CODES)} "
                          "or an IANA name")
    tz = next((z for z in zones if z), default_timezone(pid))
    markers = {"v3"} if any(c and m != "cgm" for c, m in zip(codes, docs)) else set()
    ps = ParticipantStreams(pid, tz, issues=issues)
    if "cgm" in docs:
        ps.cgm, mk = _parse_cgm(docs["cgm"][2], docs["cgm"][0], pid, tz, issues)
        markers |= mk
    if "steps" in docs:
        ps.steps = _parse_steps(docs["steps"][2], docs["steps"][0], pid, tz)
    if "stress" in docs:
        ps.stress = _parse_stress(docs["stress"][2], docs["stress"][0], pid, tz, issues)
    if "sleep" in docs:
        ps.sleep, mk = _parse_sleep(docs["sleep"][2], docs["sleep"][0], pid, tz)
        markers |= mk
    span_issue = drop_outside_span(ps)
    issues += [span_issue] if span_issue else []
    missing = [m for m in MODALITIES if len(ps.sleep if m == "sleep" else getattr(ps, m)) == 0]
    return ps, markers, missing


def _zone(code: str) -> str | None:
    """A header `timezone` value -> an IANA zone (US abbreviations, UTC/GMT or an IANA name); None if unknown."""
    if code.lower() in TZ_CODES:
        return TZ_CODES[code.lower()]
    if "/" in code:
        try:
            ZoneInfo(code)
            return code
        except (ZoneInfoNotFoundError, ValueError):
            return None
    return None


@dataclass
class CohortIndex:
    """What is needed to read participants one at a time: root, participants (+ demographics), manifests.

    `markers` holds the layout-version markers seen so far (the v3 `person_id` column); `notes` the
    demographics provenance.
    """

    root: Path
    participants: pd.DataFrame
    manifests: dict[str, dict[str, dict[str, str]]]
    markers: set[str]
    notes: list[str]

    def manifests_of(self, pid: str) -> dict[str, dict[str, dict[str, str]]]:
        """The manifest rows of one participant (what a worker process needs to find its files)."""
        return {d: {pid: rows[pid]} if pid in rows else {} for d, rows in self.manifests.items()}


def open_cohort(root: str | Path, demographics: Path | None = None) -> CohortIndex:
    """Read participants.tsv, the demographics file and the manifests (not the sensor files).

    A missing root, missing participants.tsv, unknown study_group or bad demographics value raises DataError.
    """
    root = find_root(root)
    notes: list[str] = []
    parts, idcol = read_participants(root, notes)
    parts = _apply_demographics(parts, demographics, notes)
    manifests = {d: _read_manifest(root / d / "manifest.tsv")
                 for d in ("wearable_blood_glucose", "wearable_activity_monitor")}
    return CohortIndex(root, parts, manifests, {"v3"} if idcol == "person_id" else set(), notes)


def cohort_version(markers: set[str]) -> str:
    """v1 when any file had the v1 shape, else v3 when any v3 marker was seen, else v2."""
    return "v1" if "v1" in markers else ("v3" if "v3" in markers else "v2")


def cohort_notes(version: str, missing_counts: dict[str, int], n_skipped: int) -> list[str]:
    """Notes on missing modalities, the v1 layout and skipped participants."""
    notes = [f"{n} participant(s) have no {m} data (folder absent, manifest 'None' or empty file)"
             for m, n in missing_counts.items() if n]
    if version == "v1":
        notes.append("v1 layout detected: CGM body is a bare list and sleep has durations only (no stages), "
                     "so sleep-stage features cannot be computed")
    if n_skipped:
        notes.append(f"{n_skipped} participant(s) skipped because of unreadable files")
    return notes


def read_cohort(root: str | Path, demographics: Path | None = None, progress: bool = True) -> Cohort:
    """Read participants.tsv, manifests and every participant's CGM/steps/stress/sleep files into memory.

    A participant whose file is malformed is skipped with a warning and listed in `Cohort.skipped`;
    a missing root, missing participants.tsv or unknown study_group raises DataError. For large cohorts use
    `pipeline.extract_cohort`, which holds one participant per worker process.
    """
    index = open_cohort(root, demographics)
    markers = set(index.markers)
    cohort = Cohort(root=index.root, version="v2", participants=index.participants, notes=index.notes)
    missing_counts = {m: 0 for m in MODALITIES}
    pids = index.participants["participant_id"].tolist()
    it = track(pids, description="reading AI-READI participants", console=_console) if progress else pids
    for pid in it:
        try:
            ps, mk, missing = read_participant(index.root, pid, index.manifests)
        except DataError as e:
            cohort.skipped.append((pid, e.file or "", str(e)))
            _console.print(f"[yellow]warning:[/] skipping participant {pid}: {e}", highlight=False)
            continue
        for issue in ps.issues:
            _console.print(f"[yellow]warning:[/] {issue}", highlight=False)
            cohort.notes.append(f"warning: {issue}")
        markers |= mk
        for m in missing:
            missing_counts[m] += 1
        cohort.streams[pid] = ps
    cohort.version = cohort_version(markers)
    cohort.notes += cohort_notes(cohort.version, missing_counts, len(cohort.skipped))
    return cohort
