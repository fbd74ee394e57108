"""Parallel, incremental, resumable extraction (data/aireadi/pipeline.py) on seeded synthetic cohorts."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from sensecf.data.aireadi.features import OUTPUT_COLUMNS, aireadi_dataset, participant_rows
from sensecf.data.aireadi.pipeline import extract_cohort, parts_dir_for, read_table
from sensecf.data.aireadi.reader import read_cohort
from sensecf.data.aireadi.synth import write_synthetic_cohort
from sensecf.errors import ConfigError
from sensecf.data.aireadi.schema import aireadi_stress_schema

N, DAYS = 12, 3


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_synthetic_cohort(tmp_path_factory.mktemp("syn") / "raw", N, DAYS, seed=11, progress=False)


@pytest.fixture(scope="module")
def serial(root, tmp_path_factory):
    """One worker, in-process: the reference output."""
    out = tmp_path_factory.mktemp("serial") / "features.parquet"
    return extract_cohort(root, out, workers=1, progress=False)


def _in_memory(root) -> pd.DataFrame:
    """The same rows through the in-memory reader (read_cohort), participant by participant."""
    cohort = read_cohort(root, progress=False)
    info = cohort.participants.set_index("participant_id")
    frames = [participant_rows(ps, info.loc[pid].to_dict())[0] for pid, ps in cohort.streams.items()]
    frame = pd.concat([f for f in frames if len(f)], ignore_index=True)
    return aireadi_stress_schema().validate_frame(frame)


def test_parallel_equals_serial_and_the_in_memory_reader(root, serial, tmp_path):
    par = extract_cohort(root, tmp_path / "features.parquet", workers=2, progress=False)
    assert (serial.workers, par.workers) == (1, 2) and par.extracted == N and par.skipped == []
    assert set(par.phases) == {"prepare", "participants", "combine"}
    assert par.seconds == pytest.approx(sum(par.phases.values()))
    a, b = read_table(serial.out), read_table(par.out)
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == OUTPUT_COLUMNS and a["participant_id"].nunique() == N - 1   # one has no CGM
    pd.testing.assert_frame_equal(aireadi_stress_schema().validate_frame(a), _in_memory(root))
    assert par.notes == serial.notes and par.splits == serial.splits
    ds = aireadi_dataset(root, progress=False, workers=2)                     # load_dataset's path
    pd.testing.assert_frame_equal(ds.frame, _in_memory(root))
    assert ds.notes == serial.notes
    csv = extract_cohort(root, tmp_path / "features.csv", workers=2, progress=False)
    back = pd.read_csv(csv.out, dtype={"participant_id": str})
    pd.testing.assert_frame_equal(back, a, check_exact=False, rtol=1e-12)


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """40 participants: long enough to interrupt a 2-worker extraction part-way."""
    root = write_synthetic_cohort(tmp_path_factory.mktemp("big") / "raw", 40, DAYS, seed=11, progress=False)
    reference = extract_cohort(root, tmp_path_factory.mktemp("ref") / "features.parquet", workers=1, progress=False)
    return root, read_table(reference.out)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "killed"])
def test_interrupted_extraction_resumes_and_ends_identical(big, tmp_path, sig):
    root, reference = big
    out = tmp_path / "features.parquet"
    cmd = [sys.executable, "-m", "sensecf", "data", "extract", str(root), "--out", str(out), "--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    parts = parts_dir_for(out)
    deadline = time.time() + 90
    while time.time() < deadline and len(list(parts.glob("*.parquet"))) < 3:
        time.sleep(0.02)
    os.killpg(proc.pid, sig)                   # the whole process group: the CLI and its workers, mid-run
    log = proc.communicate(timeout=60)[0]
    done = len(list(parts.glob("*.parquet")))
    assert not out.exists() and 3 <= done < 40, done
    if sig == signal.SIGINT:                   # workers ignore Ctrl-C: they finish their participant, no crash
        assert proc.returncode == 130 and "rerun the same command to resume" in log, log[-2000:]
        assert "Traceback" not in log and "BrokenProcessPool" not in log, log[-2000:]
        assert not list(parts.glob(".*.tmp"))
    resumed = extract_cohort(root, out, workers=2, progress=False)
    assert resumed.resumed == done and resumed.extracted == 40 - done
    pd.testing.assert_frame_equal(read_table(out), reference)
    again = extract_cohort(root, out, workers=2, progress=False)               # finished: nothing left to do
    assert (again.resumed, again.extracted) == (40, 0)


def test_parts_from_other_inputs_are_discarded(root, tmp_path):
    out = tmp_path / "features.parquet"
    extract_cohort(root, out, workers=1, progress=False)
    pid = pd.read_csv(root / "participants.tsv", sep="\t", dtype=str)["participant_id"].iloc[0]
    demo = tmp_path / "demo.csv"
    demo.write_text(f"participant_id,gender\n{pid},female\n")
    s = extract_cohort(root, out, demographics=demo, workers=1, progress=False)
    assert s.resumed == 0 and s.extracted == N
    assert set(read_table(out).query("participant_id == @pid")["gender"]) == {"female"}


def test_corrupt_files_skip_only_their_participants(root, serial, tmp_path):
    import shutil

    bad = shutil.copytree(root, tmp_path / "raw")
    pids = pd.read_csv(bad / "participants.tsv", sep="\t", dtype=str)["participant_id"].tolist()
    cgm = bad / "wearable_blood_glucose/continuous_glucose_monitoring/dexcom_g6"
    truncated = cgm / pids[2] / f"{pids[2]}_DEX.json"
    truncated.write_bytes(truncated.read_bytes()[:5000])
    stress = bad / "wearable_activity_monitor/stress/garmin_vivosmart5" / pids[4] / f"{pids[4]}_stress.json"
    doc = json.loads(stress.read_text())
    del doc["body"]["stress"][7]["effective_time_frame"]
    stress.write_text(json.dumps(doc))

    out = tmp_path / "features.parquet"
    s = extract_cohort(bad, out, workers=2, progress=False)
    assert [k["participant"] for k in s.skipped] == [pids[2], pids[4]] and s.extracted == N - 2
    assert s.skipped[0]["file"] == str(truncated) and "malformed JSON" in s.skipped[0]["reason"]
    assert s.skipped[1]["file"] == str(stress) and "record 7" in s.skipped[1]["reason"]
    assert any(n.startswith(f"skipped participant {pids[4]}: record 7") for n in s.notes)
    saved = json.loads(out.with_name(out.name + ".summary.json").read_text())
    assert saved["skipped"] == s.skipped
    ref = read_table(serial.out)
    pd.testing.assert_frame_equal(read_table(out), ref[~ref["participant_id"].isin([pids[2], pids[4]])]
                                  .reset_index(drop=True))
    shutil.copy(root / truncated.relative_to(bad), truncated)                 # fixed: the rerun retries it
    s = extract_cohort(bad, out, workers=1, progress=False)
    assert s.resumed == N - 2 and s.extracted == 1 and [k["participant"] for k in s.skipped] == [pids[4]]


def test_output_suffix_and_workers_are_checked(root, tmp_path):
    with pytest.raises(ConfigError, match="parquet"):
        extract_cohort(root, tmp_path / "features.xlsx", progress=False)
    with pytest.raises(ConfigError, match="workers"):
        extract_cohort(root, tmp_path / "features.csv", workers=-1, progress=False)
