"""The optional participants file (CSV/TSV): one row per participant, an id column (participant_id, id,
subject, ...) and per-participant columns such as age, sex or a diagnosis label.

Each column is typed from its values: numeric when at least half of its non-empty cells are numbers (every
other cell is warned about by file, line and column, and that participant has no value), categorical when it has
at most 12 distinct values (empty cells -> "unknown"), otherwise free text, which is not used. A split column
(recommended_split or split: train/val/test) is kept for the patient-level split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ...errors import DataError
from .common import norm, read_table
from .long import ROLES

FILE_NAMES = ("participants.csv", "participants.tsv")
SPLIT_COLUMNS = ("recommended_split", "split")
MAX_LEVELS = 12
NUMERIC_SHARE = 0.5


@dataclass
class Participants:
    """A typed participants table (index participant_id)."""

    source: str
    table: pd.DataFrame              # typed columns (numbers as float, NaN when missing; categories as text)
    text: pd.DataFrame               # every column as written (labels are read from here)
    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    ignored: dict[str, str] = field(default_factory=dict)
    split: str | None = None
    warnings: list[str] = field(default_factory=list)


def find_file(folder: Path) -> Path | None:
    """participants.csv / participants.tsv in a folder."""
    return next((folder / n for n in FILE_NAMES if (folder / n).is_file()), None)


def read_participants(path: Path) -> Participants:
    """Read and type a participants file (see the module doc)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("participants file not found", file=str(path))
    df = read_table(path)
    by_norm = {norm(c): c for c in df.columns}
    idcol = next((by_norm[n] for n in ROLES["id"] if n in by_norm), None)
    if idcol is None:
        raise DataError(f"no participant id column (participant_id, id, subject, ...); the file has "
                        f"{list(df.columns)}", file=str(path), column="participant_id")
    ids = df[idcol].str.strip()
    dup = ids.duplicated() & (ids != "")
    if dup.any():
        raise DataError(f"duplicate participant id {ids[dup].iloc[0]!r}", file=str(path), row=ids.index[dup][0],
                        column=idcol)
    df = df[ids != ""]
    text = df.drop(columns=[idcol]).apply(lambda c: c.str.strip())
    text.index = pd.Index(ids[ids != ""], name="participant_id")
    lines = pd.Series(df.index, index=text.index)
    out = Participants(str(path), pd.DataFrame(index=text.index), text)
    for col in text.columns:
        cells = text[col]
        filled = cells[cells != ""]
        num = pd.to_numeric(filled, errors="coerce")
        if norm(col) in SPLIT_COLUMNS and out.split is None:
            out.split = col
            out.table[col] = cells.str.lower()
        elif len(filled) and num.notna().mean() >= NUMERIC_SHARE:
            out.numeric.append(col)
            out.table[col] = pd.to_numeric(cells, errors="coerce")
            for pid in num.index[num.isna()]:
                out.warnings.append(f"{path}, line {lines[pid]}, column {col!r}: {cells[pid]!r} is not a number; "
                                    f"participant {pid} has no {col}")
        elif 0 < filled.nunique() <= MAX_LEVELS:
            out.categorical.append(col)
            out.table[col] = cells.where(cells != "", "unknown")
        else:
            out.ignored[col] = "empty" if not len(filled) else f"free text ({filled.nunique()} distinct values)"
    return out
