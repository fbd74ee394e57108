"""Synthetic AI-READI cohort: exact raw layout, edge cases, determinism, synth -> read -> extract round trip."""

import json

import pandas as pd
import pytest

from sensecf.data.aireadi.features import aireadi_dataset
from sensecf.data.aireadi.reader import read_cohort
from sensecf.data.aireadi.synth import write_synthetic_cohort
from sensecf.errors import ConfigError, DataError
from sensecf.data.aireadi.schema import aireadi_stress_schema

N, DAYS = 6, 3


@pytest.fixture(scope="module")
def v2_root(tmp_path_factory):
    return write_synthetic_cohort(tmp_path_factory.mktemp("syn") / "v2", N, DAYS, seed=3, progress=False)


def _files(root, suffix):
    return sorted(root.rglob(f"*_{suffix}.json"))


def test_raw_layout_and_edge_cases(v2_root):
    parts = pd.read_csv(v2_root / "participants.tsv", sep="\t", dtype=str)
    assert list(parts.columns[:6]) == ["participant_id", "clinical_site", "study_group", "age", "study_visit_date",
                                       "recommended_split"]
    assert {"wearable_blood_glucose", "wearable_activity_monitor", "retinal_oct"} <= set(parts.columns)
    assert all(p[0] in "147" and len(p) == 4 for p in parts["participant_id"])
    assert set(parts["clinical_site"]) == {"UW", "UCSD", "UAB"}
    cgm_manifest = pd.read_csv(v2_root / "wearable_blood_glucose" / "manifest.tsv", sep="\t", dtype=str,
                               keep_default_na=False)
    assert (cgm_manifest["glucose_filepath"] == "None").sum() == 1                 # one participant lacks CGM
    assert cgm_manifest["glucose_filepath"].str.startswith("/").sum() == N - 1
    garmin = pd.read_csv(v2_root / "wearable_activity_monitor" / "manifest.tsv", sep="\t", dtype=str)
    assert garmin.columns[0] == "participant_id" and "stress_level_filepath" in garmin.columns
    assert len(_files(v2_root, "DEX")) == N - 1 and len(_files(v2_root, "sleep")) == N

    dex = json.loads(_files(v2_root, "DEX")[0].read_text())
    rec = dex["body"]["cgm"][0]
    assert dex["header"]["timezone"] in ("pst", "cst") and rec["effective_time_frame"]["time_interval"][
        "start_date_time"].endswith("Z")
    raw = "".join(p.read_text() for p in v2_root.rglob("*.json"))
    for token in ('"value":"Low"', '"value":"High"', '"value":-1', '"value":-2', '"value":""',
                  '"event_type":"Calibration"', '"sleep_stage_time_frame"'):
        assert token in raw, token
    act = [r for p in _files(v2_root, "activity") for r in json.loads(p.read_text())["body"]["activity"]]
    assert any(isinstance(r["base_movement_quantity"]["value"], str) and r["base_movement_quantity"]["value"]
               for r in act)
    assert any(" " in r["effective_time_frame"]["time_interval"]["end_date_time"] for r in act)   # no T/Z


def test_deterministic_by_seed(tmp_path, v2_root):
    again = write_synthetic_cohort(tmp_path / "again", N, DAYS, seed=3, progress=False)
    other = write_synthetic_cohort(tmp_path / "other", N, DAYS, seed=4, progress=False)
    first = _files(v2_root, "stress")[0]
    rel = first.relative_to(v2_root)
    assert (again / rel).read_bytes() == first.read_bytes()
    assert (v2_root / "participants.tsv").read_text() != (other / "participants.tsv").read_text()


def test_round_trip_v2(v2_root):
    ds = aireadi_dataset(v2_root, progress=False)
    cohort = read_cohort(v2_root, progress=False)
    assert cohort.version == "v2" and cohort.skipped == []
    f = ds.frame
    assert f["participant_id"].nunique() == N - 1                    # the CGM-less participant has no windows
    assert 0 < f["label"].mean() < 1
    schema = aireadi_stress_schema()
    for name in ("awake_pct", "light_pct", "deep_pct", "rem_pct", "time_in_range_pct"):
        assert f[name].between(*schema[name].bounds).all()
    stage_sum = f[["awake_pct", "light_pct", "deep_pct", "rem_pct"]].sum(axis=1)
    assert stage_sum.round(6).eq(100).all()
    nightly = f.groupby(["participant_id", f["window_start"].str[:10]])[["awake_pct", "deep_pct", "rem_pct"]].first()
    assert nightly.mean().between([5, 10, 17], [16, 21, 26]).all()   # plausible stage proportions
    by_group = f.groupby("subgroup")["mean_glucose"].mean()
    assert by_group["insulin_t2dm"] > by_group["healthy"] + 20
    assert f["window_start"].str.match(r"\d{4}-\d\d-\d\dT\d\d:00:00-0[5-8]:00").all()
    assert any("skipped" not in n and "no cgm data" in n for n in ds.notes)


@pytest.mark.parametrize("version", ["v1", "v3"])
def test_other_layout_versions(tmp_path, version):
    root = write_synthetic_cohort(tmp_path / version, 4, 2, seed=1, version=version, progress=False)
    cohort = read_cohort(root, progress=False)
    assert cohort.version == version and len(cohort.streams) == 4
    if version == "v3":
        assert pd.read_csv(root / "participants.tsv", sep="\t").columns[0] == "person_id"
        assert len(aireadi_dataset(root, progress=False)) > 0
    else:
        with pytest.raises(DataError, match="no 2-h window"):    # v1 sleep has no stages
            aireadi_dataset(root, progress=False)


def test_bad_arguments(tmp_path):
    with pytest.raises(ConfigError, match="version"):
        write_synthetic_cohort(tmp_path, 2, 1, version="v9", progress=False)
    with pytest.raises(ConfigError):
        write_synthetic_cohort(tmp_path, 0, 1, progress=False)
