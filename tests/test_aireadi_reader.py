"""AI-READI reader on tiny hand-written raw layouts covering the v1/v2/v3 variants and edge cases."""

import json
from pathlib import Path

import pandas as pd
import pytest

from sensecf.data.aireadi.features import aireadi_dataset
from sensecf.data.aireadi.reader import read_cohort
from sensecf.errors import DataError

GARMIN = "wearable_activity_monitor"
CGM_DIR = "wearable_blood_glucose/continuous_glucose_monitoring/dexcom_g6"


def _dump(root: Path, rel: str, doc) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))


def _cgm_records(with_event_type=True):
    rows = [("2023-09-01T15:00:00Z", 100, "EGV"), ("2023-09-01T15:05:00Z", "Low", "EGV"),
            ("2023-09-01T15:10:00Z", "High", "EGV"), ("2023-09-01T15:10:00Z", 150, "EGV"),   # duplicate time
            ("2023-09-01T15:12:00Z", 300, "Calibration")]                                    # not an EGV
    recs = []
    for t, v, ev in rows:
        r = {"effective_time_frame": {"time_interval": {"start_date_time": t, "end_date_time": t}},
             "source_device_id": "XX", "blood_glucose": {"unit": "mg/dL", "value": v}}
        if with_event_type:
            r["event_type"] = ev
        recs.append(r)
    return recs if with_event_type else recs[:4]


def _activity(ts_pairs_values):
    return [{"activity_name": "walking", "base_movement_quantity": {"value": v, "unit": "steps"},
             "effective_time_frame": {"time_interval": {"start_date_time": s, "end_date_time": e}}}
            for s, e, v in ts_pairs_values]


def _sleep(version):
    epochs = [("light", "2023-09-02T06:10:00Z", "2023-09-02T06:40:00Z"),
              ("deep", "2023-09-02T06:40:00Z", "2023-09-02T07:25:00Z"),
              ("REM", "2023-09-02T07:25:00Z", "2023-09-02T07:50:00Z")]
    if version == "v1":
        return [{"sleep_duration": {"value": 1.67, "unit": "h"},
                 "effective_time_frame": {"time_interval": {"start_date_time": epochs[0][1],
                                                            "end_date_time": epochs[-1][2]}}}]
    key = "effective_time_frame" if version == "v3" else "sleep_stage_time_frame"
    return [{"sleep_stage_state": s, key: {"time_interval": {"start_date_time": a, "end_date_time": b}}}
            for s, a, b in epochs]


def write_layout(root: Path, version: str = "v2") -> Path:
    """1001 (Pacific, every file), 7002 (Central; no sleep folder, manifest "None"; stress only via the
    manifest path), 42 (no files at all; padded to 0042)."""
    idcol = "person_id" if version == "v3" else "participant_id"
    (root).mkdir(parents=True, exist_ok=True)
    (root / "participants.tsv").write_text(
        f"{idcol}\tclinical_site\tstudy_group\tage\tstudy_visit_date\trecommended_split\twearable_blood_glucose\n"
        "1001\tUW\thealthy\t55\t2023-08-30\ttrain\tTRUE\n"
        "7002\tUAB\tinsulin_dependent\t61\t2023-08-30\ttest\tTRUE\n"
        "42\tUCSD\tpre_diabetes_lifestyle_controlled\t48\t2023-08-30\tval\tFALSE\n")
    tz_hdr = {"timezone": "pst"} if version == "v3" else {}
    for pid in ("1001", "7002"):
        cgm = _cgm_records(with_event_type=version != "v1")
        _dump(root, f"{CGM_DIR}/{pid}/{pid}_DEX.json",
              {"header": {"patient_id": f"AIREADI-{pid}"}, "body": cgm if version == "v1" else {"cgm": cgm}})
        _dump(root, f"{GARMIN}/physical_activity/garmin_vivosmart5/{pid}/{pid}_activity.json",
              {"header": {"user_id": f"AIREADI-{pid}", **(tz_hdr if pid == "1001" else {})},
               "body": {"activity": _activity([
                   ("2023-09-01T15:00:00Z", "2023-09-01T15:00:00Z", 0),
                   ("2023-09-01T15:00:00Z", "2023-09-01 15:01:00", "70"),      # no T/Z, numeric string
                   ("2023-09-01 15:01:00", "2023-09-01T15:02:00Z", ""),         # blank value
                   ("2023-09-01T15:02:00Z", "2023-09-01T15:03:00Z", 12)])}})
        stress_rel = (f"{GARMIN}/stress/garmin_vivosmart5/{pid}/{pid}_stress.json" if pid == "1001"
                      else f"{GARMIN}/stress/elsewhere/{pid}_stress.json")
        _dump(root, stress_rel, {"header": {"user_id": f"AIREADI-{pid}"}, "body": {"stress": [
            {"stress": {"value": v, "unit": "stress level"}, "effective_time_frame": {"date_time": t}}
            for t, v in (("2023-09-01T15:00:00Z", 34), ("2023-09-01T15:03:00Z", -1),
                         ("2023-09-01T15:06:00Z", -2), ("2023-09-01T15:09:00Z", 80))]}})
    _dump(root, f"{GARMIN}/sleep/garmin_vivosmart5/1001/1001_sleep.json",
          {"header": {"user_id": "AIREADI-1001"}, "body": {"sleep": _sleep(version)}})
    _dump(root, "wearable_blood_glucose/manifest.tsv",
          f"{idcol}\tglucose_filepath\n1001\t/{CGM_DIR}/1001/1001_DEX.json\n"
          f"7002\t/{CGM_DIR}/7002/7002_DEX.json\n42\tNone\n")
    _dump(root, f"{GARMIN}/manifest.tsv",
          f"{idcol}\tstress_level_filepath\tsleep_filepath\n"
          f"1001\t/{GARMIN}/stress/garmin_vivosmart5/1001/1001_stress.json\tNone\n"
          f"7002\t/{GARMIN}/stress/elsewhere/7002_stress.json\tNone\n42\tNone\tNone\n")
    return root


@pytest.mark.parametrize("version", ["v1", "v2", "v3"])
def test_read_every_variant(tmp_path, version):
    c = read_cohort(write_layout(tmp_path / version, version), progress=False)
    assert c.version == version
    assert c.participants["participant_id"].tolist() == ["1001", "7002", "0042"]
    assert c.participants["subgroup"].tolist() == ["healthy", "insulin_t2dm", "prediabetes"]
    a = c.streams["1001"]
    assert a.tz == "America/Los_Angeles" and c.streams["7002"].tz == "America/Chicago"
    # Low -> 39, High -> 401, duplicate time keeps the first, calibration row dropped; 15:00Z = 08:00 PDT
    assert a.cgm.tolist() == [100.0, 39.0, 401.0]
    assert a.cgm.index[0] == pd.Timestamp("2023-09-01 08:00", tz="America/Los_Angeles")
    assert c.streams["7002"].cgm.index[0] == pd.Timestamp("2023-09-01 10:00", tz="America/Chicago")
    # steps: int, numeric string, "" dropped; indexed by interval end (no T/Z parsed as UTC)
    assert a.steps.tolist() == [0.0, 70.0, 12.0]
    assert a.steps.index[1] == pd.Timestamp("2023-09-01T15:01:00Z").tz_convert("America/Los_Angeles")
    assert a.stress.tolist() == [34.0, 80.0]
    assert c.streams["7002"].stress.tolist() == [34.0, 80.0]          # found through the manifest path
    stages = a.sleep["stage"].tolist()
    assert stages == (["unknown"] if version == "v1" else ["light", "deep", "rem"])
    assert a.sleep["start"].iloc[0] == pd.Timestamp("2023-09-01 23:10", tz="America/Los_Angeles")
    assert len(c.streams["7002"].sleep) == 0 and len(c.streams["0042"].cgm) == 0
    assert any("no sleep data" in n for n in c.notes) and any("no cgm data" in n for n in c.notes)
    assert c.participants.set_index("participant_id").loc["7002", "medication"] == "insulin"
    assert (c.participants["gender"] == "unknown").all() and any("gender" in n for n in c.notes)
    assert c.skipped == []


def test_header_timezone_overrides_id_prefix(tmp_path):
    root = write_layout(tmp_path / "r", "v3")
    p = root / f"{GARMIN}/stress/garmin_vivosmart5/1001/1001_stress.json"
    doc = json.loads(p.read_text())
    doc["header"]["timezone"] = "cst"
    p.write_text(json.dumps(doc))
    (root / f"{GARMIN}/physical_activity/garmin_vivosmart5/1001/1001_activity.json").unlink()
    c = read_cohort(root, progress=False)
    assert c.streams["1001"].tz == "America/Chicago"


def test_demographics_file(tmp_path):
    root = write_layout(tmp_path / "r")
    demo = tmp_path / "demo.csv"
    demo.write_text("person_id,gender,medication\n1001,F,\n7002,male,oral\n")
    parts = read_cohort(root, demographics=demo, progress=False).participants.set_index("participant_id")
    assert parts.loc["1001", "gender"] == "female" and parts.loc["1001", "medication"] == "none"
    assert parts.loc["7002", "gender"] == "male" and parts.loc["7002", "medication"] == "oral"
    assert parts.loc["0042", "gender"] == "unknown"
    demo.write_text("participant_id\tgender\n1001\tF\n7002\tbanana\n")
    bad = tmp_path / "demo.tsv"
    bad.write_text(demo.read_text())
    with pytest.raises(DataError) as e:
        read_cohort(root, demographics=bad, progress=False)
    assert e.value.row == 2 and e.value.column == "gender" and e.value.participant == "7002"


def test_unknown_study_group_names_row_and_column(tmp_path):
    root = write_layout(tmp_path / "r")
    tsv = root / "participants.tsv"
    tsv.write_text(tsv.read_text().replace("insulin_dependent", "no_diabetes"))
    with pytest.raises(DataError) as e:
        read_cohort(root, progress=False)
    assert e.value.row == 2 and e.value.column == "study_group" and e.value.file.endswith("participants.tsv")
    assert "no_diabetes" in str(e.value)


def test_missing_root_and_missing_participants(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_cohort(tmp_path / "nope", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="participants.tsv"):
        read_cohort(tmp_path / "empty", progress=False)


def test_fairhub_dataset_subfolder_is_found(tmp_path):
    write_layout(tmp_path / "download" / "dataset")
    assert read_cohort(tmp_path / "download", progress=False).root == tmp_path / "download" / "dataset"


def test_malformed_json_skips_only_that_participant(tmp_path):
    root = write_layout(tmp_path / "r")
    (root / f"{CGM_DIR}/7002/7002_DEX.json").write_text('{"header": {}, "body": {"cgm": [ {"eff')
    c = read_cohort(root, progress=False)
    assert [s[0] for s in c.skipped] == ["7002"] and "malformed JSON" in c.skipped[0][2]
    assert c.skipped[0][1].endswith("7002_DEX.json")
    assert set(c.streams) == {"1001", "0042"} and any("skipped" in n for n in c.notes)


def test_record_missing_a_field_names_the_record(tmp_path):
    root = write_layout(tmp_path / "r")
    p = root / f"{CGM_DIR}/1001/1001_DEX.json"
    doc = json.loads(p.read_text())
    del doc["body"]["cgm"][1]["blood_glucose"]
    p.write_text(json.dumps(doc))
    c = read_cohort(root, progress=False)
    assert c.skipped[0][0] == "1001" and "record 1" in c.skipped[0][2]


def test_empty_record_list_is_a_missing_modality(tmp_path):
    root = write_layout(tmp_path / "r")
    _dump(root, f"{GARMIN}/stress/garmin_vivosmart5/1001/1001_stress.json", {"header": {}, "body": {"stress": []}})
    c = read_cohort(root, progress=False)
    assert len(c.streams["1001"].stress) == 0 and c.skipped == []


def test_dataset_without_usable_windows_is_an_error(tmp_path):
    with pytest.raises(DataError, match="no 2-h window"):
        aireadi_dataset(write_layout(tmp_path / "r"), progress=False)
