"""Schema inference: a draft schema YAML from a CSV table (`sensecf schema infer`), for a person to review.

What is inferred from the data, column by column:
- role: the label (named by the user; 0/1 values required), a group column (named, or guessed: an id-like name
  whose values repeat, e.g. one participant's many windows), id columns (named, or guessed: an id-like name or
  text unique per row, or a 0..n-1 row counter) and columns left out (one value only, or text with too many
  distinct values for a categorical); every other column is a feature;
- kind: text and booleans are categorical (levels = observed values); numbers that are all whole are `integer`,
  except integer codes (few distinct values between 0 and 9, e.g. 0/1 flags or a chest-pain type 0-3), which
  are drafted as categorical with a comment; other numbers are `continuous`;
- bounds: the observed range (a conservative default: counterfactuals never leave it);
- precision: the decimals the data is written with (at most 4 significant digits);
- immutable: guessed from the name only (age, sex, gender, race, ...), actionability `none`; every other
  feature gets actionability `medium`.
Goal-relative directions (`better`), `desired_class` and the class names cannot be read from data: the YAML's
comments ask for them. The draft is checked before it is returned: it loads with `Schema` and validates the
table's complete rows.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ..errors import ConfigError, DataError
from ..schema import FeatureSpec, Schema, close_match

#: integer columns with at most this many distinct values, all in 0..CODE_MAX, are drafted as categorical codes
CODE_LEVELS, CODE_MAX = 6, 9
#: text columns with more distinct values than this are left out (ids, dates, free text)
MAX_LEVELS = 30
#: name tokens of features a person cannot change (a guess, marked for review)
IMMUTABLE_TOKENS = {"age", "sex", "gender", "male", "female", "race", "ethnicity", "ethnic", "height", "birth"}
#: name tokens of identifier columns
ID_TOKENS = {"id", "ids", "uuid", "identifier"}
ID_NAMES = {"participant", "patient", "subject", "person", "user", "record"}
MAX_DECIMALS, SIGNIFICANT = 6, 4

HEADER = """\
Draft schema inferred by `sensecf schema infer` from {source} ({rows} rows, {columns} columns).
Review every field before use; the data cannot tell:
- immutable: features a person cannot change (guessed from the names only; actionability none);
- better: lower | higher on features with a healthy direction, relative to desired_class (mirrored for
  counterfactuals towards the other class); or an absolute direction: increase | decrease;
- actionability: high | medium (the draft's default) | low | none, how easily a person changes the feature;
- desired_class: the label a counterfactual should reach for the person's good (e.g. 0 = no disease);
- bounds: the observed range; widen them to clinically plausible limits so counterfactuals may leave it;
- label_names, unit, description, display: the names and one-line descriptions prompts and reports show.
{left_out}"""


@dataclass
class ColumnRole:
    """What the draft does with one CSV column: role (label, group, id, feature, left out) and why."""

    column: str
    role: str
    kind: str = ""
    note: str = ""


@dataclass
class SchemaDraft:
    """An inferred schema, its per-feature review comments, the role of every column and the data's source."""

    schema: Schema
    comments: dict[str, dict[str, str]]
    columns: list[ColumnRole]
    source: str
    rows: int
    missing: dict[str, int] = field(default_factory=dict)
    group_comment: str = ""

    def to_yaml(self) -> str:
        """The schema as commented YAML (ruamel.yaml) that `Schema.from_yaml` loads as it is."""
        from ruamel.yaml import YAML
        from ruamel.yaml.comments import CommentedMap, CommentedSeq

        s = self.schema
        doc = CommentedMap()
        for key in ("name", "description", "label"):
            doc[key] = _text(getattr(s, key))
        doc["label_names"] = CommentedMap((k, _text(v)) for k, v in s.label_names.items())
        doc["label_names"].yaml_add_eol_comment("review: name the classes", 0)
        doc["group"] = _text(s.group) if s.group else None
        doc.yaml_add_eol_comment(self.group_comment, "group")
        doc["desired_class"] = None
        doc.yaml_add_eol_comment("review: the goal class (0 or 1); `better` directions are relative to it",
                                 "desired_class")
        feats = CommentedSeq()
        for f in s.features:
            m = CommentedMap()
            m["name"], m["kind"] = _text(f.name), f.kind
            if f.immutable:
                m["immutable"] = True
            if f.is_categorical:
                m["levels"] = _flow([_level(v) for v in f.levels])
            else:
                m["bounds"] = _flow([_number(v, f.kind) for v in f.bounds])
                m["precision"] = f.precision
            m["actionability"] = f.actionability
            for key, note in self.comments.get(f.name, {}).items():
                m.yaml_add_eol_comment(note, key)
            feats.append(m)
        doc["features"] = feats
        left = [c for c in self.columns if c.role in ("id", "left out")]
        left_out = "".join(f"Not features: {c.column} ({c.role}: {c.note})\n" for c in left)
        doc.yaml_set_start_comment(HEADER.format(source=self.source, rows=self.rows, columns=len(self.columns),
                                                 left_out=left_out).rstrip("\n"))
        out = io.StringIO()
        writer = YAML()
        writer.width = 120
        writer.indent(mapping=2, sequence=2, offset=0)
        writer.dump(doc, out)
        return out.getvalue()


def _flow(values: list):
    from ruamel.yaml.comments import CommentedSeq

    seq = CommentedSeq(values)
    seq.fa.set_flow_style()
    return seq


def _text(value: str):
    """Text that PyYAML (the loader, YAML 1.1) would read as something else (no, on, 1:30, 1e3) is quoted."""
    from ruamel.yaml.scalarstring import SingleQuotedScalarString

    try:
        same = yaml.safe_load(value) == value
    except yaml.YAMLError:
        same = False
    return value if same else SingleQuotedScalarString(value)


def _level(value: str):
    """A categorical level as YAML: integer codes as numbers (the loader reads them back as text), else text."""
    return int(value) if re.fullmatch(r"-?[1-9][0-9]*|0", value) else _text(value)


def _number(value: float | None, kind: str):
    if value is None:
        return None
    return int(value) if kind == "integer" else float(value)


# ---- inference ---------------------------------------------------------------------------------------------
def column_named(df: pd.DataFrame, name: str, option: str, source: str) -> str:
    """`name` if the table has that column, else a DataError naming the closest column and listing all."""
    cols = [str(c) for c in df.columns]
    if name in cols:
        return name
    raise DataError(f"{option} names column {name!r}, which the table lacks{close_match(name, cols)}; its "
                    f"columns: {cols}", file=source, column=name)


def _tokens(name: str) -> list[str]:
    """Name words: 'PatientID' -> [patient, id], 'resting_bp' -> [resting, bp]."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", name))
    return [t for t in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if t]


def _id_like(name: str) -> bool:
    tokens = _tokens(name)
    return bool(tokens) and (tokens[-1] in ID_TOKENS or "".join(tokens) in ID_NAMES)


def _precision(values: np.ndarray) -> tuple[int, bool]:
    """(decimals, exact): the fewest decimals that write every value, else SIGNIFICANT significant digits of the
    median magnitude."""
    for p in range(MAX_DECIMALS + 1):
        if np.allclose(np.round(values, p), values, rtol=0, atol=1e-9 * max(1.0, float(np.abs(values).max()))):
            return p, True
    scale = float(np.median(np.abs(values[values != 0]))) if np.any(values != 0) else 1.0
    return int(min(MAX_DECIMALS, max(0, SIGNIFICANT - 1 - math.floor(math.log10(scale))))), False


def _label_values(col: pd.Series, label: str, source: str) -> None:
    missing = col.index[col.isna()]
    if len(missing):
        raise DataError(f"{len(missing)} row(s) without a label", file=source, row=missing[0], column=label)
    values = sorted(col.astype(str).unique())
    as_int = pd.to_numeric(col, errors="coerce")
    if as_int.isna().any() or not set(as_int.astype(float)) <= {0.0, 1.0}:
        raise DataError(f"the label column holds {values[:6]}{' ...' if len(values) > 6 else ''}; sensecf explains "
                        "binary classifiers whose labels are 0 and 1 in the CSV: recode it (and name the classes "
                        "in label_names)", file=source, column=label)
    if len(values) < 2:
        raise DataError(f"the label column holds one class only ({values[0]})", file=source, column=label)


def _feature(name: str, col: pd.Series) -> tuple[FeatureSpec | None, dict[str, str], str]:
    """(spec or None when the column is left out, review comments per YAML key, the note on its role)."""
    comments: dict[str, str] = {}
    values = col.dropna()
    n_distinct = values.nunique()
    immutable = bool(set(_tokens(name)) & IMMUTABLE_TOKENS)
    if immutable:
        comments["immutable"] = "guessed from the name: review"
    if n_distinct <= 1:
        return None, {}, "one value only"
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        if n_distinct > MAX_LEVELS:
            return None, {}, f"text with {n_distinct} distinct values (too many levels for a categorical)"
        levels = sorted(values.astype(str).unique())
        return (FeatureSpec(name, "categorical", immutable=immutable, levels=levels), comments,
                f"{len(levels)} levels")
    v = values.to_numpy(dtype=float)
    if not np.isfinite(v).all():
        return None, {}, "holds infinite values"
    lo, hi = float(v.min()), float(v.max())
    if np.all(v == np.round(v)):
        if n_distinct <= CODE_LEVELS and lo >= 0 and hi <= CODE_MAX:
            comments["kind"] = f"integer codes ({n_distinct} values); `integer` if they are amounts (counts)"
            levels = [str(int(x)) for x in sorted(set(v))]
            return FeatureSpec(name, "categorical", immutable=immutable, levels=levels), comments, "integer codes"
        return (FeatureSpec(name, "integer", immutable=immutable, bounds=(lo, hi), precision=0), comments,
                "whole numbers")
    decimals, exact = _precision(v)
    if not exact:
        comments["precision"] = f"shown with {decimals} decimals (about {SIGNIFICANT} significant digits)"
    return (FeatureSpec(name, "continuous", immutable=immutable, bounds=(lo, hi), precision=decimals), comments,
            "numbers")


def _identifier(name: str, col: pd.Series, n: int) -> str:
    """Why the column is an identifier ('' when it is not): an id-like name unique per row, text unique per row,
    or a row counter."""
    unique = col.notna().all() and col.nunique() == n
    if not unique:
        return ""
    if _id_like(name):
        return "unique per row"
    if not pd.api.types.is_numeric_dtype(col):
        return "text unique per row"
    v = np.sort(col.to_numpy(dtype=float))
    if np.all(v == np.round(v)) and v[-1] - v[0] == n - 1:
        return "a row counter"
    return ""


def infer_schema(df: pd.DataFrame, label: str, source: str = "<table>", group: str | None = None,
                 ids: list[str] | None = None, name: str | None = None) -> SchemaDraft:
    """A draft schema of `df` (a table as pandas read it from `source`); see the module docstring. `group` and
    `ids` name the grouping and identifier columns (guessed when not given)."""
    label = column_named(df, label, "--label", source)
    _label_values(df[label], label, source)
    given = {c: column_named(df, c, "--id", source) for c in ids or []}
    if group is not None:
        group = column_named(df, group, "--group", source)
    for col, option in [(group, "--group"), *((c, "--id") for c in given)]:
        if col == label:
            raise ConfigError(f"{option} names the label column {label!r}")
    n = len(df)
    roles: list[ColumnRole] = []
    features: list[FeatureSpec] = []
    comments: dict[str, dict[str, str]] = {}
    missing: dict[str, int] = {}
    group_comment = "named by --group" if group else ""
    for col in map(str, df.columns):
        values = df[col]
        if col == label:
            roles.append(ColumnRole(col, "label", note="0/1"))
            continue
        if col == group:
            roles.append(ColumnRole(col, "group", note=f"{values.nunique()} groups"))
            continue
        if col in given:
            roles.append(ColumnRole(col, "id", note="named by --id"))
            continue
        why = _identifier(col, values, n)
        if why:
            roles.append(ColumnRole(col, "id", note=why))
            continue
        if group is None and _id_like(col) and values.notna().all() and 2 <= values.nunique() <= n // 2:
            group = col
            group_comment = (f"guessed: {values.nunique()} repeated ids for {n} rows; the split keeps each "
                             "group's rows on one side: review")
            roles.append(ColumnRole(col, "group", note="guessed from repeated ids"))
            continue
        spec, notes, note = _feature(col, values)
        if spec is None:
            roles.append(ColumnRole(col, "left out", note=note))
            continue
        gaps = int(values.isna().sum())
        if gaps:
            missing[col] = gaps
            notes["name"] = f"{gaps} missing value(s): the loader rejects them; fill or drop those rows"
        features.append(spec)
        comments[col] = notes
        roles.append(ColumnRole(col, "feature", spec.kind, note))
    if not features:
        raise DataError(f"no feature column left besides the label, group and id columns "
                        f"({', '.join(r.column for r in roles)})", file=source)
    group_comment = group_comment or ("no repeated id column found: name the column whose rows belong to one "
                                      "person (--group), if any")
    schema = Schema(name or Path(source).stem, features, label=label, label_names={0: "class 0", 1: "class 1"},
                    group=group, description=f"drafted by `sensecf schema infer` from {Path(source).name}")
    draft = SchemaDraft(schema, comments, roles, source, n, missing, group_comment)
    check_draft(draft, df)
    return draft


def check_draft(draft: SchemaDraft, df: pd.DataFrame) -> Schema:
    """The draft's YAML loaded back with Schema.from_dict and its table's complete rows validated with it."""
    schema = Schema.from_dict(yaml.safe_load(draft.to_yaml()), source=f"draft schema of {draft.source}")
    complete = df.dropna(subset=schema.feature_names)
    schema.validate_frame(complete, source=draft.source)
    return schema
