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
            out: Path = typer.Option(..., "--out", help="CSV file for the window feature table"),
            demographics: Optional[Path] = typer.Option(
                None, "--demographics", help="controlled-access CSV/TSV with participant_id|person_id, gender "
                                             "and optionally medication")) -> None:
    """Read an AI-READI root and write the paper's 2-h window features (+ label) to a CSV."""
    from ..data.aireadi.features import aireadi_dataset

    t0 = time.perf_counter()
    ds = aireadi_dataset(aireadi_dir, demographics=demographics)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame = ds.frame.copy()
    for f in ds.schema.features:
        if f.kind == "integer":
            frame[f.name] = frame[f.name].round().astype(int)
    frame.to_csv(out, index=False)
    table = Table(title=f"AI-READI windows -> {out}")
    table.add_column("split")
    table.add_column("participants", justify="right")
    table.add_column("windows", justify="right")
    table.add_column("high stress %", justify="right")
    for split, g in [("all", frame)] + list(frame.groupby("recommended_split")):
        table.add_row(str(split), str(g["participant_id"].nunique()), str(len(g)), f"{100 * g['label'].mean():.1f}")
    console.print(table)
    for note in ds.notes:
        style = "yellow" if note.startswith("skipped") else "dim"
        console.print(f"[{style}]- {note}[/]", highlight=False)
    console.print(f"done in {time.perf_counter() - t0:.1f} s")
