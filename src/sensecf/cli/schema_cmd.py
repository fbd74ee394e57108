"""`sensecf schema infer`: draft a schema YAML from a CSV, with comments saying what to review."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from ..errors import ConfigError
from .app import app

schema_app = typer.Typer(help="Feature schemas: draft one from your own CSV.", no_args_is_help=True)
app.add_typer(schema_app, name="schema")


@schema_app.command("infer")
def infer(
    data: Path = typer.Argument(..., help="CSV table: one row per sample, a 0/1 label column and feature columns."),
    label: str = typer.Option(..., help="The label column (values 0 and 1)."),
    out: Path = typer.Option(..., help="Schema YAML to write (refused if it exists, unless --force)."),
    group: Optional[str] = typer.Option(None, help="Column of the person each row belongs to (kept on one side of "
                                                   "the split); guessed from repeated ids when not given."),
    id_columns: Optional[list[str]] = typer.Option(None, "--id", help="Identifier column, not a feature "
                                                                      "(repeatable); guessed when not given."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing --out file."),
) -> None:
    """Draft a schema from DATA: kinds, levels, observed ranges as bounds, integer codes, precision, the id and
    group columns; its comments say what to review (immutables, better, actionability, desired_class, bounds)."""
    from ..data.infer import infer_schema
    from ..data.tabular import read_table
    from ..files import write_text

    if out.exists() and not force:
        raise ConfigError(f"{out} exists; pass --force to overwrite it")
    draft = infer_schema(read_table(data), label, str(data), group=group, ids=id_columns)
    write_text(out, draft.to_yaml())
    table = Table(title=f"{data} -> {out}")
    for name in ("column", "role", "kind", "note"):
        table.add_column(name)
    for c in draft.columns:
        table.add_row(c.column, c.role, c.kind, c.note)
    console = Console()
    console.print(table)
    for col, n in draft.missing.items():
        console.print(f"[yellow]warning:[/] column {col!r} has {n} missing value(s); the loader rejects rows "
                      "with missing values: fill or drop them", highlight=False)
    console.print(f"[bold green]written[/]: {out}. Review its comments (immutables, better, actionability, "
                  f"desired_class, bounds), then: sensecf train --data {data} --schema {out} --out model/",
                  highlight=False)
