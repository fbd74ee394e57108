"""Result files written atomically and read tolerantly, so an interrupted or damaged run never blocks a rerun.

Writes go to a temporary file beside the target and are renamed into place. Readers of step outputs treat a
missing, truncated or unparseable file as "not done": they return None and warn (naming the file), and the
step is recomputed. JSONL readers skip a partial last line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from .console import console


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def write_text(path: Path, text: str) -> None:
    """Write text through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(path)
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_bytes(path: Path, data: bytes) -> None:
    """Write bytes through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(path)
    tmp.write_bytes(data)
    tmp.replace(path)


def write_json(path: Path, obj) -> None:
    """Write JSON (indented; non-JSON values as text) atomically."""
    write_text(path, json.dumps(obj, indent=2, default=str))


def write_csv(path: Path, frame: pd.DataFrame, index: bool = False) -> None:
    """Write a CSV atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(path)
    frame.to_csv(tmp, index=index)
    tmp.replace(path)


def warn_damaged(path: Path, why: str) -> None:
    """Tell the user a result file is unreadable and will be recomputed."""
    console().print(f"[yellow]warning:[/] {path} is unreadable ({why}); it is treated as not done and "
                    "recomputed", highlight=False)


def read_json(path: Path) -> dict | None:
    """A JSON result file, or None when it is absent or damaged (with a warning)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as e:
        warn_damaged(path, f"{type(e).__name__}: {e}")
        return None


def read_jsonl(path: Path) -> list[dict]:
    """The complete records of a JSON-lines file; a partial or damaged line is skipped with a warning."""
    path = Path(path)
    if not path.is_file():
        return []
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            console().print(f"[yellow]warning:[/] {path} line {n} is incomplete; that record is recomputed",
                            highlight=False)
    return out


def append_jsonl(path: Path, record: dict) -> None:
    """Append one record as a line (a line that a kill cut short is skipped by read_jsonl)."""
    path = Path(path)
    cut = path.is_file() and path.stat().st_size and not path.read_bytes().endswith(b"\n")
    with path.open("a", encoding="utf-8") as fh:
        fh.write(("\n" if cut else "") + json.dumps(record) + "\n")  # after a line a kill cut short
        fh.flush()
