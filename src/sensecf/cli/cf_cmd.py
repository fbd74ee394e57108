"""`sensecf benchmark` (Table III) and `sensecf explain` (one patient's intervention, Table II)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
import yaml
from rich.console import Console

from ..errors import ConfigError, DataError
from ..locking import FolderLock
from .app import app
from .options import DATA_HELP, SCHEMA_HELP, check_llm_servers, exit_if_only_backend_errors

DEFAULT_METHODS = "dice-random,dice-genetic,dice-kdtree,cfnow-greedy,cfnow-random,nice-sparsity,nice-proximity," \
                  "nice-plausibility"


def parse_options(pairs: list[str] | None) -> dict:
    """`key=value` strings -> dict; values parsed as YAML scalars (numbers, booleans), else kept as text."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--option expects key=value, got {pair!r}")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def llm_settings(backend: str | None, base_url: str | None, allow_remote: bool) -> dict:
    """The LLM backend flags as generator options (only those given)."""
    out: dict = {"backend": backend} if backend else {}
    if base_url:
        out["base_url"] = base_url
    if allow_remote:
        out["allow_remote"] = True
    return out


BACKEND_HELP = "LLM backend for llm-* methods: embedded | embedded:gemma | hf:PATH | openai:MODEL."
BASE_URL_HELP = "Base URL of an OpenAI-compatible server (vLLM, Ollama, llama.cpp server, ...)."
REMOTE_HELP = "Allow sending patient rows to a non-loopback endpoint (off by default)."


def train_test(data: str | None, schema: str | None, seed: int):
    """(train, test) Datasets from the shared --data/--schema handling (patient-level 80/20 split)."""
    from .options import split_from_options

    return split_from_options(data, schema, seed)


def _classifier(kind: str, train, seed: int):
    from ..models.classifiers import train_classifier

    return train_classifier(kind, train.X, train.y, train.schema, seed)


@app.command()
def benchmark(
    out: Path = typer.Option(..., help="Output folder (cfs/<method>.csv, benchmark.json/.csv/.md); rerun to resume."),
    data: Optional[str] = typer.Option(None, help=DATA_HELP),
    schema: Optional[str] = typer.Option(None, help=SCHEMA_HELP),
    methods: str = typer.Option(DEFAULT_METHODS, help="Comma-separated counterfactual methods."),
    n: int = typer.Option(50, "--n", help="Test instances per class."),
    classifier: str = typer.Option("nn", help="Black-box classifier: nn | lr | rf | gb."),
    seed: int = typer.Option(0, help="Seed of the split, classifier, sampling and methods."),
    cfnow_time_limit: Optional[float] = typer.Option(None, help="CFNOW seconds per instance (default: option "
                                                                "cfnow_time_limit, 10; the package's own is 120)."),
    option: Optional[list[str]] = typer.Option(None, "--option", help="Generator option key=value (repeatable)."),
    backend: Optional[str] = typer.Option(None, help=BACKEND_HELP),
    base_url: Optional[str] = typer.Option(None, help=BASE_URL_HELP),
    allow_remote: bool = typer.Option(False, "--allow-remote", help=REMOTE_HELP),
):
    """Run counterfactual methods on the same test instances; write Table III (per class)."""
    from ..experiments.benchmark import run_benchmark

    opts = {**({"cfnow_time_limit": cfnow_time_limit} if cfnow_time_limit is not None else {}),
            **llm_settings(backend, base_url, allow_remote), **parse_options(option)}
    method_list = [m.strip() for m in methods.split(",") if m.strip()]
    check_llm_servers(method_list, opts)
    with FolderLock(out, "benchmark folder"):
        train, test = train_test(data, schema, seed)
        clf = _classifier(classifier, train, seed)
        run_benchmark(train, test, clf, method_list, n_per_class=n, seed=seed, out_dir=out, options=opts)
    console = Console()
    console.print((out / "benchmark.md").read_text(), markup=False, highlight=False)
    console.print(f"[bold green]written[/]: {out / 'benchmark.json'}")
    exit_if_only_backend_errors(out, method_list)


@app.command()
def explain(
    row: str = typer.Option(..., help="Index label of the test row to explain."),
    data: Optional[str] = typer.Option(None, help=DATA_HELP),
    schema: Optional[str] = typer.Option(None, help=SCHEMA_HELP),
    method: str = typer.Option("nice-sparsity", help="Counterfactual method."),
    classifier: str = typer.Option("nn", help="Black-box classifier: nn | lr | rf | gb."),
    seed: int = typer.Option(0, help="Seed of the split, classifier and method."),
    as_json: bool = typer.Option(False, "--json", help="Print the view as JSON."),
    option: Optional[list[str]] = typer.Option(None, "--option", help="Generator option key=value (repeatable)."),
    backend: Optional[str] = typer.Option(None, help=BACKEND_HELP),
    base_url: Optional[str] = typer.Option(None, help=BASE_URL_HELP),
    allow_remote: bool = typer.Option(False, "--allow-remote", help=REMOTE_HELP),
    llm_narrative: bool = typer.Option(False, "--llm-narrative", help="Also ask the LLM backend for a narrative "
                                       "(kept only if every number in it matches the verified changes)."),
):
    """Counterfactual intervention for one test row: changes, probabilities before/after, narrative."""
    from ..experiments.intervention import format_text, intervention_view, narrative
    from ..generators.base import GeneratorContext, build_generator

    llm = llm_settings(backend, base_url, allow_remote)
    check_llm_servers([method], {**llm, **parse_options(option)})
    train, test = train_test(data, schema, seed)
    matches = [i for i in test.frame.index if str(i) == row]
    if not matches:
        raise DataError(f"row {row!r} is not in the test split ({len(test)} rows, e.g. "
                        f"{', '.join(map(str, test.frame.index[:5]))})", row=row)
    clf = _classifier(classifier, train, seed)
    factual = test.X.loc[[matches[0]]]
    target = 1 - int(clf.predict(factual)[0])
    gen = build_generator(method, GeneratorContext(train.schema, clf, train.X, train.y, seed,
                                                   {**llm, **parse_options(option)}))
    res = gen.generate(factual, target)
    idx = factual.index[0]
    status, reason = res.status[idx], res.reason[idx]
    if status == "failed":
        payload = {"row": row, "method": method, "status": status, "reason": reason}
        if as_json:
            typer.echo(json.dumps(payload, indent=2))
        else:
            Console().print(f"[yellow]{method} found no counterfactual for row {row}:[/] {reason}", highlight=False)
        raise typer.Exit(1)
    view = intervention_view(factual.iloc[0], res.counterfactuals.loc[idx], clf, train.schema)
    view.update({"row": row, "method": method, "status": status, "reason": reason,
                 "narrative": narrative(view, train.schema)})
    if llm_narrative:
        from ..backends.openai_backend import SERVER_OPTIONS
        from ..experiments.intervention import llm_narrative as write_narrative
        from ..generators.base import method_options
        from ..generators.llm.resources import cached_backend

        opts = method_options("llm-zero-shot", {**llm, **parse_options(option)})
        server = {k: getattr(opts, k) for k in SERVER_OPTIONS} if opts.backend.startswith("openai:") else {}
        model = cached_backend(opts.backend, base_url=opts.base_url, allow_remote=opts.allow_remote, **server)
        view["llm_narrative"] = write_narrative(view, train.schema, model)
    if as_json:
        typer.echo(json.dumps(view, indent=2))
        return
    console = Console()
    console.print(f"[bold]row {row}[/] — {method} ({status}{': ' + reason if reason else ''})", highlight=False)
    console.print(format_text(view), markup=False, highlight=False)
    console.print()
    console.print(view["narrative"], markup=False, highlight=False)
    if llm_narrative:
        console.print()
        console.print(view["llm_narrative"] or "(the LLM's narrative was rejected: it did not match the numbers)",
                      markup=False, highlight=False)
