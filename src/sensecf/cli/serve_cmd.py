"""`sensecf serve`: the local what-if web app over a run folder, or over a dataset without a run."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from ..errors import ConfigError
from .app import app
from .cf_cmd import BACKEND_HELP, BASE_URL_HELP, REMOTE_HELP, llm_settings, parse_options
from .options import DATA_HELP, SCHEMA_HELP, split_from_options


@app.command()
def serve(
    run_dir: Optional[Path] = typer.Argument(None, help="Run folder (sensecf run/benchmark --out); or use --data."),
    data: Optional[str] = typer.Option(None, help=DATA_HELP + " Without RUN_DIR: split and train at start."),
    schema: Optional[str] = typer.Option(None, help=SCHEMA_HELP),
    classifier: str = typer.Option("nn", help="Classifier trained without a run: nn | lr | rf | gb."),
    seed: int = typer.Option(0, help="Seed of the split, classifier and new CFs without a run (a run keeps its own)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on. Anything but loopback shows patient rows "
                             "to the network."),
    port: int = typer.Option(8000, help="Port to listen on."),
    option: Optional[list[str]] = typer.Option(None, "--option", help="Generator option key=value (repeatable)."),
    backend: Optional[str] = typer.Option(None, help=BACKEND_HELP),
    base_url: Optional[str] = typer.Option(None, help=BASE_URL_HELP),
    allow_remote: bool = typer.Option(False, "--allow-remote", help=REMOTE_HELP),
):
    """Local what-if page: pick a test row, move the features, see the classifier's probability, compare and
    request counterfactuals, export the intervention."""
    from ..serve.app import is_loopback, serve as run_server
    from ..serve.run_folder import from_data, load_run
    from ..serve.whatif import WhatIf

    if run_dir is not None and (data or schema):
        raise ConfigError("give a RUN_DIR or --data/--schema, not both")
    options = {**llm_settings(backend, base_url, False), **parse_options(option)}
    console = Console(stderr=True)
    with console.status("loading"):
        if run_dir is not None:
            ws = load_run(run_dir)
            ws.options.update(options)
        else:
            train, test = split_from_options(data, schema, seed)
            ws = from_data(train, test, classifier, seed, options)
        whatif = WhatIf(ws, allow_remote=allow_remote)
    if not is_loopback(host):
        console.print(f"[bold yellow]warning:[/] listening on {host}: anyone who can reach this address can read the "
                      "patient rows of this run and use its classifier", highlight=False)
    console.print(f"[bold green]what-if page[/]: http://{'127.0.0.1' if is_loopback(host) else host}:{port}  "
                  f"({ws.source}; Ctrl+C stops)", highlight=False)
    run_server(whatif, host, port)
