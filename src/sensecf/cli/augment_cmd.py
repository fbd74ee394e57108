"""`sensecf augment` (Table IV, Fig 7) and `sensecf report` (the one-page HTML study report)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from ..errors import ConfigError
from ..locking import FolderLock
from .app import app
from .cf_cmd import parse_options
from .options import DATA_HELP, SCHEMA_HELP, check_llm_servers, parse_list, split_from_options


@app.command()
def augment(
    out: Path = typer.Option(..., help="Output folder (augmentation.json, table4.csv/.md, fig7_ratio_sweep.png); "
                                       "rerun with the same folder to resume."),
    data: Optional[str] = typer.Option(None, help=DATA_HELP),
    schema: Optional[str] = typer.Option(None, help=SCHEMA_HELP),
    methods: str = typer.Option("nice-sparsity,dice-random", help="Comma-separated counterfactual methods."),
    seeds: int = typer.Option(5, help="Number of seeds (0..K-1) per scenario."),
    ratios: str = typer.Option("0.2,0.4,0.6,0.8,1.0", help="Augmentation ratios (share of the removed rows)."),
    scenarios: str = typer.Option("A,B,C", help="Scarcity scenarios: A = class 1 halved, B = class 0 halved, "
                                                "C = both halved."),
    comparators: str = typer.Option("random-oversampling,smote", help="Non-CF comparators ('none' for none)."),
    classifier: str = typer.Option("nn", help="Classifier retrained on every set: nn | lr | rf | gb."),
    budget: Optional[int] = typer.Option(60, help="Rows added at ratio 100 % are capped at this budget for every "
                                                  "source (0 = as many as were removed, the paper's setting)."),
    fraction: float = typer.Option(0.5, help="Share of the halved class(es) removed."),
    unit: str = typer.Option("auto", help="Reduce by participants (default with a group column) or rows."),
    split_seed: int = typer.Option(0, help="Seed of the data generation and train/test split."),
    option: Optional[list[str]] = typer.Option(None, "--option", help="Generator option key=value (repeatable)."),
):
    """Counterfactual data augmentation under label scarcity (Table IV, Fig 7)."""
    from ..experiments.augmentation import run_augmentation

    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    opts = parse_options(option)
    method_list = parse_list(methods, str, "--methods")
    ratio_list = parse_list(ratios, float, "--ratios")
    scenario_list = parse_list(scenarios, str, "--scenarios")
    comparator_list = [] if comparators.strip().lower() == "none" else parse_list(comparators, str, "--comparators")
    check_llm_servers(method_list, opts)
    with FolderLock(out, "augmentation folder"):
        train, test = split_from_options(data, schema, split_seed)
        run_augmentation(train, test, method_list, scenarios=tuple(scenario_list), seeds=tuple(range(seeds)),
                         ratios=tuple(ratio_list), classifier_kind=classifier, out_dir=out, options=opts,
                         comparators=tuple(comparator_list), fraction=fraction, budget=budget or None, unit=unit)
    console = Console()
    console.print((out / "table4.md").read_text(), markup=False, highlight=False, soft_wrap=True)
    console.print(f"[bold green]written[/]: {out / 'augmentation.json'}, {out / 'fig7_ratio_sweep.png'}")


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="A study run folder (from `sensecf run`, or any folder holding some "
                                             "of its files)."),
    out: Optional[Path] = typer.Option(None, help="HTML file to write (default RUN_DIR/report.html)."),
):
    """Render the one-page, self-contained HTML study report of a run folder."""
    from ..report.html import render_report

    Console().print(f"[bold green]written[/]: {render_report(run_dir, out)}")
