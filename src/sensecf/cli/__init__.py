"""Command-line entry point: `sensecf`. Errors of sensecf become one red line and exit code 2."""

from __future__ import annotations

import sys

from rich.console import Console

from ..errors import SenseCFError
from .app import app
from . import augment_cmd, cf_cmd, data_cmd, finetune_cmd, run_cmd, serve_cmd, train_cmd  # noqa: F401  (registers)


def main() -> None:
    """Run the CLI; sensecf errors print without a traceback."""
    try:
        app(standalone_mode=False)
    except SenseCFError as e:
        Console(stderr=True).print(f"[bold red]error:[/] {e}", highlight=False)
        sys.exit(2)
    except Exception as e:  # click's own usage errors
        import click
        if isinstance(e, click.exceptions.ClickException):
            e.show()
            sys.exit(e.exit_code)
        if isinstance(e, (click.exceptions.Abort, KeyboardInterrupt)):
            Console(stderr=True).print("[yellow]interrupted; finished work is kept and a rerun resumes[/]")
            sys.exit(130)
        raise
