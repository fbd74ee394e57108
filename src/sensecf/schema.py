"""Feature schema: what each column means, how it may change, and how to validate a table against it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
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

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"feature {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.direction not in DIRECTIONS:
            raise ConfigError(f"feature {self.name!r}: direction must be one of {DIRECTIONS}, got {self.direction!r}")
        if self.kind == "categorical":
            if not self.levels:
                raise ConfigError(f"feature {self.name!r}: a categorical feature needs 'levels'")
            self.levels = [str(v) for v in self.levels]
        elif self.levels:
            raise ConfigError(f"feature {self.name!r}: only categorical features take 'levels'")
        lo, hi = (tuple(self.bounds) + (None, None))[:2] if self.bounds is not None else (None, None)
        self.bounds = (None if lo is None else float(lo), None if hi is None else float(hi))
        if self.bounds[0] is not None and self.bounds[1] is not None and self.bounds[0] > self.bounds[1]:
            raise ConfigError(f"feature {self.name!r}: lower bound {lo} is above upper bound {hi}")

    @property
    def label(self) -> str:
        """Human-readable name (display name, else the column name)."""
        return self.display or self.name

    @property
    def is_categorical(self) -> bool:
        return self.kind == "categorical"

    def format_value(self, value) -> str:
        """Render a value the way prompts and reports show it."""
        if self.is_categorical:
            return str(value)
        if self.kind == "integer":
            return str(int(round(float(value))))
        return f"{float(value):.{self.precision}f}"


@dataclass
class Schema:
    """A dataset's features, label and grouping column (participant id)."""

    name: str
    features: list[FeatureSpec]
    label: str = "label"
    label_names: dict[int, str] = field(default_factory=lambda: {0: "class 0", 1: "class 1"})
    group: str | None = None
    description: str = ""

    def __post_init__(self):
        names = [f.name for f in self.features]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ConfigError(f"schema {self.name!r}: duplicate feature names {sorted(dupes)}")
        self.label_names = {int(k): str(v) for k, v in self.label_names.items()}

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

    def __getitem__(self, name: str) -> FeatureSpec:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def __contains__(self, name: str) -> bool:
        return any(f.name == name for f in self.features)

    # --- YAML ----------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        feats = []
        for f in self.features:
            d = asdict(f)
            d["bounds"] = list(f.bounds)
            feats.append({k: v for k, v in d.items() if v is not None or k == "bounds"})
        return {"name": self.name, "description": self.description, "label": self.label,
                "label_names": dict(self.label_names), "group": self.group, "features": feats}

    @classmethod
    def from_dict(cls, data: dict, source: str = "<schema>") -> "Schema":
        if not isinstance(data, dict) or "features" not in data:
            raise ConfigError(f"{source}: a schema needs a top-level 'features' list")
        feats = []
        allowed = set(FeatureSpec.__dataclass_fields__)
        for i, raw in enumerate(data["features"]):
            if not isinstance(raw, dict) or "name" not in raw:
                raise ConfigError(f"{source}: features[{i}] needs at least a 'name'")
            unknown = set(raw) - allowed
            if unknown:
                raise ConfigError(f"{source}: feature {raw['name']!r} has unknown fields {sorted(unknown)}")
            raw = dict(raw)
            if raw.get("bounds") is not None:
                raw["bounds"] = tuple(raw["bounds"])
            else:
                raw.pop("bounds", None)
            feats.append(FeatureSpec(**raw))
        return cls(name=str(data.get("name", Path(source).stem)), features=feats,
                   label=str(data.get("label", "label")),
                   label_names=data.get("label_names") or {0: "class 0", 1: "class 1"},
                   group=data.get("group"), description=str(data.get("description", "")))

    def to_yaml(self, path: str | Path | None = None) -> str:
        text = yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_yaml(cls, path_or_text: str | Path) -> "Schema":
        p = Path(path_or_text) if not str(path_or_text).lstrip().startswith(("name:", "features:", "{")) else None
        if p is not None:
            if not p.exists():
                raise ConfigError(f"schema file not found: {p}")
            try:
                data = yaml.safe_load(p.read_text())
            except yaml.YAMLError as e:
                raise ConfigError(f"{p}: not valid YAML: {e}") from None
            return cls.from_dict(data, source=str(p))
        return cls.from_dict(yaml.safe_load(str(path_or_text)))

    # --- validation ----------------------------------------------------------------------------
    def validate_frame(self, df: pd.DataFrame, source: str = "<table>", require_label: bool = True) -> pd.DataFrame:
        """Check columns, types, NaNs and categorical levels; return a copy with canonical dtypes.

        Raises DataError naming the source, row and column of the first problem found.
        """
        needed = self.feature_names + ([self.label] if require_label else [])
        missing = [c for c in needed if c not in df.columns]
        if missing:
            raise DataError(f"missing column(s) {missing}; the schema {self.name!r} expects {needed}",
                            file=source, column=missing[0])
        out = df.copy()
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
            else:
                num = pd.to_numeric(col, errors="coerce")
                bad = num.isna()
                if bad.any():
                    r = num.index[bad][0]
                    raise DataError(f"value {col[r]!r} is not a number", file=source, row=r, column=f.name)
                out[f.name] = num.astype(float)
        if require_label:
            lab = pd.to_numeric(out[self.label], errors="coerce")
            bad = lab.isna() | ~lab.isin(list(self.label_names))
            if bad.any():
                r = lab.index[bad][0]
                raise DataError(f"label {out[self.label][r]!r} is not one of {sorted(self.label_names)}",
                                file=source, row=r, column=self.label)
            out[self.label] = lab.astype(int)
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


# ---- built-in schemas ------------------------------------------------------------------------------

SUBGROUPS = ["healthy", "prediabetes", "oral_t2dm", "insulin_t2dm"]
MEDICATIONS = ["none", "oral", "insulin"]
GENDERS = ["female", "male", "unknown"]


def aireadi_stress_schema() -> Schema:
    """The paper's 12 features for the AI-READI stress task (label 1 = high stress)."""
    F = FeatureSpec
    return Schema(
        name="aireadi-stress",
        description="AI-READI wearable windows: 2-h sensor summaries, last night's sleep stages, demographics; "
                    "label = day's mean Garmin stress > 75.",
        label="label",
        label_names={0: "moderate stress", 1: "high stress"},
        group="participant_id",
        features=[
            F("awake_pct", "continuous", "%", "share of last night's sleep time spent awake", bounds=(0, 100),
              precision=1, display="Awake %"),
            F("light_pct", "continuous", "%", "share of last night's sleep time in light sleep", bounds=(0, 100),
              precision=1, display="Light sleep %"),
            F("deep_pct", "continuous", "%", "share of last night's sleep time in deep sleep", bounds=(0, 100),
              precision=1, display="Deep sleep %"),
            F("rem_pct", "continuous", "%", "share of last night's sleep time in REM sleep", bounds=(0, 100),
              precision=1, display="REM sleep %"),
            F("mean_steps", "continuous", "steps/min", "mean steps per minute over the 2-hour window",
              direction="increase", bounds=(0, 200), precision=1, display="Mean steps"),
            F("mean_glucose", "continuous", "mg/dL", "mean CGM glucose over the 2-hour window", bounds=(40, 400),
              precision=1, display="Mean glucose"),
            F("hyper_events", "integer", "events", "hyperglycaemic events (>=15 min above 180 mg/dL) starting "
              "in the window", bounds=(0, 8), precision=0, display="Hyperglycemic events"),
            F("time_in_range_pct", "continuous", "%", "share of CGM readings within 70-180 mg/dL in the window",
              bounds=(0, 100), precision=1, display="Time in range %"),
            F("age", "integer", "years", "age at the study visit", immutable=True, bounds=(18, 100), precision=0,
              display="Age"),
            F("gender", "categorical", "", "gender (controlled-access in AI-READI; 'unknown' when not provided)",
              immutable=True, levels=GENDERS, display="Gender"),
            F("medication", "categorical", "", "diabetes medication", immutable=True, levels=MEDICATIONS,
              display="Medication"),
            F("subgroup", "categorical", "", "study group: healthy, prediabetes, T2DM on oral medication, "
              "insulin-treated T2DM", immutable=True, levels=SUBGROUPS, display="Patient subgroup"),
        ],
    )
