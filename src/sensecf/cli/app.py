"""The Typer application object shared by every command module."""

import typer

app = typer.Typer(name="sensecf", no_args_is_help=True, add_completion=False,
                  help="LLM counterfactual explanations for sensor-derived health data (SenseCF).")
