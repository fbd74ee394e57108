"""BackgroundJob: a function in a spawned process, its output in a log, failures raised with the log's last line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sensecf.background import BackgroundJob, last_log_line
from sensecf.errors import DataError, SenseCFError


def write_marker(path: str) -> None:
    print("working on it", flush=True)
    with open(path, "w") as fh:
        fh.write("done")


def fail_with_data_error(column: str) -> None:
    raise DataError("no fine-tuning pairs could be built", column=column)


def sleep_long() -> None:
    time.sleep(120)


def test_job_runs_in_another_process_and_logs(tmp_path):
    marker, log = tmp_path / "marker", tmp_path / "job.log"
    job = BackgroundJob("marker job", write_marker, (str(marker),), log).start()
    polled = []
    job.wait(poll_seconds=0.2, on_poll=polled.append)
    assert marker.read_text() == "done"
    assert "working on it" in log.read_text()
    assert not job.running


def test_failure_names_the_error_and_the_log(tmp_path):
    log = tmp_path / "job.log"
    job = BackgroundJob("fine-tune", fail_with_data_error, ("mean_steps",), log).start()
    with pytest.raises(SenseCFError) as err:
        job.wait(poll_seconds=0.2)
    message = str(err.value)
    assert "fine-tune failed (exit code 1)" in message
    assert "no fine-tuning pairs could be built (column mean_steps)" in message
    assert str(log) in message
    assert "Traceback" in log.read_text()  # the whole traceback stays in the log


def write_marker_then_sleep(path: str) -> None:
    write_marker(path)
    time.sleep(120)


def test_wait_until_returns_while_the_job_goes_on(tmp_path):
    """The study waits only until the adapter is written, then works beside the job's second part."""
    marker = tmp_path / "marker"
    job = BackgroundJob("two parts", write_marker_then_sleep, (str(marker),), tmp_path / "job.log").start()
    try:
        job.wait(poll_seconds=0.2, until=marker.is_file)
        assert marker.read_text() == "done" and job.running
    finally:
        job.stop()
    assert not job.running


def test_stop_ends_a_running_job(tmp_path):
    job = BackgroundJob("sleeper", sleep_long, (), tmp_path / "job.log").start()
    assert job.running
    job.stop()
    assert not job.running


def test_last_log_line_reads_progress_bar_redraws(tmp_path):
    log = tmp_path / "x.log"
    assert last_log_line(log) == ""
    log.write_text("start\n 10%|#  | 12/120\r 11%|#  | 13/120\r")
    assert last_log_line(log) == "11%|#  | 13/120"


PARENT = """
import sys, time
from sensecf.background import BackgroundJob
job = BackgroundJob("sleeper", time.sleep, (60,), sys.argv[1]).start()
print(job._process.pid, flush=True)
time.sleep(60)
"""


def alive(pid: int) -> bool:
    """Whether `pid` still runs (a zombie waiting to be reaped counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_child_dies_with_a_killed_parent(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(tmp_path / "job.log")], stdout=subprocess.PIPE,
                              text=True)
    child = int(parent.stdout.readline())
    try:
        time.sleep(0.5)  # the child is up (and may or may not have reached its prctl call: both are covered)
        assert alive(child)
        parent.kill()  # SIGKILL: no cleanup code of the parent runs
        parent.wait()
        deadline = time.time() + 5
        while alive(child) and time.time() < deadline:
            time.sleep(0.1)
        assert not alive(child), "the background child outlived its killed parent"
    finally:
        if alive(child):
            os.kill(child, signal.SIGKILL)
