"""One writer per run or adapter folder: a second one refuses (naming the folder and pid) or waits."""

from __future__ import annotations

import os
import threading
import time

import pytest

from sensecf.errors import SenseCFError
from sensecf.locking import FolderLock
from sensecf.study import Study, StudyConfig


def test_a_second_study_on_one_folder_is_refused(tmp_path):
    out = tmp_path / "run"
    first = Study(StudyConfig.quick(), out)
    with pytest.raises(SenseCFError) as err:
        Study(StudyConfig.quick(), out)
    assert str(out) in str(err.value) and f"pid {os.getpid()}" in str(err.value)
    first.lock.release()
    Study(StudyConfig.quick(), out)  # free again
    assert sorted(p.name for p in out.iterdir()) == ["run.json"]  # the lock file lies beside the folder


def test_a_waiting_writer_gets_the_folder_when_the_holder_is_done(tmp_path, capsys):
    holder = FolderLock(tmp_path / "adapter", "adapter folder")
    got = []
    waiter = threading.Thread(target=lambda: got.append(FolderLock(tmp_path / "adapter", "adapter folder",
                                                                   wait=True)))
    waiter.start()
    time.sleep(0.5)
    assert not got and waiter.is_alive()
    assert f"waiting for pid {os.getpid()}" in capsys.readouterr().err
    holder.release()
    waiter.join(5)
    assert got and not waiter.is_alive()
    got[0].release()
