"""Dexcom Clarity CSV export (G6, G7, Stelo; docs/data-formats.md).

Layout: one header line `Index,Timestamp (YYYY-MM-DDThh:mm:ss),Event Type,Event Subtype,Patient Info,Device Info,
Source Device ID,Glucose Value (mg/dL),Insulin Value (u),Carb Value (grams),Duration (hh:mm:ss),Glucose Rate of
Change (mg/dL/min),Transmitter Time (Long Integer),Transmitter ID` (`Glucose Value (mmol/L)` in mmol/L exports),
then untimed rows (FirstName, LastName, DateOfBirth, Device, Alert) and the timed events. Only `Event Type` EGV
rows are readings (5-min); "Low"/"High" -> 39/401 mg/dL. Timestamps are the display device's local clock.
One person per file: the participant id is the file name (or the folder below the imported root).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ...errors import DataError
from ..streams import glucose_mgdl
from .common import ImportedFile, add_warnings, participant_from_path, read_table
from .times import parse_times

NAME = "dexcom"


def matches(lines: list[str]) -> bool:
    """Whether a file's first lines are a Clarity export header."""
    head = lines[0].lower() if lines else ""
    return "event type" in head and "glucose value (" in head


def _column(df: pd.DataFrame, prefix: str, path: Path) -> str:
    for c in df.columns:
        if c.lower().startswith(prefix.lower()):
            return c
    raise DataError(f"no column starting with {prefix!r}; the file has {list(df.columns)}", file=str(path),
                    column=prefix)


def read(path: Path, root: Path | None = None, tz: str | None = None, **_) -> ImportedFile:
    """Read one Clarity export's EGV readings."""
    df = read_table(path)
    time_col, event_col = _column(df, "Timestamp", path), _column(df, "Event Type", path)
    value_col = _column(df, "Glucose Value (", path)
    mmol = "mmol" in value_col.lower()
    egv = df[df[event_col].str.strip().str.upper() == "EGV"]
    out = ImportedFile(path, NAME)
    if not len(egv):
        out.warnings.append(f"{path}: no EGV (glucose) rows")
        return out
    values, report = glucose_mgdl(egv[value_col], str(path), mmol=mmol)
    times, bad_times = parse_times(egv[time_col], str(path), time_col, tz=tz)
    pid = participant_from_path(path, root)
    out.frames["cgm"] = pd.DataFrame({"participant_id": pid, "time": times, "value": values})
    out.notes.append(f"{path.name}: Dexcom Clarity export, participant {pid}, {len(egv)} EGV row(s)"
                     f"{' in mmol/L (converted to mg/dL)' if mmol else ''}, {report.mapped} Low/High mapped, "
                     f"{len(df) - len(egv)} other row(s) ignored")
    add_warnings(out, report, bad_times, "EGV")
    return out
