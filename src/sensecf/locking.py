"""One writer per folder: an exclusive `fcntl.flock` on a lock file beside the folder (`.NAME.lock`, holding the
holder's pid). The kernel releases it when the holder exits, also on kill -9, so a lock is never stale."""

from __future__ import annotations

import fcntl
import os
import weakref
from pathlib import Path

from rich.console import Console

from .errors import SenseCFError


class FolderLock:
    """Exclusive lock on `folder` until `release()` (or `with` exit, or the end of the process).

    Held by another process: `wait=False` raises a SenseCFError naming the folder and the holder's pid;
    `wait=True` says whom it waits for and blocks until the holder is done. The lock file lies beside the
    folder, so the folder's own files (e.g. an adapter's fingerprint) stay untouched.
    """

    def __init__(self, folder: str | Path, what: str = "folder", wait: bool = False):
        self.folder = Path(folder).expanduser().absolute()
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        self.path = self.folder.parent / f".{self.folder.name}.lock"
        self._file = open(self.path, "a+")
        self._close = weakref.finalize(self, self._file.close)  # also when the lock is garbage-collected
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self.path.read_text().strip() or "unknown"
            if not wait:
                self._close()
                raise SenseCFError(f"the {what} {self.folder} is in use by another sensecf process (pid {holder}); "
                                   "wait for it to end, or choose another folder") from None
            Console(stderr=True, soft_wrap=True).print(f"[yellow]waiting for pid {holder}, which is writing the {what} "
                                       f"{self.folder}[/]", highlight=False)
            fcntl.flock(self._file, fcntl.LOCK_EX)
        self._file.truncate(0)
        self._file.write(str(os.getpid()))
        self._file.flush()

    def release(self) -> None:
        """Let the next writer in (the lock file stays: removing it would race with a waiting process)."""
        self._close()

    def __enter__(self) -> "FolderLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()
