"""`sensecf data ...`: write a synthetic AI-READI cohort; extract window features from AI-READI or CGM/wearable
exports."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from ..data.aireadi import DEFAULT_DAYS, DEFAULT_PARTICIPANTS
from .app import app

data_app = typer.Typer(help="Sensor data: synthetic AI-READI cohort writer and feature extraction (AI-READI, "
                                 "Dexcom, LibreView, long format).", no_args_is_help=True)
app.add_typer(data_app, name="data")
console = Console()


@data_app.command("synth")
def synth(out: Path = typer.Option(..., "--out", help="directory to write the raw AI-READI layout into"),
          participants: int = typer.Option(DEFAULT_PARTICIPANTS, "--participants", help="number of participants"),
          days: int = typer.Option(DEFAULT_DAYS, "--days", help="days of wearable data per participant"),
          seed: int = typer.Option(0, "--seed", help="random seed"),
          version: str = typer.Option("v2", "--version", help="file-layout variant: v1, v2 or v3")) -> None:
    """Write a seeded synthetic cohort in the raw AI-READI file layout (SYNTHETIC, not real data)."""
    from ..data.aireadi.synth import write_synthetic_cohort

    t0 = time.perf_counter()
    root = write_synthetic_cohort(out, n_participants=participants, days=days, seed=seed, version=version)
    console.print(f"wrote {participants} synthetic participant(s) x {days} day(s), layout {version}, seed {seed} "
                  f"to [bold]{root}[/] in {time.perf_counter() - t0:.1f} s")


def _text(flag: str, help: str):
    """An optional text option."""
    return typer.Option(None, flag, help=help)


@data_app.command("extract")
def extract(path: Path = typer.Argument(..., help="AI-READI root, or a CGM/wearable export file or folder "
                                                  "(docs/data-formats.md)"),
            out: Path = typer.Option(..., "--out", help="feature table: FILE.parquet or FILE.csv (by the suffix); "
                                                        "its schema goes to FILE.schema.yaml"),
            fmt: str = typer.Option("auto", "--format", help="auto | aireadi | dexcom | libre | long"),
            participants: Optional[Path] = typer.Option(
                None, "--participants", help="CSV/TSV with a participant id and per-participant columns (age, sex, "
                                             "a label such as a diagnosis); default: participants.csv in the folder"),
            label: Optional[str] = _text("--label", "label = this participants-file column (or 'stress'); "
                                                    "default: a 'label' column, else daily stress > 75"),
            positive: Optional[str] = _text("--positive", "the --label value that is class 1 (all others 0)"),
            timezone: Optional[str] = _text("--timezone", "IANA zone of naive timestamps, e.g. Europe/Berlin; "
                                                          "default: the local clock as written"),
            units: Optional[str] = _text("--units", "glucose units of long-format files: mg/dL or mmol/L "
                                                    "(default: from the column name or the values)"),
            date_order: Optional[str] = _text("--date-order", "dmy or mdy for dates like 01-02-2023 (default: "
                                                              "detected)"),
            columns: Optional[str] = _text("--columns", "long-format column names, e.g. "
                                                        "id=subject,time=ts,glucose=gl"),
            hyper_rule: str = typer.Option("overlap", "--hyper-rule", help="hyperglycaemic events that overlap a "
                                                                           "window (default) or start in it"),
            demographics: Optional[Path] = typer.Option(
                None, "--demographics", help="AI-READI: controlled-access CSV/TSV with participant_id|person_id, "
                                             "gender and optionally medication"),
            workers: int = typer.Option(0, "--workers", help="AI-READI: worker processes (0 = one per CPU, fewer "
                                                             "for small cohorts)")) -> None:
    """Read sensor data and write one row per 2-h window (features + label) and the table's schema YAML.

    AI-READI roots give the paper's 12 features (participants in parallel; each finished one is kept in
    OUT.parts/, so a rerun resumes). Dexcom, LibreView and long-format exports give the features their data
    support: CGM -> glucose features, + steps -> mean steps, + staged sleep -> stage shares, + participants file
    -> its columns; the features that are not available are listed with the reason.
    """
    from ..data.importers import detect_format, parse_columns

    kind = fmt if fmt != "auto" else detect_format(path, parse_columns(columns))
    if kind == "aireadi":
        _extract_aireadi(path, out, demographics, workers, hyper_rule)
    else:
        _extract_export(path, out, "auto" if kind == "mixed" else kind, participants, label, positive, timezone,
                        units, date_order, parse_columns(columns), hyper_rule)


def _print_notes(notes: list[str]) -> None:
    for note in notes:
        style = "yellow" if note.startswith(("skipped", "warning")) else "dim"
        console.print(f"[{style}]- {note}[/]", highlight=False)


def _extract_aireadi(root: Path, out: Path, demographics: Optional[Path], workers: int, hyper_rule: str) -> None:
    from ..data.aireadi.pipeline import extract_cohort
    from ..data.aireadi.schema import aireadi_stress_schema
    from ..data.extraction import schema_path_for

    s = extract_cohort(root, out, demographics=demographics, workers=workers, hyper_rule=hyper_rule)
    schema_path = schema_path_for(out)
    aireadi_stress_schema(hyper_rule).to_yaml(schema_path)
    table = Table(title=f"AI-READI windows -> {out}")
    for col, justify in (("split", "left"), ("participants", "right"), ("windows", "right"),
                         ("high stress %", "right")):
        table.add_column(col, justify=justify)
    for row in s.splits:
        table.add_row(row["split"], str(row["participants"]), str(row["windows"]), f"{row['high_stress_pct']:.1f}")
    console.print(table)
    _print_notes(s.notes)
    ran = s.extracted + len(s.skipped)
    pace = f"; {s.workers} worker(s), {ran / max(s.phases['participants'], 1e-9):.1f} participants/s" if ran else ""
    console.print(f"{s.extracted} participant(s) extracted, {s.resumed} resumed from {out.name}.parts, "
                  f"{len(s.skipped)} skipped{pace}; done in {s.seconds:.1f} s; schema: {schema_path}")


def _extract_export(path: Path, out: Path, fmt: str, participants, label, positive, timezone, units, date_order,
                    columns, hyper_rule: str) -> None:
    from ..data.extraction import import_dataset, write_features

    t0 = time.perf_counter()
    ex = import_dataset(path, fmt, participants, label, positive, timezone, units, date_order, columns, hyper_rule)
    for w in ex.warnings:
        console.print(f"[yellow]warning:[/] {w}", highlight=False)
    ds = ex.dataset
    schema_path = write_features(ds, out)
    frame = ds.frame
    table = Table(title=f"windows -> {out}")
    for col, justify in (("participants", "right"), ("windows", "right"), (f"{ds.schema.label_names[1]} %", "right")):
        table.add_column(col, justify=justify)
    table.add_row(str(frame["participant_id"].nunique()), str(len(frame)), f"{100 * frame['label'].mean():.1f}")
    console.print(table)
    console.print(f"features: {', '.join(ds.schema.feature_names)}", highlight=False)
    if ex.unavailable:
        console.print("[yellow]not available:[/] " + "; ".join(f"{k} ({v})" for k, v in ex.unavailable.items()),
                      highlight=False)
    _print_notes(ds.notes)
    console.print(f"done in {time.perf_counter() - t0:.1f} s; schema: {schema_path}")
