"""Schema: YAML round-trip, validation errors naming file/row/column, constraint checks."""

import pandas as pd
import pytest

from sensecf.errors import ConfigError, DataError
from sensecf.cf.constraints import changed_features, constraint_violations, project_to_constraints
from sensecf.data.aireadi.schema import aireadi_stress_schema
from sensecf.schema import FeatureSpec, Schema


def test_builtin_schema_has_the_papers_twelve_features():
    s = aireadi_stress_schema()
    assert len(s.features) == 12
    assert s.immutable == ["age", "gender", "medication", "subgroup"]
    assert s.label_names == {0: "moderate stress", 1: "high stress"}


def test_yaml_round_trip(tmp_path):
    s = aireadi_stress_schema()
    path = tmp_path / "s.yaml"
    s.to_yaml(path)
    assert Schema.from_yaml(path) == s


def test_bad_schema_fields_are_named(tmp_path):
    with pytest.raises(ConfigError, match="levels"):
        FeatureSpec("sex", "categorical")
    p = tmp_path / "bad.yaml"
    p.write_text("name: x\nfeatures:\n  - name: a\n    colour: red\n")
    with pytest.raises(ConfigError, match="colour"):
        Schema.from_yaml(p)


def _frame():
    s = aireadi_stress_schema()
    row = {"awake_pct": 10, "light_pct": 50, "deep_pct": 15, "rem_pct": 25, "mean_steps": 5, "mean_glucose": 120,
           "hyper_events": 0, "time_in_range_pct": 90, "age": 50, "gender": "female", "medication": "none",
           "subgroup": "healthy", "label": 0}
    return s, pd.DataFrame([row, {**row, "label": 1}])


def test_validate_frame_names_row_and_column():
    s, df = _frame()
    assert len(s.validate_frame(df, "f.csv")) == 2
    bad = df.copy()
    bad.loc[1, "mean_glucose"] = None
    with pytest.raises(DataError) as e:
        s.validate_frame(bad, "f.csv")
    assert "f.csv" in str(e.value) and "row 1" in str(e.value) and "mean_glucose" in str(e.value)
    bad = df.copy()
    bad.loc[0, "subgroup"] = "martian"
    with pytest.raises(DataError, match="subgroup"):
        s.validate_frame(bad, "f.csv")
    with pytest.raises(DataError, match="missing column"):
        s.validate_frame(df.drop(columns="age"), "f.csv")


def test_constraints_flag_immutables_directions_and_bounds():
    s, df = _frame()
    f = s.validate_frame(df).iloc[0][s.feature_names]
    cf = f.copy()
    cf["age"], cf["mean_steps"], cf["awake_pct"] = 51, 4.0, 120.0
    problems = " | ".join(constraint_violations(f, cf, s))
    assert "age: immutable" in problems and "mean_steps: may only increase" in problems and "upper bound" in problems
    fixed = project_to_constraints(f, cf, s)
    assert constraint_violations(f, fixed, s) == []
    # float noise is not a change
    noisy = f.copy()
    noisy["mean_glucose"] = 120 - 1e-9
    assert changed_features(f, noisy, s) == []


def test_a_change_is_a_change_at_display_precision():
    """52.0885 shown as 52.1 and rewritten as 52.1 is no change; 52.2 is; integers compare as whole numbers."""
    from sensecf.cf.constraints import snap_to_factual

    s = Schema("d", [FeatureSpec("g", precision=1), FeatureSpec("n", "integer", precision=0),
                     FeatureSpec("c", "categorical", levels=["a", "b"])])
    f = pd.Series({"g": 52.0885, "n": 3.0, "c": "a"})
    assert changed_features(f, pd.Series({"g": 52.1, "n": 3.4, "c": "a"}), s) == []
    assert changed_features(f, pd.Series({"g": 52.2, "n": 4.0, "c": "b"}), s) == ["g", "n", "c"]
    snapped = snap_to_factual(f.to_frame().T, pd.DataFrame([{"g": 52.1, "n": 3.6, "c": "a"}]), s).iloc[0]
    assert snapped["g"] == 52.0885 and snapped["n"] == 4.0   # unchanged -> the factual's exact value; whole numbers


def test_goal_relative_directions_are_mirrored_away_from_the_desired_class():
    s = Schema("g", [FeatureSpec("glucose", better="lower"), FeatureSpec("steps", direction="increase")],
               desired_class=0)
    f = pd.Series({"glucose": 150.0, "steps": 10.0})
    up = pd.Series({"glucose": 170.0, "steps": 10.0})
    assert constraint_violations(f, up, s, target=0) == ["glucose: may only decrease (150.00 -> 170.00)"]
    assert constraint_violations(f, up, s, target=1) == []        # towards the other class glucose may rise
    down = pd.Series({"glucose": 150.0, "steps": 5.0})
    assert "steps: may only increase" in constraint_violations(f, down, s, target=1)[0]  # absolute stays absolute
