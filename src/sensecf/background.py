"""One function run in a separate process, its output in a log file.

`sensecf run` fine-tunes the embedded model this way (one torch thread on one core) while the steps that do not
need the adapter use the other core. The child is spawned, not forked, so it starts with a clean torch state, and
it dies with its parent (also on kill -9), so it never keeps writing into a run folder nobody owns.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from pathlib import Path

from .errors import SenseCFError

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent_pid: int, poll_seconds: float = 1.0) -> None:
    """SIGTERM this process when its parent dies: prctl(PR_SET_PDEATHSIG) on Linux, and everywhere a watchdog
    thread that polls the parent pid (which also catches a parent that died before prctl ran)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_seconds)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _run_logged(target, args: tuple, log_path: str, parent_pid: int) -> None:
    """Child entry point: stdout and stderr (file descriptors 1 and 2, so tqdm and warnings too) go to the log."""
    die_with_parent(parent_pid)
    with open(log_path, "a", buffering=1) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    target(*args)  # an exception is printed to the log by multiprocessing and sets exit code 1


def last_log_line(path: Path, limit: int = 160) -> str:
    """The newest line of a log, progress-bar redraws (carriage returns) included, shortened to `limit`."""
    if not path.exists():
        return ""
    with path.open("rb") as fh:
        fh.seek(max(0, path.stat().st_size - 4096))
        tail = fh.read().decode("utf-8", "replace")
    parts = [p.strip() for p in tail.replace("\r", "\n").split("\n") if p.strip()]
    return parts[-1][-limit:] if parts else ""


class BackgroundJob:
    """`target(*args)` in a spawned process; `wait()` raises a SenseCFError naming the log if it failed."""

    def __init__(self, name: str, target, args: tuple, log_path: Path):
        self.name, self.log_path = name, Path(log_path)
        self._process = multiprocessing.get_context("spawn").Process(
            target=_run_logged, args=(target, args, str(self.log_path), os.getpid()), name=name)
        self.started_at = 0.0  # time.time() at start

    def start(self) -> "BackgroundJob":
        """Start the child; call it from a thread that outlives the job (Linux ties the death signal to it)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.started_at = time.time()
        self._process.start()
        return self

    @property
    def running(self) -> bool:
        return self._process.is_alive()

    def wait(self, poll_seconds: float = 5.0, on_poll=None, until=None) -> float:
        """Block until the job ends, or until `until()` is true (calling `on_poll(last log line)` while it runs);
        returns the seconds waited."""
        t0 = time.perf_counter()
        while self._process.is_alive() and not (until is not None and until()):
            self._process.join(poll_seconds)
            if on_poll is not None and self._process.is_alive():
                on_poll(last_log_line(self.log_path))
        if not self._process.is_alive() and self._process.exitcode != 0:
            raise SenseCFError(f"{self.name} failed (exit code {self._process.exitcode}): "
                               f"{last_log_line(self.log_path, 400) or 'no output'}; full log: {self.log_path}")
        return round(time.perf_counter() - t0, 1)

    def stop(self) -> None:
        """End the job if it still runs (its checkpoints let a rerun resume)."""
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(30)
