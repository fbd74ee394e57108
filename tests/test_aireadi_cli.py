"""`sensecf data synth` and `sensecf data extract` through the real CLI."""

import subprocess
import sys

import pandas as pd
from typer.testing import CliRunner

from sensecf.cli import app
from sensecf.data.aireadi.features import OUTPUT_COLUMNS


def test_synth_then_extract(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["data", "synth", "--out", str(tmp_path / "raw"), "--participants", "4", "--days", "2",
                              "--seed", "5", "--version", "v3"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "raw" / "participants.tsv").is_file()
    demo = tmp_path / "demo.tsv"
    pid = pd.read_csv(tmp_path / "raw" / "participants.tsv", sep="\t", dtype=str)["person_id"].iloc[0]
    demo.write_text(f"person_id\tgender\n{pid}\tF\n")
    res = runner.invoke(app, ["data", "extract", str(tmp_path / "raw"), "--out", str(tmp_path / "f.csv"),
                              "--demographics", str(demo)])
    assert res.exit_code == 0, res.output
    assert "windows dropped" in res.output and "demographics from demo.tsv" in res.output
    out = pd.read_csv(tmp_path / "f.csv", dtype={"participant_id": str})
    assert list(out.columns) == OUTPUT_COLUMNS and len(out) > 0
    assert out["hyper_events"].dtype.kind == "i" and out["age"].dtype.kind == "i"
    assert set(out.loc[out["participant_id"] == pid, "gender"]) == {"female"}


def test_extract_bad_root_exits_2_without_traceback(tmp_path):
    res = subprocess.run([sys.executable, "-m", "sensecf", "data", "extract", str(tmp_path / "missing"),
                          "--out", str(tmp_path / "f.csv")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert "no such file or folder" in res.stderr and "missing" in res.stderr and "Traceback" not in res.stderr
