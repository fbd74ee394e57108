"""`sensecf data ...`: write a synthetic AI-READI cohort, extract the paper's window features."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from .app import app

data_app = typer.Typer(help="AI-READI data: synthetic cohort writer and feature extraction.", no_args_is_help=True)
app.add_typer(data_app, name="data")
console = Console()


@data_app.command("synth")
def synth(out: Path = typer.Option(..., "--out", help="directory to write the raw AI-READI layout into"),
          participants: int = typer.Option(120, "--participants", help="number of participants"),
          days: int = typer.Option(10, "--days", help="days of wearable data per participant"),
          seed: int = typer.Option(0, "--seed", help="random seed"),
          version: str = typer.Option("v2", "--version", help="file-layout variant: v1, v2 or v3")) -> None:
    """Write a seeded synthetic cohort in the raw AI-READI file layout (SYNTHETIC, not real data)."""
    from ..data.aireadi.synth import write_synthetic_cohort

    t0 = time.perf_counter()
    root = write_synthetic_cohort(out, n_participants=participants, days=days, seed=seed, version=version)
    console.print(f"wrote {participants} synthetic participant(s) x {days} day(s), layout {version}, seed {seed} "
                  f"to [bold]{root}[/] in {time.perf_counter() - t0:.1f} s")


@data_app.command("extract")
def extract(aireadi_dir: Path = typer.Argument(..., help="AI-READI root (the folder holding participants.tsv)"),
            out: Path = typer.Option(..., "--out", help="feature table: FILE.parquet or FILE.csv (by the suffix)"),
            demographics: Optional[Path] = typer.Option(
                None, "--demographics", help="controlled-access CSV/TSV with participant_id|person_id, gender "
                                             "and optionally medication"),
            workers: int = typer.Option(0, "--workers", help="worker processes (0 = one per CPU, fewer for small "
                                                             "cohorts)")) -> None:
    """Read an AI-READI root and write the paper's 2-h window features (+ label), one row per window.

    Participants run in parallel; each finished one is kept in OUT.parts/, so a rerun resumes where an
    interrupted one stopped. A participant with unreadable files is skipped and listed (OUT.summary.json).
    """
    from ..data.aireadi.pipeline import extract_cohort

    s = extract_cohort(aireadi_dir, out, demographics=demographics, workers=workers)
    table = Table(title=f"AI-READI windows -> {out}")
    for col, justify in (("split", "left"), ("participants", "right"), ("windows", "right"),
                         ("high stress %", "right")):
        table.add_column(col, justify=justify)
    for row in s.splits:
        table.add_row(row["split"], str(row["participants"]), str(row["windows"]), f"{row['high_stress_pct']:.1f}")
    console.print(table)
    for note in s.notes:
        style = "yellow" if note.startswith("skipped") else "dim"
        console.print(f"[{style}]- {note}[/]", highlight=False)
    ran = s.extracted + len(s.skipped)
    pace = f"; {s.workers} worker(s), {ran / max(s.phases['participants'], 1e-9):.1f} participants/s" if ran else ""
    console.print(f"{s.extracted} participant(s) extracted, {s.resumed} resumed from {out.name}.parts, "
                  f"{len(s.skipped)} skipped{pace}; done in {s.seconds:.1f} s")
