"""CGM and wearable exports -> the same Cohort of per-participant local-time streams the AI-READI reader builds,
so windowing and features are shared (docs/data-formats.md).

Formats: `dexcom` (Clarity CSV), `libre` (LibreView CSV), `long` (one row per reading: glucose, steps, stress or
sleep stages; one file or a folder). PATH is one file or a folder of them (searched recursively; each file's
format detected from its first lines unless `format` is given). Single-person exports take their participant id
from the file name, or from the first folder below PATH (one folder per person). An optional participants file
(participants.csv/.tsv in the folder, or `participants`) adds per-participant columns and labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ...errors import ConfigError, DataError
from ..streams import Cohort, ParticipantStreams, drop_outside_span
from . import dexcom, libre, long
from .common import ImportedFile, head_lines, is_table, read_table
from .long import parse_columns
from .participants import Participants, find_file, read_participants
from .times import LOCAL_CLOCK, check_timezone

READERS = {"dexcom": dexcom, "libre": libre, "long": long}
__all__ = ["FORMATS", "ImportedCohort", "detect_format", "detect_file_format", "is_aireadi", "parse_columns",
           "read_export"]
FORMATS = ("auto", "aireadi", *READERS)


@dataclass
class ImportedCohort:
    """A Cohort read from exports, with its typed participants file and what the user must hear."""

    cohort: Cohort
    participants: Participants | None
    local_clock: bool                       # True: no time zone given, times are the wall clock as written
    warnings: list[str] = field(default_factory=list)


def is_aireadi(path: Path) -> bool:
    """Whether a folder is an AI-READI root: participants.tsv (or dataset/participants.tsv) beside a wearable_*
    folder or with a study_group column."""
    for root in (path, path / "dataset"):
        tsv = root / "participants.tsv"
        if not tsv.is_file():
            continue
        header = (head_lines(tsv, 1) or [""])[0].split("\t")
        if any(root.glob("wearable_*")) or "study_group" in header:
            return True
    return False


def detect_file_format(path: Path, columns: dict[str, str] | None = None) -> str | None:
    """dexcom, libre or long from a file's first lines; None when none fits."""
    lines = head_lines(path, 4)
    if not lines:
        return None
    for name in ("dexcom", "libre"):
        if READERS[name].matches(lines):
            return name
    try:
        header = read_table(path).columns
    except DataError:
        return None
    return "long" if long.matches(header, columns, path) else None


def detect_format(path: str | Path, columns: dict[str, str] | None = None) -> str:
    """The format of PATH: aireadi for an AI-READI root, else that of its (first recognised) export file."""
    path = Path(path)
    if path.is_dir():
        if is_aireadi(path):
            return "aireadi"
        kinds = {detect_file_format(f, columns) for f in _data_files(path, None)} - {None}
        if not kinds:
            raise DataError("no recognised export in the folder (Dexcom Clarity CSV, LibreView CSV, or a long "
                            "table with time and glucose/steps/stress/sleep columns)", file=str(path))
        return kinds.pop() if len(kinds) == 1 else "mixed"
    if not path.is_file():
        raise DataError("no such file or folder", file=str(path))
    kind = detect_file_format(path, columns)
    if kind is None:
        raise DataError("not a recognised export: expected a Dexcom Clarity CSV, a LibreView CSV, or a long table "
                        "with a time column and glucose/steps/stress (or start/end/stage) columns; name the columns "
                        "with --columns or give --format", file=str(path))
    return kind


def _data_files(folder: Path, participants: Path | None) -> list[Path]:
    skip = {p.resolve() for p in (participants, find_file(folder)) if p is not None}
    return sorted(p for p in folder.rglob("*") if is_table(p) and p.resolve() not in skip)


def read_export(path: str | Path, format: str = "auto", participants: str | Path | None = None,
                timezone: str | None = None, units: str | None = None, date_order: str | None = None,
                columns: dict[str, str] | None = None) -> ImportedCohort:
    """Read one export file or a folder of them into a Cohort (see the module doc).

    A folder's unreadable file is skipped with a warning (listed in `Cohort.skipped`); a single unreadable file
    raises DataError.
    """
    path = Path(path)
    if format not in FORMATS:
        raise ConfigError(f"--format must be one of {FORMATS}, got {format!r}")
    if format == "aireadi":
        raise ConfigError("AI-READI folders are read by the AI-READI reader, not the export importers")
    tz = check_timezone(timezone)
    long.is_mmol(units)                         # a bad --units is refused before any file is read
    if not path.exists():
        raise DataError("no such file or folder", file=str(path))
    root = path if path.is_dir() else None
    files = _data_files(path, Path(participants) if participants else None) if root else [path]
    if not files:
        raise DataError("the folder holds no .csv/.tsv/.txt file", file=str(path))
    imported, skipped, warnings = [], [], []
    for f in files:
        kind = format if format != "auto" else detect_file_format(f, columns)
        try:
            if kind is None:
                raise DataError("not a recognised export (Dexcom, LibreView or long format)", file=str(f))
            imported.append(READERS[kind].read(f, root=root, tz=tz, date_order=date_order, units=units,
                                               columns=columns))
        except DataError as e:
            if root is None:
                raise
            skipped.append(("", str(f), str(e)))
            warnings.append(f"skipped file {f}: {e}")
    if not imported:
        raise DataError(f"no file could be read ({len(skipped)} skipped: {skipped[0][2]})", file=str(path))
    parts_path = Path(participants) if participants else (find_file(path) if root else None)
    parts = read_participants(parts_path) if parts_path else None
    cohort = _cohort(path, imported, parts, tz or LOCAL_CLOCK, warnings)
    cohort.skipped += skipped
    if parts is not None:
        warnings[:0] = parts.warnings
    return ImportedCohort(cohort, parts, tz is None, warnings)


def _cohort(path: Path, files: list[ImportedFile], parts: Participants | None, tz: str,
            warnings: list[str]) -> Cohort:
    notes = [n for f in files for n in f.notes]
    warnings += [w for f in files for w in f.warnings]
    frames = {m: pd.concat([f.frames[m] for f in files if m in f.frames], ignore_index=True)
              for m in ("cgm", "steps", "stress", "sleep") if any(m in f.frames for f in files)}
    pids = sorted(set().union(*(set(fr["participant_id"]) for fr in frames.values())))
    by_pid = {m: dict(tuple(fr.groupby("participant_id"))) for m, fr in frames.items()}
    streams = {}
    for pid in pids:
        ps = ParticipantStreams(pid, tz)
        for m in ("cgm", "steps", "stress"):
            if pid in by_pid.get(m, {}):
                series = _series(by_pid[m][pid], m)
                setattr(ps, m, series[series >= 0] if m == "stress" else series)
        if pid in by_pid.get("sleep", {}):
            sl = by_pid["sleep"][pid]
            sl = sl[sl["end"] > sl["start"]].drop_duplicates("start").sort_values("start", ignore_index=True)
            ps.sleep = sl[["start", "end", "stage"]]
        issue = drop_outside_span(ps)
        if issue:
            warnings.append(issue)
        streams[pid] = ps
    table = pd.DataFrame({"participant_id": pids})
    if parts is not None:
        table = table.join(parts.table, on="participant_id")
        unmatched = sorted(set(parts.table.index) - set(pids))
        if unmatched:
            notes.append(f"{len(unmatched)} participant(s) of {Path(parts.source).name} have no sensor data: "
                         f"{', '.join(unmatched[:10])}{' ...' if len(unmatched) > 10 else ''}")
        missing = sorted(set(pids) - set(parts.table.index))
        if missing:
            notes.append(f"{len(missing)} participant(s) with sensor data have no row in "
                         f"{Path(parts.source).name}: {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")
    version = "+".join(sorted({f.format for f in files}))
    return Cohort(root=path, version=version, participants=table, streams=streams, notes=notes)


def _series(rows: pd.DataFrame, name: str) -> pd.Series:
    rows = rows.dropna(subset=["time", "value"])
    s = pd.Series(rows["value"].to_numpy(dtype=float), index=pd.DatetimeIndex(rows["time"]), name=name)
    return s[~s.index.duplicated(keep="first")].sort_index()
