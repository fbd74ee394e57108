"""`sensecf data extract` on CGM exports and `--data` with an export folder or an extracted table, through the CLI."""

import subprocess
import sys

import pandas as pd
import yaml
from typer.testing import CliRunner

from sensecf.cli import app
from sensecf.data.loading import load_dataset
from test_importers import days_of, write_dexcom, write_libre


def test_extract_dexcom_folder_with_a_diagnosis_label(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    write_dexcom(raw / "p1.csv", days_of(200, 2))
    write_dexcom(raw / "p2.csv", days_of(120, 2))
    (raw / "participants.csv").write_text("participant_id,age,diagnosis\np1,61,T2D\np2,35,healthy\n")
    out = tmp_path / "features.csv"
    res = CliRunner().invoke(app, ["data", "extract", str(raw), "--out", str(out), "--label", "diagnosis"])
    assert res.exit_code == 0, res.output
    assert "not available" in res.output and "mean_steps (no steps data)" in res.output
    assert "features: mean_glucose, time_in_range_pct, hyper_events, age" in res.output
    frame = pd.read_csv(out, dtype={"participant_id": str})
    assert set(frame["participant_id"]) == {"p1", "p2"} and frame["hyper_events"].dtype.kind == "i"
    schema = yaml.safe_load((tmp_path / "features.schema.yaml").read_text())
    assert schema["label_names"] == {0: "healthy", 1: "T2D"}
    assert [f["name"] for f in schema["features"]] == ["mean_glucose", "time_in_range_pct", "hyper_events", "age"]
    ds = load_dataset(str(out))                                     # the schema beside the table is found
    assert len(ds) == len(frame) and ds.schema.group == "participant_id"


def test_data_option_reads_an_export_folder_whose_participants_file_has_a_label(tmp_path):
    labels = {"a": 1, "b": 0, "c": 1, "d": 0, "e": 1, "f": 0, "g": 1, "h": 0}
    for i, pid in enumerate(labels):
        write_libre(tmp_path / f"{pid}.csv", days_of(100 + 15 * i, 2, 15), step_min=15)
    split = dict(zip(labels, ["train"] * 6 + ["test"] * 2))
    (tmp_path / "participants.csv").write_text("id,label,split\n" + "".join(f"{p},{y},{split[p]}\n"
                                                                            for p, y in labels.items()))
    ds = load_dataset(str(tmp_path))
    assert ds.frame.groupby("participant_id")["label"].first().to_dict() == labels
    assert ds.frame.groupby("participant_id")["recommended_split"].first().to_dict() == split
    res = CliRunner().invoke(app, ["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"),
                                   "--classifier", "lr"])
    assert res.exit_code == 0, res.output


def test_all_windows_dropped_says_why(tmp_path):
    # 5-min readings, but only the first 10 minutes of every hour: 6 of the 24 readings a window expects
    t = [x for x in pd.date_range("2023-01-01", periods=24 * 12 * 2, freq="5min") if x.minute < 10]
    pd.DataFrame({"id": "s", "time": t, "glucose": 120}).to_csv(tmp_path / "sparse.csv", index=False)
    (tmp_path / "participants.csv").write_text("id,label\ns,1\n")
    res = subprocess.run([sys.executable, "-m", "sensecf", "data", "extract", str(tmp_path), "--out",
                          str(tmp_path / "f.csv")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "no window kept" in res.stderr and "too few CGM readings" in res.stderr
    assert "too sparse" in res.stderr
