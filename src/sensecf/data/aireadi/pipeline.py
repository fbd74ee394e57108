"""Feature extraction that scales with cores and survives interruption (docs/architecture.md, "Extraction").

- participants run in a process pool; each worker reads only its own participant's files, so memory is one
  participant per worker, and the parent never holds sensor streams;
- each finished participant is written at once to `<out>.parts/<pid>.parquet` (temporary file + rename), with
  its drop counts, layout markers and missing modalities in the file's metadata; a rerun skips participants
  whose part exists (parts made from other inputs or code are discarded first, see `extraction_key`);
- a participant whose files are unreadable is reported (file, participant, record) and skipped; the others go on;
  skipped participants are retried by the next run;
- the parts are combined in participants.tsv order, in chunks, into one Parquet or CSV file (chosen by the
  suffix of `out`) through a temporary file and a rename; `<out>.summary.json` lists what was skipped and why.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ...console import console, progress_bar
from ...errors import ConfigError, DataError, SenseCFError
from ...files import write_json
from .. import streams, windows
from . import features, reader
from .features import DROP_REASONS, IMMUTABLE_COLUMNS, OUTPUT_COLUMNS, participant_rows
from .reader import MODALITIES, cohort_notes, cohort_version, open_cohort, read_participant
from .schema import aireadi_stress_schema

FORMATS = (".parquet", ".csv")
META_KEY = b"sensecf"
KEY_FILE = "extraction.json"
COMBINE_ROWS = 65_536            # rows per Parquet row group / CSV append while combining
PARTICIPANTS_PER_WORKER = 32     # ~45 ms each: fewer per worker do not pay for starting a process (~1 s)


def _arrow_schema() -> pa.Schema:
    kinds = {f.name: f for f in aireadi_stress_schema().features}
    types = []
    for c in OUTPUT_COLUMNS:
        f = kinds.get(c)
        if c == "label" or (f is not None and f.kind == "integer"):
            types.append(pa.int64())
        elif f is not None and f.kind == "continuous":
            types.append(pa.float64())
        else:
            types.append(pa.string())
    return pa.schema(list(zip(OUTPUT_COLUMNS, types)))


PART_SCHEMA = _arrow_schema()


@dataclass
class ParticipantOutcome:
    """What one participant contributed (or why it was skipped); stored in its part file's metadata."""

    pid: str
    split: str = ""
    windows: int = 0
    high_stress: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))
    markers: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)      # values and records dropped from its files
    error: str = ""
    file: str = ""


@dataclass
class ExtractionSummary:
    """The result of `extract_cohort`; `notes` are the Dataset notes (provenance, skips, drop counts)."""

    root: Path
    out: Path
    version: str
    listed: int
    extracted: int
    resumed: int
    workers: int
    seconds: float
    phases: dict[str, float]        # seconds: prepare (index, resume scan), participants (the pool), combine
    windows: int
    skipped: list[dict[str, str]]
    dropped: dict[str, int]
    splits: list[dict]
    notes: list[str]

    def to_json(self) -> dict:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


def usable_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_workers(n_participants: int) -> int:
    """One worker per usable CPU, but no more than one per PARTICIPANTS_PER_WORKER participants."""
    return max(1, min(usable_cpus(), n_participants // PARTICIPANTS_PER_WORKER))


def parts_dir_for(out: Path) -> Path:
    """The folder of per-participant part files beside `out`."""
    return out.with_name(out.name + ".parts")


def extraction_key(index: reader.CohortIndex, demographics: Path | None, hyper_rule: str = "overlap") -> str:
    """Hash of what the parts depend on: root, participants and demographics tables, manifests, extraction code
    and the hyperglycaemic-event rule."""
    h = hashlib.sha256(f"{index.root.resolve()}\0{hyper_rule}".encode())
    code = [Path(m.__file__) for m in (features, reader, streams, windows)] + [Path(__file__)]
    for path in [index.root / "participants.tsv", *(index.root / d / "manifest.tsv" for d in index.manifests),
                 demographics, *code]:
        h.update(b"\0" + (Path(path).read_bytes() if path is not None and Path(path).is_file() else b"-"))
    return h.hexdigest()[:16]


def _prepare_parts(parts: Path, key: str) -> None:
    """Create the parts folder, discarding parts written for another key (other inputs or code) and the
    temporary files of interrupted writes."""
    parts.mkdir(parents=True, exist_ok=True)
    for tmp in parts.glob(".*.tmp"):
        tmp.unlink()
    key_file = parts / KEY_FILE
    old = json.loads(key_file.read_text()).get("key") if key_file.is_file() else None
    if old != key:
        stale = list(parts.glob("*.parquet"))
        for p in stale:
            p.unlink()
        if stale:
            console().print(f"[yellow]note:[/] {len(stale)} part file(s) in {parts} were made from other inputs or "
                           "code and were discarded", highlight=False)
        write_json(key_file, {"key": key})


def extract_participant(root: str, pid: str, manifests: dict, info: dict, parts: str,
                        hyper_rule: str = "overlap") -> ParticipantOutcome:
    """Read one participant, compute its validated rows and write its part file (runs in a worker)."""
    out = ParticipantOutcome(pid, split=str(info.get("recommended_split", "")))
    try:
        ps, markers, missing = read_participant(Path(root), pid, manifests)
        out.warnings = list(ps.issues)
        rows, out.dropped = participant_rows(ps, info, hyper_rule)
        if len(rows):
            rows = aireadi_stress_schema().validate_frame(rows, source=str(root))
    except DataError as e:
        out.error, out.file = str(e), e.file or ""
        return out
    except Exception as e:  # an unforeseen shape of real data must not stop the other participants
        out.error = f"unexpected {type(e).__name__} while reading participant {pid}: {e}"
        return out
    out.markers, out.missing = sorted(markers), missing
    out.windows, out.high_stress = len(rows), int(rows["label"].sum()) if len(rows) else 0
    if len(rows):
        rows = rows.astype({c: "int64" for c, t in zip(PART_SCHEMA.names, PART_SCHEMA.types) if t == pa.int64()})
        table = pa.Table.from_pandas(rows, schema=PART_SCHEMA, preserve_index=False)
    else:
        table = PART_SCHEMA.empty_table()
    table = table.replace_schema_metadata({META_KEY: json.dumps(asdict(out)).encode()})
    final = Path(parts) / f"{pid}.parquet"
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp)
    tmp.replace(final)
    return out


def _part_outcome(path: Path) -> ParticipantOutcome | None:
    """The outcome stored in a finished part file; None when the file is unreadable (it is then redone)."""
    try:
        meta = pq.read_schema(path).metadata or {}
        return ParticipantOutcome(**json.loads(meta[META_KEY]))
    except (OSError, KeyError, TypeError, ValueError, pa.ArrowException):
        return None


@contextmanager
def _sigint_ignored():
    """SIGINT ignored while worker processes are started (they inherit it); a no-op outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _run(index: reader.CohortIndex, todo: list[str], parts: Path, workers: int, progress: bool,
         n_done: int, hyper_rule: str) -> dict[str, ParticipantOutcome]:
    """Extract the `todo` participants (in-process for one worker, else in a spawned process pool)."""
    info = index.participants.set_index("participant_id")[list(IMMUTABLE_COLUMNS)]
    info = info.astype(object).where(info.notna(), None)
    args = [(str(index.root), pid, index.manifests_of(pid), info.loc[pid].to_dict(), str(parts), hyper_rule)
            for pid in todo]
    results: dict[str, ParticipantOutcome] = {}
    total = n_done + len(todo)
    with progress_bar(progress, width=12, eta=True, rate=True) as bar:
        task = bar.add_task("participants", total=total, completed=n_done)

        def record(res: ParticipantOutcome) -> None:
            results[res.pid] = res
            if res.error:
                bar.console.print(f"[yellow]warning:[/] skipping participant {res.pid}: {res.error}",
                                  highlight=False)
            for w in res.warnings:
                bar.console.print(f"[yellow]warning:[/] {w}", highlight=False)
            bar.advance(task)

        if workers == 1:
            for a in args:
                record(extract_participant(*a))
            return results
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))
        try:
            with _sigint_ignored():  # the workers start ignoring Ctrl-C, which then reaches the parent only
                futures = [pool.submit(extract_participant, *a) for a in args]
            for fut in as_completed(futures):
                record(fut.result())
        except BrokenProcessPool:
            pool.shutdown(wait=True, cancel_futures=True)
            raise SenseCFError(
                f"a worker process ended abruptly (killed, out of memory, or unable to start: a script that calls "
                f"the extraction must guard its entry point with `if __name__ == \"__main__\":`, since the workers "
                f"import it again); finished participants are kept in {parts} and a rerun resumes (workers=1 runs "
                f"in this process)") from None
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # running participants finish and keep their parts
            raise
        pool.shutdown()
    return results


def read_table(path: Path) -> pd.DataFrame:
    """A combined Parquet feature file as a DataFrame."""
    return pq.read_table(path).to_pandas()


def _combine(pids: list[str], parts: Path, out: Path) -> None:
    """Concatenate the part files in `pids` order into `out` (Parquet or CSV), chunk by chunk, atomically."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    csv = out.suffix.lower() == ".csv"
    writer = None if csv else pq.ParquetWriter(tmp, PART_SCHEMA)
    chunk: list[pa.Table] = []
    rows, first = 0, True

    def flush() -> None:
        nonlocal chunk, rows, first
        table = pa.concat_tables(chunk) if chunk else PART_SCHEMA.empty_table()
        if csv:
            table.to_pandas().to_csv(tmp, mode="w" if first else "a", header=first, index=False)
        elif chunk:
            writer.write_table(table, row_group_size=COMBINE_ROWS)
        chunk, rows, first = [], 0, False

    try:
        for pid in pids:
            t = pq.read_table(parts / f"{pid}.parquet", schema=PART_SCHEMA)
            if t.num_rows:
                chunk.append(t)
                rows += t.num_rows
            if rows >= COMBINE_ROWS:
                flush()
        if chunk or first:
            flush()
    finally:
        if writer is not None:
            writer.close()
    tmp.replace(out)


def extract_cohort(root: str | Path, out: str | Path, demographics: Path | None = None, workers: int | None = None,
                   progress: bool = True, hyper_rule: str = "overlap") -> ExtractionSummary:
    """Extract every participant's window features into `out` (.parquet or .csv); resumable, see the module doc.

    workers: processes (None or 0 = `default_workers`); hyper_rule: hyperglycaemic events that "overlap" or
    "start" in a window (data/windows.py). Raises DataError, saying why, when no participant yields a window.
    """
    t0 = time.perf_counter()
    out = Path(out)
    if out.suffix.lower() not in FORMATS:
        raise ConfigError(f"--out must end in {' or '.join(FORMATS)} (the format is chosen by the suffix), "
                          f"got {out.name!r}")
    if workers is not None and workers < 0:
        raise ConfigError(f"workers must be >= 0 (0 = one per CPU), got {workers}")
    if hyper_rule not in windows.HYPER_RULES:
        raise ConfigError(f"--hyper-rule must be one of {windows.HYPER_RULES}, got {hyper_rule!r}")
    index = open_cohort(root, demographics)
    parts = parts_dir_for(out)
    _prepare_parts(parts, extraction_key(index, Path(demographics) if demographics else None, hyper_rule))
    pids = index.participants["participant_id"].tolist()
    outcomes: dict[str, ParticipantOutcome] = {}
    for pid in pids:
        path = parts / f"{pid}.parquet"
        done = _part_outcome(path) if path.is_file() else None
        if done is not None:
            outcomes[pid] = done
    todo = [p for p in pids if p not in outcomes]
    n_workers = max(1, min(workers or default_workers(len(todo)), len(todo) or 1))
    t1 = time.perf_counter()
    outcomes.update(_run(index, todo, parts, n_workers, progress, len(outcomes), hyper_rule))
    phases = {"prepare": t1 - t0, "participants": time.perf_counter() - t1}
    return _finish(index, pids, outcomes, parts, out, n_workers, len(pids) - len(todo), phases)


def _finish(index: reader.CohortIndex, pids: list[str], outcomes: dict[str, ParticipantOutcome], parts: Path,
            out: Path, workers: int, resumed: int, phases: dict[str, float]) -> ExtractionSummary:
    """Combine the parts, build the notes and write `<out>.summary.json`."""
    ok = [outcomes[p] for p in pids if not outcomes[p].error]
    skipped = [{"participant": o.pid, "file": o.file, "reason": o.error} for p in pids if (o := outcomes[p]).error]
    markers = set(index.markers).union(*(o.markers for o in ok))
    version = cohort_version(markers)
    dropped = {k: sum(o.dropped.get(k, 0) for o in ok) for k in DROP_REASONS}
    n_windows = sum(o.windows for o in ok)
    missing = {m: sum(m in o.missing for o in ok) for m in MODALITIES}
    if n_windows == 0:
        why = cohort_notes(version, missing, len(skipped)) + [n for n in index.notes if n.startswith("warning")]
        raise DataError(f"no 2-h window has enough CGM data (half of the expected readings), an activity record, a "
                        f"staged night, a stress label and an age; windows dropped: "
                        f"{', '.join(f'{k}={v}' for k, v in dropped.items())}; {'; '.join(why)}; version {version}",
                        file=str(index.root))
    t0 = time.perf_counter()
    _combine([o.pid for o in ok], parts, out)
    phases = {k: round(v, 3) for k, v in {**phases, "combine": time.perf_counter() - t0}.items()}
    contributing = sum(o.windows > 0 for o in ok)
    notes = [f"AI-READI {version} layout at {index.root}: {len(pids)} participant(s) listed, {len(ok)} loaded, "
             f"{len(skipped)} skipped, {contributing} contribute windows"]
    notes += index.notes + cohort_notes(version, missing, len(skipped))
    notes += [f"warning: {w}" for o in ok for w in o.warnings]
    no_window = [o.pid for o in ok if not o.windows]
    if no_window:
        notes.append(f"{len(no_window)} participant(s) keep no window: {', '.join(no_window[:20])}"
                     f"{' ...' if len(no_window) > 20 else ''} (see the drop counts and missing data above)")
    notes += [f"skipped participant {s['participant']}: {s['reason']}" for s in skipped]
    notes.append("windows dropped: " + ", ".join(f"{k}={v}" for k, v in dropped.items()))
    splits = [_split_row("all", [o for o in ok if o.windows])]
    for split in sorted({o.split for o in ok if o.windows}):
        splits.append(_split_row(split, [o for o in ok if o.windows and o.split == split]))
    summary = ExtractionSummary(index.root, out, version, len(pids), len(pids) - resumed - len(skipped), resumed,
                                workers, round(sum(phases.values()), 3), phases, n_windows, skipped, dropped, splits,
                                notes)
    write_json(out.with_name(out.name + ".summary.json"), summary.to_json())
    return summary


def _split_row(split: str, group: list[ParticipantOutcome]) -> dict:
    n = sum(o.windows for o in group)
    return {"split": split, "participants": len(group), "windows": n,
            "high_stress_pct": round(100.0 * sum(o.high_stress for o in group) / max(n, 1), 1)}
