"""Feature schema: what each column means, how it may change, and how to validate a table against it.

A schema is data (YAML), loaded strictly: every field is type-checked, unknown keys are rejected at every level
with the valid ones named, and YAML 1.1 booleans where text is expected (`levels: [no, yes]`) are refused with a
hint to quote them.

Change constraints of a feature:
- `immutable`: never changes (age, sex, study group).
- `direction` (absolute): `increase` / `decrease` holds for counterfactuals towards either class.
- `better` (goal-relative): `higher` / `lower` is the direction that serves the schema's `desired_class`; a
  counterfactual towards the desired class may only move the feature that way, one towards the other class only
  the other way (mirrored), so Table III and augmentation can explain both classes.
- `actionability`: how easily a person can change the feature: `high` (e.g. steps), `medium` (glucose, time in
  range: diet, medication, activity), `low` (sleep architecture), `none` (immutables). It weighs the `cost` metric
  and the calibration search (ACTIONABILITY_WEIGHTS) and defines `actionable_share` (medium or high).
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import yaml

from .errors import ConfigError, DataError

Kind = Literal["continuous", "integer", "categorical"]
Direction = Literal["any", "increase", "decrease"]
KINDS = ("continuous", "integer", "categorical")
DIRECTIONS = ("any", "increase", "decrease")
BETTER = ("higher", "lower")
ACTIONABILITY = ("high", "medium", "low", "none")
#: cost weight of a unit (range-normalised) change per actionability level; `none` features never change
ACTIONABILITY_WEIGHTS = {"high": 1.0, "medium": 2.0, "low": 4.0, "none": math.inf}
#: levels that count as actionable in `actionable_share` and in actionable-only searches
ACTIONABLE_LEVELS = ("high", "medium")
BOUNDS_POLICIES = ("error", "drop", "keep")


@dataclass
class FeatureSpec:
    """One feature: type, unit, one-line description (used in LLM prompts) and change constraints."""

    name: str
    kind: Kind = "continuous"
    unit: str = ""
    description: str = ""
    immutable: bool = False
    direction: Direction = "any"
    bounds: tuple[float | None, float | None] = (None, None)
    levels: list[str] | None = None
    precision: int = 2
    display: str | None = None
    better: Literal["higher", "lower"] | None = None
    actionability: Literal["high", "medium", "low", "none"] | None = None

    def __post_init__(self):
        where = f"feature {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"a feature needs a non-empty text 'name', got {self.name!r}")
        if self.kind not in KINDS:
            raise ConfigError(f"{where}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.direction not in DIRECTIONS:
            raise ConfigError(f"{where}: direction must be one of {DIRECTIONS}, got {self.direction!r}")
        if self.better is not None and self.better not in BETTER:
            raise ConfigError(f"{where}: better must be one of {BETTER} or null, got {self.better!r}")
        if self.better is not None and self.direction != "any":
            raise ConfigError(f"{where}: give either an absolute 'direction' or a goal-relative 'better', not both")
        for name in ("unit", "description"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"{where}: {name} must be text, got {getattr(self, name)!r}")
        if self.display is not None and not isinstance(self.display, str):
            raise ConfigError(f"{where}: display must be text, got {self.display!r}")
        if not isinstance(self.immutable, bool):
            raise ConfigError(f"{where}: immutable must be true or false (unquoted), got {self.immutable!r}")
        if isinstance(self.precision, bool) or not isinstance(self.precision, int) or self.precision < 0:
            raise ConfigError(f"{where}: precision must be a whole number >= 0, got {self.precision!r}")
        if self.actionability is None:
            self.actionability = "none" if self.immutable else "medium"
        if self.actionability not in ACTIONABILITY:
            raise ConfigError(f"{where}: actionability must be one of {ACTIONABILITY}, got {self.actionability!r}")
        if self.immutable and self.actionability != "none":
            raise ConfigError(f"{where}: an immutable feature has actionability 'none', got {self.actionability!r}")
        if self.kind == "categorical":
            if not self.levels:
                raise ConfigError(f"{where}: a categorical feature needs 'levels'")
            if not isinstance(self.levels, (list, tuple)):
                raise ConfigError(f"{where}: levels must be a list, e.g. [a, b, c], got {self.levels!r}")
            for level in self.levels:
                if isinstance(level, bool):
                    raise ConfigError(f"{where}: level {level!r} was read as a boolean (YAML reads yes/no/on/off/"
                                      "true/false unquoted as booleans); quote it, e.g. 'no'")
                if not isinstance(level, (str, int, float)):
                    raise ConfigError(f"{where}: levels must be text or numbers, got {level!r}")
            self.levels = [str(v) for v in self.levels]
            if len(set(self.levels)) != len(self.levels):
                raise ConfigError(f"{where}: duplicate levels in {self.levels}")
        elif self.levels:
            raise ConfigError(f"{where}: only categorical features take 'levels'")
        self.bounds = _bounds(self.bounds, where)

    @property
    def label(self) -> str:
        """Human-readable name (display name, else the column name)."""
        return self.display or self.name

    @property
    def is_categorical(self) -> bool:
        return self.kind == "categorical"

    @property
    def weight(self) -> float:
        """Cost weight of a range-normalised change (ACTIONABILITY_WEIGHTS)."""
        return ACTIONABILITY_WEIGHTS[self.actionability]

    @property
    def actionable(self) -> bool:
        """Whether the feature counts as actionable (actionability medium or high)."""
        return self.actionability in ACTIONABLE_LEVELS

    def format_value(self, value) -> str:
        """Render a value the way prompts and reports show it."""
        if self.is_categorical:
            return str(value)
        if self.kind == "integer":
            return str(int(round(float(value))))
        return f"{float(value):.{self.precision}f}"

    def display_round(self, value: float) -> float:
        """A numeric value rounded to the precision it is shown at."""
        return float(round(float(value))) if self.kind == "integer" else round(float(value), self.precision)

    def allowed_direction(self, target: int | None, desired_class: int | None) -> str:
        """'any', 'increase' or 'decrease' for a counterfactual towards `target`: the absolute direction, or the
        goal-relative one (as given towards the desired class — also when `target` is None — mirrored otherwise)."""
        if self.direction != "any" or self.better is None:
            return self.direction
        towards_goal = target is None or desired_class is None or int(target) == int(desired_class)
        up = (self.better == "higher") == towards_goal
        return "increase" if up else "decrease"


def _bounds(raw, where: str) -> tuple[float | None, float | None]:
    if raw is None:
        return (None, None)
    if isinstance(raw, (str, bytes)) or not hasattr(raw, "__len__") or len(raw) != 2:
        raise ConfigError(f"{where}: bounds must be a list [lower, upper] (null for none), got {raw!r}")
    out = []
    for v in raw:
        if v is None:
            out.append(None)
        elif isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ConfigError(f"{where}: bounds must hold numbers or null, got {raw!r}")
        else:
            out.append(float(v))
    if out[0] is not None and out[1] is not None and out[0] > out[1]:
        raise ConfigError(f"{where}: lower bound {out[0]:g} is above upper bound {out[1]:g}")
    return (out[0], out[1])


FEATURE_KEYS = tuple(f.name for f in fields(FeatureSpec))
SCHEMA_KEYS = ("name", "description", "label", "label_names", "group", "desired_class", "out_of_bounds", "features")
#: what loading a table does with a value outside its feature's clinical bounds (schema key `out_of_bounds`)
OUT_OF_BOUNDS = ("error", "drop")


@dataclass
class Schema:
    """A dataset's features, label, grouping column (participant id) and the desired (goal) class."""

    name: str
    features: list[FeatureSpec]
    label: str = "label"
    label_names: dict[int, str] = field(default_factory=lambda: {0: "class 0", 1: "class 1"})
    group: str | None = None
    description: str = ""
    desired_class: int | None = None
    out_of_bounds: str = "error"

    def __post_init__(self):
        names = [f.name for f in self.features]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ConfigError(f"schema {self.name!r}: duplicate feature names {sorted(dupes)}")
        if not isinstance(self.label_names, dict):
            raise ConfigError(f"schema {self.name!r}: label_names must be a mapping like {{0: no, 1: yes}}, "
                              f"got {self.label_names!r}")
        try:
            self.label_names = {int(k): str(v) for k, v in self.label_names.items()}
        except (TypeError, ValueError):
            raise ConfigError(f"schema {self.name!r}: label_names keys must be the integer labels, got "
                              f"{list(self.label_names)}") from None
        if self.group is not None and not isinstance(self.group, str):
            raise ConfigError(f"schema {self.name!r}: group must be a column name or null, got {self.group!r}")
        if self.desired_class is not None and (isinstance(self.desired_class, bool) or
                                               self.desired_class not in self.label_names):
            raise ConfigError(f"schema {self.name!r}: desired_class must be one of the labels "
                              f"{sorted(self.label_names)}, got {self.desired_class!r}")
        if self.out_of_bounds not in OUT_OF_BOUNDS:
            raise ConfigError(f"schema {self.name!r}: out_of_bounds must be one of {list(OUT_OF_BOUNDS)} (error: a "
                              f"value outside a feature's bounds stops loading; drop: its row is dropped and "
                              f"counted), got {self.out_of_bounds!r}")

    # --- lookups -------------------------------------------------------------------------------
    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def continuous(self) -> list[str]:
        """Numeric features (continuous and integer)."""
        return [f.name for f in self.features if not f.is_categorical]

    @property
    def categorical(self) -> list[str]:
        return [f.name for f in self.features if f.is_categorical]

    @property
    def immutable(self) -> list[str]:
        return [f.name for f in self.features if f.immutable]

    @property
    def mutable(self) -> list[str]:
        return [f.name for f in self.features if not f.immutable]

    @property
    def actionable(self) -> list[str]:
        """Features of actionability medium or high."""
        return [f.name for f in self.features if f.actionable]

    def __getitem__(self, name: str) -> FeatureSpec:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def __contains__(self, name: str) -> bool:
        return any(f.name == name for f in self.features)

    def with_fixed(self, names) -> "Schema":
        """A copy in which the named features are immutable too (e.g. the `@actionable` restriction)."""
        names = set(names)
        feats = [FeatureSpec(**{**_spec_dict(f), "immutable": True, "actionability": "none", "direction": "any",
                                "better": None}) if f.name in names and not f.immutable else f
                 for f in self.features]
        return Schema(self.name, feats, self.label, dict(self.label_names), self.group, self.description,
                      self.desired_class)

    # --- YAML ----------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        feats = []
        for f in self.features:
            d = _spec_dict(f)
            d["bounds"] = list(f.bounds)
            feats.append({k: v for k, v in d.items() if v is not None or k == "bounds"})
        return {"name": self.name, "description": self.description, "label": self.label,
                "label_names": dict(self.label_names), "group": self.group, "desired_class": self.desired_class,
                "out_of_bounds": self.out_of_bounds, "features": feats}

    @classmethod
    def from_dict(cls, data: dict, source: str = "<schema>") -> "Schema":
        """A schema from its mapping; every level is checked (unknown keys name the valid ones)."""
        if not isinstance(data, dict) or "features" not in data:
            raise ConfigError(f"{source}: a schema needs a top-level 'features' list")
        _reject_unknown(data, SCHEMA_KEYS, source, "the schema")
        if not isinstance(data["features"], list) or not data["features"]:
            raise ConfigError(f"{source}: 'features' must be a non-empty list of feature mappings")
        feats = []
        for i, raw in enumerate(data["features"]):
            if not isinstance(raw, dict) or "name" not in raw:
                raise ConfigError(f"{source}: features[{i}] needs at least a 'name'")
            _reject_unknown(raw, FEATURE_KEYS, source, f"feature {raw['name']!r}")
            try:
                feats.append(FeatureSpec(**raw))
            except ConfigError as e:
                raise ConfigError(f"{source}: {e}") from None
        for key in ("name", "label", "description"):
            if key in data and not isinstance(data[key], str):
                raise ConfigError(f"{source}: '{key}' must be text, got {data[key]!r}")
        try:
            return cls(name=str(data.get("name", Path(source).stem)), features=feats,
                       label=str(data.get("label", "label")),
                       label_names=data.get("label_names") or {0: "class 0", 1: "class 1"},
                       group=data.get("group"), description=str(data.get("description", "")),
                       desired_class=data.get("desired_class"),
                       out_of_bounds=data.get("out_of_bounds", "error"))
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None

    def to_yaml(self, path: str | Path | None = None) -> str:
        text = yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)
        if path is not None:
            from .files import write_text

            write_text(Path(path), text)
        return text

    @classmethod
    def from_yaml(cls, path_or_text: str | Path) -> "Schema":
        """A schema from a YAML file (or YAML text starting with `name:`, `features:` or `{`)."""
        text = str(path_or_text)
        if isinstance(path_or_text, Path) or not text.lstrip().startswith(("name:", "features:", "{")):
            p = Path(path_or_text)
            if not p.exists():
                raise ConfigError(f"schema file not found: {p}")
            if not p.is_file():
                raise ConfigError(f"schema path {p} is not a file")
            try:
                text = p.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise ConfigError(f"{p}: not a text file (a schema is YAML)") from None
            source = str(p)
        else:
            source = "<schema>"
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"{source}: not valid YAML: {e}") from None
        return cls.from_dict(data, source=source)

    # --- validation ----------------------------------------------------------------------------
    def validate_frame(self, df: pd.DataFrame, source: str = "<table>", require_label: bool = True,
                       bounds: str = "error", notes: list[str] | None = None) -> pd.DataFrame:
        """Check columns, types, NaN/inf, clinical bounds, categorical levels and the label; return a copy with
        canonical dtypes.

        bounds: "error" (a value outside a feature's clinical bounds is a DataError), "drop" (such rows are
        dropped and counted in `notes`) or "keep". Raises DataError naming the source, row and column of the
        first problem found.
        """
        if bounds not in BOUNDS_POLICIES:
            raise ConfigError(f"bounds policy must be one of {BOUNDS_POLICIES}, got {bounds!r}")
        needed = self.feature_names + ([self.label] if require_label else [])
        missing = [c for c in needed if c not in df.columns]
        if missing:
            raise DataError(f"missing column(s) {missing}{close_match(missing[0], df.columns)}; the table has "
                            f"{[str(c) for c in df.columns]}, the schema {self.name!r} expects {needed}",
                            file=source, column=missing[0])
        out = df.copy()
        outside = pd.Series(False, index=out.index)
        for f in self.features:
            col = out[f.name]
            nan_rows = col.index[col.isna()]
            if len(nan_rows):
                raise DataError(f"{len(nan_rows)} missing value(s) in feature {f.name!r}", file=source,
                                row=nan_rows[0], column=f.name)
            if f.is_categorical:
                vals = col.astype(str)
                bad = ~vals.isin(f.levels)
                if bad.any():
                    r = vals.index[bad][0]
                    raise DataError(f"value {vals[r]!r} is not one of the levels {f.levels}", file=source,
                                    row=r, column=f.name)
                out[f.name] = vals
                continue
            num = pd.to_numeric(col, errors="coerce")
            bad = num.isna()
            if bad.any():
                r = num.index[bad][0]
                raise DataError(f"value {col[r]!r} is not a number", file=source, row=r, column=f.name)
            inf = ~np.isfinite(num.astype(float))
            if inf.any():
                r = num.index[inf][0]
                raise DataError(f"value {col[r]!r} is not a finite number", file=source, row=r, column=f.name)
            num = num.astype(float)
            lo, hi = f.bounds
            off = pd.Series(False, index=num.index)
            if lo is not None:
                off |= num < lo
            if hi is not None:
                off |= num > hi
            if off.any() and bounds == "error":
                r = num.index[off][0]
                raise DataError(f"value {col[r]} lies outside the clinical bounds [{_g(lo)}, {_g(hi)}] of "
                                f"{f.name!r} ({int(off.sum())} row(s) in all; fix the data, widen the schema's "
                                "bounds, or drop such rows with `out_of_bounds: drop` in the schema)", file=source,
                                row=r, column=f.name)
            if off.any() and notes is not None and bounds == "drop":
                notes.append(f"{source}: dropped {int(off.sum())} row(s) with {f.name} outside its clinical "
                             f"bounds [{_g(lo)}, {_g(hi)}]")
            outside |= off
            out[f.name] = num
        if require_label:
            lab = pd.to_numeric(out[self.label], errors="coerce")
            bad = lab.isna() | ~lab.isin(list(self.label_names))
            classes = lab.dropna().unique()
            if bad.any() and len(classes) > 2:
                r = lab.index[bad][0]
                raise DataError(f"the label has {len(classes)} classes (e.g. {out[self.label][r]!r}); sensecf explains "
                                f"binary classifiers with labels {sorted(self.label_names)}", file=source, row=r,
                                column=self.label)
            if bad.any():
                r = lab.index[bad][0]
                raise DataError(f"label {out[self.label][r]!r} is not one of {sorted(self.label_names)}",
                                file=source, row=r, column=self.label)
            out[self.label] = lab.astype(int)
        if bounds == "drop" and outside.any():
            out = out[~outside]
        return out

    def coerce(self, df: pd.DataFrame) -> pd.DataFrame:
        """The schema's feature columns with canonical dtypes (categoricals as text, numbers as float; values that
        are not numbers become NaN). The one place where candidate tables are typed."""
        missing = [c for c in self.feature_names if c not in df.columns]
        if missing:
            raise DataError(f"table lacks feature column(s) {missing}", column=missing[0])
        out = df[self.feature_names].copy()
        for f in self.features:
            col = out[f.name]
            out[f.name] = col.astype(str) if f.is_categorical else \
                pd.to_numeric(col, errors="coerce").astype(float)
        return out

    def observed_ranges(self, X: pd.DataFrame) -> dict[str, tuple[float, float] | list[str]]:
        """Per feature: (min, max) for numeric, sorted observed levels for categorical (plausibility)."""
        rng: dict[str, tuple[float, float] | list[str]] = {}
        for f in self.features:
            if f.is_categorical:
                rng[f.name] = sorted(X[f.name].astype(str).unique().tolist())
            else:
                v = X[f.name].astype(float)
                rng[f.name] = (float(np.nanmin(v)), float(np.nanmax(v)))
        return rng


def close_match(name: str, columns) -> str:
    """' (did you mean 'X'?)' naming the column closest to `name` (same letters in another case first), or ''."""
    cols = [str(c) for c in columns]
    lower = {c.lower(): c for c in cols}
    close = [lower[name.lower()]] if name.lower() in lower else difflib.get_close_matches(name, cols, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _g(v) -> str:
    return "–" if v is None else f"{v:g}"


def _spec_dict(f: FeatureSpec) -> dict:
    return {k.name: getattr(f, k.name) for k in fields(FeatureSpec)}


def _reject_unknown(mapping: dict, valid: tuple[str, ...], source: str, what: str) -> None:
    unknown = [k for k in mapping if k not in valid]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), valid, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{source}: {what} has unknown field(s) {sorted(map(str, unknown))}{hint}; valid: "
                          f"{', '.join(valid)}")
