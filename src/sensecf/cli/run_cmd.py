"""`sensecf run`: the whole study end to end into one results folder (resumable)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from ..study import Study, study_config_from
from .app import app
from .options import check_llm_servers, exit_if_only_backend_errors


@app.command()
def run(
    out: Optional[Path] = typer.Option(None, help="Results folder (default: runs/<timestamp>). Rerun with the same "
                                                  "folder to resume."),
    quick: bool = typer.Option(False, "--quick", help="Small, fast settings for a smoke test."),
    config: Optional[Path] = typer.Option(None, help="YAML file with StudyConfig keys (see docs/architecture.md)."),
    data: Optional[str] = typer.Option(None, help="synthetic | AI-READI folder | uci-heart | CSV (with --schema)."),
    schema: Optional[str] = typer.Option(None, help="Schema YAML for a CSV dataset."),
    seed: Optional[int] = typer.Option(None, help="Seed of every stochastic step."),
    methods: Optional[str] = typer.Option(None, help="Comma-separated counterfactual methods to benchmark."),
    backend: Optional[str] = typer.Option(None, help="LLM backend: embedded | embedded:gemma | hf:PATH | openai:MODEL"),
    base_url: Optional[str] = typer.Option(None, help="Base URL of an OpenAI-compatible server."),
    allow_remote: bool = typer.Option(False, "--allow-remote", help="Allow sending patient rows to a non-loopback "
                                                                   "endpoint."),
):
    """Run the default study (synthetic AI-READI cohort -> ... -> report.html)."""
    cfg = study_config_from(str(config) if config else None, quick, data=data, schema=schema, seed=seed,
                            methods=methods.split(",") if methods else None)
    for key, value in (("backend", backend), ("base_url", base_url)):
        if value:
            cfg.options[key] = value
    if allow_remote:
        cfg.options["allow_remote"] = True
    check_llm_servers(cfg.methods + cfg.aug_methods, cfg.options)
    out = out or Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")
    report = Study(cfg, out).run()
    Console().print(f"[bold green]done[/]: {report}")
    exit_if_only_backend_errors(out, cfg.methods)
