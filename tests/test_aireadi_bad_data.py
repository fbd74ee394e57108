"""Bad AI-READI data is reported, never accepted silently (#14 part 7): implausible or non-numeric readings,
unknown time-zone codes, a non-numeric age and a far-outlier timestamp, on a corrupted synthetic cohort."""

import json
from pathlib import Path

import pandas as pd
import pytest

from sensecf.data.aireadi.features import participant_rows
from sensecf.data.aireadi.pipeline import extract_cohort
from sensecf.data.aireadi.reader import open_cohort, read_participant
from sensecf.data.aireadi.synth import write_synthetic_cohort

CGM = "wearable_blood_glucose/continuous_glucose_monitoring/dexcom_g6/{pid}/{pid}_DEX.json"
STRESS = "wearable_activity_monitor/stress/garmin_vivosmart5/{pid}/{pid}_stress.json"


@pytest.fixture()
def cohort(tmp_path) -> tuple[Path, list[str]]:
    root = write_synthetic_cohort(tmp_path / "raw", 3, 3, seed=3, version="v3", progress=False)
    pids = pd.read_csv(root / "participants.tsv", sep="\t", dtype=str)["person_id"].tolist()
    return root, [p for p in pids if (root / CGM.format(pid=p)).is_file()]


def edit(path: Path, change) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def read(root: Path, pid: str):
    index = open_cohort(root)
    return read_participant(index.root, pid, index.manifests)[0]


def test_implausible_and_non_numeric_glucose_dropped_and_named(cohort):
    root, pids = cohort
    path = root / CGM.format(pid=pids[0])
    clean = len(read(root, pids[0]).cgm)

    def corrupt(doc):
        for rec, value in zip(doc["body"]["cgm"], [-50, 1e6, "abc", "", None, "Low", "High"]):
            rec["blood_glucose"]["value"] = value
    edit(path, corrupt)
    ps = read(root, pids[0])
    assert len(ps.cgm) == clean - 5 and ps.cgm.between(20, 700).all()
    issue = next(i for i in ps.issues if "glucose" in i)
    assert str(path) in issue and "2 outside the plausible range" in issue and "-50" in issue
    assert "3 not a number" in issue and "'abc'" in issue


def test_stress_words_reported_per_file(cohort):
    root, pids = cohort
    path = root / STRESS.format(pid=pids[0])
    edit(path, lambda doc: doc["body"]["stress"][0]["stress"].update(value="high"))
    issue = next(i for i in read(root, pids[0]).issues if "stress" in i)
    assert str(path) in issue and "'high'" in issue


@pytest.mark.parametrize("code, zone, warned", [("est", "America/New_York", False), ("MDT", "America/Denver", False),
                                                 ("xyz", "America/Los_Angeles", True),
                                                 ("UTC+5", "America/Los_Angeles", True)])
def test_timezone_codes(cohort, code, zone, warned):
    root, pids = cohort
    pid = next(p for p in pids if not p.startswith("7"))
    for rel in (CGM, STRESS):
        edit(root / rel.format(pid=pid), lambda doc: doc["header"].update(timezone=code))
    ps = read(root, pid)
    assert ps.tz == zone
    issues = [i for i in ps.issues if "time zone" in i]
    assert bool(issues) == warned
    if warned:
        assert repr(code) in issues[0] and f"{pid}_" in issues[0]


def test_non_numeric_age_names_file_row_and_column(cohort, tmp_path):
    root, pids = cohort
    table = pd.read_csv(root / "participants.tsv", sep="\t", dtype=str)
    row = table.index[table["person_id"] == pids[0]][0]
    table.loc[row, "age"] = "sixty"
    table.to_csv(root / "participants.tsv", sep="\t", index=False)
    summary = extract_cohort(root, tmp_path / "f.csv", workers=1, progress=False)
    note = next(n for n in summary.notes if "sixty" in n)
    assert note.startswith("warning") and "participants.tsv" in note and f"participant {pids[0]}" in note
    assert f"row {row + 1}" in note and "column age" in note
    assert summary.dropped["no_age"] > 0 and any(pids[0] in n and "keep no window" in n for n in summary.notes)


def test_far_outlier_timestamp_dropped_without_a_huge_window_grid(cohort):
    root, pids = cohort
    info = {"age": 50.0, "gender": "unknown", "medication": "none", "subgroup": "healthy",
            "recommended_split": "train"}
    before = participant_rows(read(root, pids[0]), info)[0]
    edit(root / CGM.format(pid=pids[0]), lambda doc: doc["body"]["cgm"][0]["effective_time_frame"]["time_interval"]
         .update(start_date_time="1900-01-01T00:00:00Z"))
    ps = read(root, pids[0])
    assert ps.cgm.index.min().year > 2000
    assert any("1 record(s) far outside the study span" in i and "1899-12-31" in i for i in ps.issues)  # local
    rows, dropped = participant_rows(ps, info)
    assert len(rows) == len(before) and sum(dropped.values()) < 1000
