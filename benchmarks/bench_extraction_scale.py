"""AI-READI feature extraction at scale: wall time and peak memory by cohort size and worker count.

    python benchmarks/bench_extraction_scale.py [--sizes 120,500,1067] [--days 10] [--workers 1,2] [--repeats 1]
                                                [--workdir DIR] [--keep]

For each size a seeded synthetic cohort is written in the raw AI-READI layout (timed; `--workdir`, default a
temporary folder, deleted at the end unless --keep). Each extraction is a fresh `sensecf data extract ROOT --out
X.parquet --workers W` subprocess (no parts to resume): wall time from start to exit, the peak of the summed RSS of
the whole process tree (the CLI and its workers, sampled every 50 ms), the largest RSS of any one process of the tree
(exact, from wait4), the CPU seconds of the tree and the phases from the run's summary (prepare, participants =
the pool, combine). The cohort files were just written, so they are in the page cache for every run. With --repeats
R the worker counts are run R times interleaved and the fastest run is reported (the machine is shared; the load
average before and after each run is recorded). Before each repeat a control measures what the machine gives two
processes at that moment: a pure-Python CPU loop run twice in one process, then once in each of two processes
(the control's speed-up; 2.0 on two idle cores).
Targets (2-core machine): speed-up >= 1.8 with 2 workers, peak memory independent of cohort size, 1,067
participants in <= 5 min with 2 workers. Writes benchmarks/results/extraction_scale.json and .md; a size measured
again replaces its earlier entry (same days and seed), the other sizes are kept.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from sensecf.data.aireadi.synth import write_synthetic_cohort
from sensecf.files import write_json
from sensecf.provenance import package_versions

RESULTS = Path(__file__).parent / "results"
JSON = RESULTS / "extraction_scale.json"
TARGET_SPEEDUP, TARGET_SECONDS, TARGET_SIZE = 1.8, 300.0, 1067


def tree_rss(proc: psutil.Process) -> int:
    """Summed resident memory of a process and all its descendants (bytes)."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_extraction(root: Path, out: Path, workers: int) -> dict:
    """One `sensecf data extract` subprocess: wall seconds, peak tree RSS (sampled), the largest single-process
    RSS (exact, from wait4), CPU seconds of the tree, load average before/after."""
    cmd = [sys.executable, "-m", "sensecf", "data", "extract", str(root), "--out", str(out), "--workers",
           str(workers)]
    log = out.with_name(out.name + ".log")
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
    ps = psutil.Process(proc.pid)
    peak, stop = [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], tree_rss(ps))
            except psutil.Error:
                pass
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)           # rusage of the CLI and every worker it waited for
    wall = time.perf_counter() - t0
    stop.set()
    sampler.join()
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{log.read_text()[-3000:]}")
    phases = json.loads(out.with_name(out.name + ".summary.json").read_text())["phases"]
    return {"workers": workers, "seconds": round(wall, 2), "phases": phases, "peak_rss_mb": round(peak[0] / 2**20, 1),
            "max_process_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1), "load_before": round(load0, 2),
            "load_after": round(os.getloadavg()[0], 2)}


CONTROL = "import sys\nfor _ in range(int(sys.argv[1])):\n    sum(i * i for i in range(2_000_000))"


def control_speedup(units: int = 8) -> float:
    """Wall time of 2 x `units` CPU-loop units in one process / 2 processes doing `units` each."""
    def wall(procs: int, each: int) -> float:
        t0 = time.perf_counter()
        running = [subprocess.Popen([sys.executable, "-c", CONTROL, str(each)]) for _ in range(procs)]
        for p in running:
            p.wait()
        return time.perf_counter() - t0

    return round(wall(1, 2 * units) / wall(2, units), 2)


def cohort_mb(root: Path) -> float:
    return sum(p.stat().st_size for p in root.rglob("*.json")) / 2**20


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="120,500,1067")
    ap.add_argument("--days", type=int, default=10)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the cohorts and feature files")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    worker_counts = [int(w) for w in args.workers.split(",")]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="sensecf-bench-extract-"))
    result = {"days": args.days, "seed": args.seed, "cpu_count": os.cpu_count(), "platform": platform.platform(),
              "versions": package_versions(), "sizes": []}
    saved = json.loads(JSON.read_text()) if JSON.is_file() else {}
    if (saved.get("days"), saved.get("seed")) == (args.days, args.seed):
        result["sizes"] = [r for r in saved["sizes"] if r["participants"] not in sizes]
    try:
        for n in sizes:
            root = work / f"p{n}-d{args.days}-s{args.seed}"
            t0 = time.perf_counter()
            if not (root / "participants.tsv").is_file():
                write_synthetic_cohort(root, n, args.days, args.seed, progress=False)
            write_s = time.perf_counter() - t0
            runs, controls = [], []
            for r in range(args.repeats):
                controls.append(control_speedup())
                print(f"control speed-up now: {controls[-1]}", flush=True)
                order = worker_counts if r % 2 == 0 else worker_counts[::-1]
                for w in order:
                    out = work / f"features-p{n}-w{w}-r{r}.parquet"
                    runs.append(run_extraction(root, out, w))
                    print(f"{n} participants, {w} worker(s): {runs[-1]}", flush=True)
            best = {w: min((x for x in runs if x["workers"] == w), key=lambda x: x["seconds"]) for w in worker_counts}
            row = {"participants": n, "raw_mb": round(cohort_mb(root), 1), "synth_write_seconds": round(write_s, 1),
                   "runs": runs, "controls": controls, "best": {str(w): b for w, b in best.items()}}
            for w, b in best.items():
                row[f"ms_per_participant_w{w}"] = round(1000 * b["seconds"] / n, 1)
            if 1 in best and 2 in best:
                row["speedup_2_workers"] = round(best[1]["seconds"] / best[2]["seconds"], 2)
                row["speedup_2_workers_pool"] = round(best[1]["phases"]["participants"]
                                                      / best[2]["phases"]["participants"], 2)
            result["sizes"] = sorted(result["sizes"] + [row], key=lambda r: r["participants"])
            write_json(JSON, result)
            if not args.keep:
                shutil.rmtree(root)
                for f in work.glob(f"features-p{n}-*"):
                    shutil.rmtree(f) if f.is_dir() else f.unlink()
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    write_json(JSON, result)
    (RESULTS / "extraction_scale.md").write_text(markdown(result))
    print(markdown(result))
    return result


def repeat_speedups(runs: list[dict]) -> list[float]:
    """1-worker / 2-worker wall time within each repeat (runs are stored repeat by repeat)."""
    out = []
    for i in range(0, len(runs) - 1, 2):
        pair = {r["workers"]: r["seconds"] for r in runs[i:i + 2]}
        if set(pair) == {1, 2}:
            out.append(round(pair[1] / pair[2], 2))
    return out


def markdown(result: dict) -> str:
    """The results table plus the three targets, each with its measured value."""
    lines = [f"# AI-READI extraction at scale (synthetic cohorts, {result['days']} days, "
             f"{result['cpu_count']} CPUs, shared machine)", "",
             "| participants | raw JSON MB | workers | wall s | ms/participant | pool s | serial s | peak tree RSS MB "
             "| max process RSS MB | CPU s | load before→after | speed-up (pool) | control |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|"]
    for row in result["sizes"]:
        for w, b in row["best"].items():
            ph = b.get("phases")
            pool, serial = (ph["participants"], round(ph["prepare"] + ph["combine"], 2)) if ph else ("–", "–")
            speed = f"{row.get('speedup_2_workers', '')} ({row.get('speedup_2_workers_pool', '–')})" if w == "2" else ""
            if w == "2" and len(row["runs"]) > 2:
                speed += " per repeat " + ", ".join(str(x) for x in repeat_speedups(row["runs"]))
            control = "/".join(str(c) for c in row.get("controls", [])) or "–"
            lines.append(f"| {row['participants']} | {row['raw_mb']} | {w} | {b['seconds']} | "
                         f"{round(1000 * b['seconds'] / row['participants'], 1)} | {pool} | {serial} | "
                         f"{b['peak_rss_mb']} | {b.get('max_process_rss_mb', '–')} | {b['cpu_seconds']} | "
                         f"{b['load_before']}→{b['load_after']} | {speed} | {control if w == '2' else ''} |")
    sizes = result["sizes"]
    peaks = {w: [r["best"][w]["peak_rss_mb"] for r in sizes if w in r["best"]] for w in ("1", "2")}
    lines += ["", "Targets:"]
    big = max(sizes, key=lambda r: r["participants"])
    if "speedup_2_workers" in big:
        ok = big["speedup_2_workers"] >= TARGET_SPEEDUP
        lines.append(f"- speed-up with 2 workers at {big['participants']} participants: "
                     f"{big['speedup_2_workers']} (target >= {TARGET_SPEEDUP}: {'met' if ok else 'MISSED'})")
    for w, p in peaks.items():
        if len(p) > 1:
            lines.append(f"- peak memory, {w} worker(s), smallest → largest cohort: {p[0]} → {p[-1]} MB "
                         f"(x{p[-1] / p[0]:.2f})")
    target = [r for r in sizes if r["participants"] == TARGET_SIZE and "2" in r["best"]]
    if target:
        s = target[0]["best"]["2"]["seconds"]
        lines.append(f"- {TARGET_SIZE} participants with 2 workers: {s} s (target <= {TARGET_SECONDS:.0f} s: "
                     f"{'met' if s <= TARGET_SECONDS else 'MISSED'})")
    lines += ["", "Synthetic cohort writing (serial writer): " + ", ".join(
        f"{r['participants']} participants {r['synth_write_seconds']} s" for r in sizes) + ".",
        "Wall time includes interpreter start-up, spawning the workers, the per-participant Parquet parts and the "
        "final combine; pool s = the participants phase (the process pool), serial s = prepare + combine; "
        "speed-up = 1-worker / 2-worker wall time of the fastest runs, (pool) the same for the participants phase, "
        "per repeat = within each repeat. control = the speed-up two processes of a pure CPU loop got just before "
        "each repeat (2.0 on two idle cores): the most this machine gave two workers then. Peak memory is the "
        "summed RSS of the CLI process and its workers."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
