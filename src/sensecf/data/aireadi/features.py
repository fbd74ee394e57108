"""The paper's window features from an AI-READI cohort: the shared window rules (data/windows.py: 2-h windows,
coverage, hyperglycaemic events, nights, stress label) with every stream required, plus the participant's
immutable columns; a participant without an age keeps no window (counted as no_age).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..dataset import Dataset
from ..streams import ParticipantStreams
from ..windows import DROP_REASONS as WINDOW_DROP_REASONS
from ..windows import WindowRules, participant_windows
from .schema import aireadi_stress_schema

DROP_REASONS = (*WINDOW_DROP_REASONS, "no_age")
OUTPUT_COLUMNS = ["participant_id", "window_start", "window_end"] + aireadi_stress_schema().feature_names + [
    "label", "recommended_split"]

IMMUTABLE_COLUMNS = ("age", "gender", "medication", "subgroup", "recommended_split")


def participant_rows(ps: ParticipantStreams, info: dict,
                     hyper_rule: str = "overlap") -> tuple[pd.DataFrame, dict[str, int]]:
    """One participant's output rows (columns OUTPUT_COLUMNS, ISO window times) and drop counts per reason.

    `info` holds the participant's IMMUTABLE_COLUMNS; a participant without an age contributes no rows;
    `hyper_rule` counts hyperglycaemic events that overlap ("overlap") or start in ("start") a window.
    """
    w, counts = participant_windows(ps, WindowRules(hyper_rule=hyper_rule))
    counts["no_age"] = 0
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
                    workers: int | None = None, hyper_rule: str = "overlap") -> Dataset:
    """Read an AI-READI root and return the validated window Dataset (notes carry provenance and skips).

    Extraction runs through `pipeline.extract_cohort` (participants in parallel, into a temporary folder).
    """
    import tempfile

    from .pipeline import extract_cohort, read_table

    with tempfile.TemporaryDirectory(prefix="sensecf-extract-") as tmp:
        summary = extract_cohort(root, Path(tmp) / "features.parquet", demographics=demographics,
                                 workers=workers, progress=progress, hyper_rule=hyper_rule)
        frame = read_table(summary.out)
    schema = aireadi_stress_schema(hyper_rule)
    frame = schema.validate_frame(frame, source=str(summary.root))
    return Dataset(name="aireadi", schema=schema, frame=frame, notes=summary.notes)
