"""BackgroundJob: a function in a spawned process, its output in a log, failures raised with the log's last line."""

from __future__ import annotations

import time

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
