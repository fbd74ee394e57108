"""What the importers share: reading text tables (BOM, gzip, separator), participant ids from paths, and the
per-file result every format reader returns."""

from __future__ import annotations

import csv
import gzip
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ...errors import DataError

TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz")
MODALITIES = ("cgm", "steps", "stress", "sleep")


@dataclass
class ImportedFile:
    """One file's readings: per modality a long table (participant_id, time, value; sleep: participant_id,
    start, end, stage) in local time, plus what the user should hear about the file."""

    path: Path
    format: str
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def add_warnings(out: ImportedFile, report, bad_times: int, what: str) -> None:
    """Append a file's dropped-value report and its count of unreadable timestamps to its warnings."""
    if report.message():
        out.warnings.append(report.message())
    if bad_times:
        out.warnings.append(f"{out.path}: {bad_times} {what} row(s) with an unreadable or DST-ambiguous timestamp "
                            "dropped")


def table_name(path: Path) -> str:
    """The file name without its table suffix (.csv, .csv.gz, ...)."""
    name = path.name
    for suffix in sorted(TABLE_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def is_table(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(TABLE_SUFFIXES) and not path.name.startswith(".")


def participant_from_path(path: Path, root: Path | None) -> str:
    """A single-person export's participant id: the first folder below `root` holding it, else the file name."""
    if root is not None and path.parent != root:
        try:
            return path.relative_to(root).parts[0]
        except ValueError:
            pass
    return table_name(path)


def read_text(path: Path) -> str:
    """A text file's content (UTF-8 with or without BOM, or Latin-1; .gz unpacked)."""
    try:
        data = gzip.open(path).read() if path.name.lower().endswith(".gz") else path.read_bytes()
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read the file: {e}", file=str(path)) from None
    for enc in ("utf-8-sig", "latin-1"):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    raise DataError("not a text file", file=str(path))  # pragma: no cover (latin-1 decodes any bytes)


def head_lines(path: Path, n: int = 3) -> list[str]:
    """The first n non-empty lines of a text file."""
    return [ln for ln in read_text(path).splitlines() if ln.strip()][:n]


def separator(line: str) -> str:
    """The field separator of a header line: tab, semicolon or comma."""
    try:
        return csv.Sniffer().sniff(line, delimiters=",;\t").delimiter
    except csv.Error:
        return ","


def read_table(path: Path, skip: int = 0) -> pd.DataFrame:
    """A delimited text table as strings ('' for empty cells), `skip` lines before its header; the index holds
    the file's line numbers (header = line skip + 1)."""
    text = read_text(path)
    lines = text.splitlines()
    if len(lines) <= skip:
        raise DataError("the file has no header line", file=str(path))
    sep = separator(lines[skip])
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep, skiprows=skip, dtype=str, keep_default_na=False,
                         skip_blank_lines=True, index_col=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise DataError(f"cannot parse the table: {e}", file=str(path)) from None
    df.columns = [str(c).strip() for c in df.columns]
    df.index = df.index + skip + 2
    return df


def norm(name: str) -> str:
    """A column name reduced for matching: lower case, runs of non-alphanumerics -> '_'."""
    return re.sub(r"[^0-9a-z]+", "_", str(name).strip().lower()).strip("_")
