"""One self-contained HTML page (inline CSS, base64 PNGs, no external URLs) from a study run folder.

Every section reads the files a study step writes; a missing file renders as a "not run" note, and a file that
cannot be read renders its error in the same place, so a partial or damaged run still gives a page.

Run folder files used (the study's only contract with the report; nothing is recomputed from data or models):
run.json, data_summary.json, schema.yaml, train.csv, classifiers.json, fig1_classifier_curve.png, finetune.json
(adapter path + card), benchmark.json, factuals.csv, cfs/<method>.csv, augmentation.json, table4.csv,
fig7_ratio_sweep.png, intervention.json.
"""

from __future__ import annotations

import base64
import json
import math
from datetime import datetime
from pathlib import Path

import jinja2
import pandas as pd

from ..errors import ConfigError
from ..schema import Schema

SECTIONS = [
    ("run", "Run configuration"),
    ("data", "Data"),
    ("classifiers", "Classifiers (Fig 1)"),
    ("finetune", "Fine-tuned generator (LoRA)"),
    ("benchmark", "Counterfactual benchmark (Table III)"),
    ("radar", "Feature-change frequency (Fig 6)"),
    ("latent", "Latent space (Fig 8)"),
    ("augmentation", "Augmentation under label scarcity (Table IV, Fig 7)"),
    ("intervention", "Intervention example (Table II)"),
]
BENCH_METRICS = ("n", "validity", "distance", "cost", "sparsity", "plausibility", "actionable_share",
                 "actionable_when_feasible", "from_llm", "seconds_per_valid_cf")


def _by_llm(n) -> str:
    """' (12 by the LLM)' for a calibrated LLM row's added rows, '' for other rows."""
    return "" if n is None else f" ({n:.0f} by the LLM)"


class _NotRun(Exception):
    """A section's input is absent; the message says what to run."""


def fmt(v, digits: int = 3) -> str:
    """Numbers for tables: floats rounded, None/NaN as an en dash."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    if isinstance(v, (list, tuple)):
        return ", ".join(fmt(x, digits) for x in v) or "–"
    if isinstance(v, dict):
        return ", ".join(f"{k}: {fmt(x, digits)}" for k, x in v.items())
    return str(v)


def _mean_ci(mean, ci, digits: int) -> str:
    """ "mean ± ci" (the ± part only when the half-width is known)."""
    text = fmt(mean, digits)
    if text == "–" or ci is None or (isinstance(ci, float) and math.isnan(ci)):
        return text
    return f"{text} ± {ci:.{digits}f}"


def png_base64(path: Path) -> str:
    """A PNG file as base64 text for a data: URI."""
    return base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _json(path: Path, step: str) -> dict:
    if not path.exists():
        raise _NotRun(f"{path.name} is absent — the {step} step has not been run in this folder.")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None


def _table(columns, rows, title="", note="", left=1) -> dict:
    return {"title": title, "note": note, "columns": list(columns), "left": left,
            "rows": [r if isinstance(r, dict) else {"cells": list(r), "cls": ""} for r in rows]}


def _section(sid: str, heading: str, **parts) -> dict:
    base = {"id": sid, "heading": heading, "ok": True, "note": "", "paragraphs": [], "kv": [], "tables": [],
            "figures": [], "notes": [], "missing": [], "pre": "", "details": None}
    base.update(parts)
    return base


def _figure(path: Path, caption: str, narrow: bool = False) -> dict:
    return {"data": png_base64(path), "caption": caption, "cls": "narrow" if narrow else ""}


# ---- sections ----------------------------------------------------------------------------------------------
def _run_section(run_dir: Path, ctx: dict) -> dict:
    run = _json(run_dir / "run.json", "study (sensecf run)")
    cfg = run.get("config", {})
    seeds = {k: v for k, v in cfg.items() if "seed" in k}
    timings = run.get("timings_s", {})
    tables = []
    if timings:
        overlap = any(k.endswith("(background)") for k in timings)
        tables.append(_table(["step", "seconds"], [[k, fmt(float(v), 1)] for k, v in timings.items()],
                             title="Step timings", note="The background job (fine-tune, then the adapter methods' "
                             "augmentation CFs) ran at the same time as the steps before 'waiting for the background "
                             "job': those seconds overlap." if overlap else ""))
    return {"paragraphs": [f"Status: {run.get('status', 'unknown')}."],
            "kv": [{"title": "Seeds", "data": {k: fmt(v) for k, v in seeds.items()} or {"seed": "–"}},
                   {"title": "Configuration", "data": {k: fmt(v) for k, v in cfg.items()}},
                   {"title": "Versions", "data": {k: fmt(v) for k, v in run.get("versions", {}).items()}}],
            "tables": tables}


def _data_section(run_dir: Path, ctx: dict) -> dict:
    d = _json(run_dir / "data_summary.json", "data")
    names = d.get("label_names", {})
    counts = d.get("class_counts", {})
    total = sum(counts.values()) or 1
    rows = [[f"{k} ({names.get(str(k), '')})", str(v), f"{v / total:.1%}"] for k, v in counts.items()]
    info = {k: fmt(d.get(k)) for k in ("dataset", "rows", "participants", "train_rows", "test_rows",
                                        "train_participants", "test_participants") if k in d}
    info["features"] = fmt(d.get("features", []))
    notes = [f"Note: {n}" for n in d.get("notes", [])]
    return {"kv": [{"title": "Summary", "data": info}],
            "tables": [_table(["class", "rows", "share"], rows, title="Class balance")], "notes": notes}


def _classifier_section(run_dir: Path, ctx: dict) -> dict:
    c = _json(run_dir / "classifiers.json", "classifiers")
    metrics = c.get("test_metrics", {})
    keys = ["accuracy", "precision", "recall", "f1", "macro_f1", "f1_class0", "f1_class1", "auc", "brier", "ece"]
    rows = [{"cells": [k + (" (main)" if k == c.get("main") else "")] + [fmt(m.get(x)) for x in keys],
             "cls": "ref" if k == c.get("main") else ""} for k, m in metrics.items()]
    fit = c.get("fit", {})
    out = {"tables": [_table(["classifier", *keys], rows, title="Test-set metrics (f1 = class 1 positive; macro_f1 "
                             "= mean of both classes' F1; brier and ece = calibration of P(class 1))",
                             note="Early stopping validated on: " + ", ".join(
                                 f"{k} {v.get('validation', '?')}" for k, v in fit.items()) if fit else "")],
           "figures": [], "missing": []}
    fig = run_dir / "fig1_classifier_curve.png"
    if fig.exists():
        out["figures"].append(_figure(fig, "Fig 1: test macro-F1 vs share of training data per classifier."))
    else:
        out["missing"].append("fig1_classifier_curve.png is absent (classifier curve step not run).")
    if c.get("reliability"):
        from .figures import reliability_plot

        out["figures"].append(_figure(reliability_plot(c["reliability"], ctx["out_dir"] / "reliability.png"),
                                      "Reliability of P(class 1) on the test set (observed rate vs mean predicted, "
                                      "per probability bin; the diagonal is perfect calibration).", narrow=True))
    return out


def _finetune_section(run_dir: Path, ctx: dict) -> dict:
    f = _json(run_dir / "finetune.json", "fine-tuning (needs llm-fine-tuned among the methods)")
    card = f.get("card") or {}
    cfg, pairs = card.get("config", {}), card.get("pairs", {})
    info = {
        "adapter": f.get("adapter", "–"), "base model": card.get("base_model", "–"),
        "prompt style / target policy": f"{cfg.get('prompt_style', '–')} / {cfg.get('target_policy', '–')}",
        "pairs (train / validation used)": f"{fmt(pairs.get('train_pairs'))} / {fmt(pairs.get('val_pairs_used'))}",
        "factuals skipped": fmt(pairs.get("skipped", {})),
        "LoRA": f"r {fmt(cfg.get('lora_r'))}, alpha {fmt(cfg.get('lora_alpha'))}, "
                f"dropout {fmt(cfg.get('lora_dropout'))}, {fmt(cfg.get('target_modules'))}",
        "steps × batch × accumulation": f"{fmt(card.get('steps'))} × {fmt(cfg.get('batch_size'))} × "
                                        f"{fmt(cfg.get('grad_accum'))}",
        "learning rate / precision": f"{fmt(cfg.get('learning_rate'), 4)} / {fmt(cfg.get('precision'))}",
        "wall time (s) / per step": f"{fmt(card.get('wall_seconds'), 1)} / {fmt(card.get('seconds_per_step'), 2)}",
        "device / threads / peak RSS (MB)": f"{fmt(card.get('device'))} / {fmt(card.get('threads'))} / "
                                            f"{fmt(card.get('peak_rss_mb'), 0)}",
        "train loss first → last / eval loss": f"{fmt(card.get('train_loss_first'))} → "
                                               f"{fmt(card.get('train_loss_last'))} / {fmt(card.get('eval_loss'))}",
        "trained": fmt(card.get("finished")),
    }
    return {"paragraphs": [f"LoRA adapter of {card.get('base_model', 'the base model')} used by llm-fine-tuned in "
                           "the benchmark below. The default recipe's adapter is cached by data and settings, so "
                           "'trained' can predate this run."],
            "kv": [{"title": "Adapter card", "data": info}]}


def _benchmark_section(run_dir: Path, ctx: dict) -> dict:
    b = _json(run_dir / "benchmark.json", "benchmark")
    names = b.get("label_names", {})
    classes = sorted({c for r in b.get("methods", {}).values() for c in r.get("per_class", {})}, key=int)
    tables = []
    for cls in classes:
        rows = [[m] + [fmt(r["per_class"].get(cls, {}).get(k), 2 if k != "n" else 0) for k in BENCH_METRICS]
                for m, r in b["methods"].items()]
        tables.append(_table(["method", *BENCH_METRICS], rows,
                             title=f"Factuals of class {cls} ({names.get(cls, '')}) → target class {1 - int(cls)}"))
    status_rows, outcome_rows = [], []
    for m, r in b.get("methods", {}).items():
        s = r.get("summary", {})
        status_rows.append([m, fmt(s.get("n")), fmt(s.get("valid")), fmt(s.get("invalid")), fmt(s.get("failed")),
                            fmt(s.get("reasons", {}))])
        for col, counts in (r.get("outcomes") or {}).items():
            outcome_rows.append([m, col, fmt(counts)])
    tables.append(_table(["method", "n", "valid", "invalid", "failed", "top reasons"], status_rows,
                         title="Outcome of every request"))
    if outcome_rows:
        tables.append(_table(["method", "column", "counts"], outcome_rows, left=3,
                             title="Per-row outcome columns (LLM: first try / repaired / given up; "
                                   "baselines: projected)"))
    return {"paragraphs": [f"{b.get('n_factuals', '?')} test factuals ({b.get('n_per_class', '?')} per predicted "
                           f"class), seed {b.get('seed', '?')}, classifier {b.get('classifier', '?')}. Validity = "
                           "share of factuals with a CF predicted as the target; distance (L2 of min-max scaled "
                           "numeric + Hamming of categorical), sparsity (changed features) and plausibility "
                           "(inside the training range) are means over valid CFs."],
            "tables": tables}


def _cf_inputs(run_dir: Path, ctx: dict):
    """(schema, X_train, factuals, {method: CF table}) for Figs 6 and 8, cached in ctx."""
    if "cf_inputs" in ctx:
        return ctx["cf_inputs"]
    cfs_dir = run_dir / "cfs"
    paths = sorted(p for p in cfs_dir.glob("*.csv") if p.stem != "factuals") if cfs_dir.is_dir() else []
    if not paths:
        raise _NotRun("cfs/<method>.csv files are absent — the benchmark step has not been run.")
    schema, train, factuals = _study_tables(run_dir, ctx)
    tables = {p.stem: pd.read_csv(p, dtype={c: str for c in schema.categorical} | {"reason": str,
                                                                                    "factual_id": str})
              for p in paths}
    ctx["cf_inputs"] = (schema, train, factuals, tables)
    return ctx["cf_inputs"]


def _study_tables(run_dir: Path, ctx: dict):
    """Schema, training features and benchmark factuals from schema.yaml, train.csv and factuals.csv."""
    missing = [n for n in ("schema.yaml", "train.csv", "factuals.csv") if not (run_dir / n).exists()]
    if missing:
        raise _NotRun(f"{', '.join(missing)} absent — the data and benchmark steps write them.")
    schema = Schema.from_yaml(run_dir / "schema.yaml")
    read = lambda p: pd.read_csv(p, dtype={c: str for c in schema.categorical})  # noqa: E731
    train = read(run_dir / "train.csv")
    factuals = read(run_dir / "factuals.csv")
    factuals.index = factuals.pop("factual_id").astype(str)
    return schema, train[schema.feature_names], factuals[schema.feature_names]


def _radar_section(run_dir: Path, ctx: dict) -> dict:
    from .figures import change_frequency, radar_chart

    schema, train, factuals, tables = _cf_inputs(run_dir, ctx)
    freq = change_frequency(factuals, tables, schema)
    freq.to_csv(ctx["out_dir"] / "fig6_change_frequency.csv")
    path = radar_chart(freq, ctx["out_dir"] / "fig6_radar.png", schema)
    rows = [[m] + [fmt(v, 2) for v in r] for m, r in freq.iterrows()]
    return {"figures": [_figure(path, "Fig 6: share of each method's valid CFs that change each feature.",
                                narrow=True)],
            "tables": [_table(["method", *[schema[c].label for c in freq.columns]], rows,
                              title="Change frequency (share of valid CFs)")]}


def _latent_section(run_dir: Path, ctx: dict) -> dict:
    from .figures import fig8_methods, latent_space, target_region_share

    schema, train, factuals, tables = _cf_inputs(run_dir, ctx)
    tables = {m: tables[m] for m in fig8_methods(tables)}
    labels = pd.read_csv(run_dir / "train.csv", usecols=[schema.label])[schema.label]
    region = target_region_share(train, labels, factuals, tables, schema)
    path = latent_space(train, factuals, tables, schema, ctx["out_dir"] / "fig8_latent_space.png", region=region)
    rows = [[m, fmt(v, 2)] for m, v in region.items()]
    return {"figures": [_figure(path, "Fig 8: factuals (circles) and their valid counterfactuals (crosses) in a "
                                      "2-D PCA embedding of the mutable numeric features; colour = class.")],
            "tables": [_table(["method", "valid CFs inside the target class region"], rows,
                              note="Share of valid CFs whose 15 nearest training rows (mutable numeric features, "
                                   "min-max scaled) are mostly of the target class: how far into the target "
                                   "class a method moves, rather than just across the boundary.")]}


def _augmentation_section(run_dir: Path, ctx: dict) -> dict:
    a = _json(run_dir / "augmentation.json", "augmentation")
    path = run_dir / "table4.csv"
    if not path.exists():
        raise _NotRun("table4.csv is absent — the augmentation step writes it.")
    rows = pd.read_csv(path).to_dict("records")
    metrics = ["accuracy", "precision", "recall", "f1", "macro_f1", "f1_class0", "f1_class1", "auc"]
    names = {"f1": "F1(pos)", "macro_f1": "macro-F1", "f1_class0": "F1(0)", "f1_class1": "F1(1)"}
    cols = ["scenario", "model", *[names.get(k, k.upper()[:3]) for k in metrics], "macro-F1 change %",
            "lost F1 recovered", "rows removed", "rows added"]
    body = []
    for r in rows:
        pm = lambda k, d=3: _mean_ci(_num(r.get(k)), _num(r.get(k + "_ci95")), d)  # noqa: E731
        lo, hi, rec = (_num(r.get(k)) for k in ("lost_f1_recovered_lo", "lost_f1_recovered_hi", "lost_f1_recovered"))
        recovered = fmt(rec, 2) + (f" [{lo:.2f}, {hi:.2f}]" if rec is not None and lo is not None else "")
        body.append({"cells": [f"{r['scenario']} ({r['description']})", r["model"], *[pm(k) for k in metrics],
                               pm("macro_f1_change_pct", 1), recovered, fmt(_num(r.get("rows_removed")), 0),
                               fmt(_num(r.get("cfs_added")), 0) + _by_llm(_num(r.get("cfs_added_by_llm")))],
                     "cls": "ref" if r["model"] in ("baseline (full train)", "reduced") else ""})
    cfg = a.get("config", {})
    notes = [f"{sc}: augmented class per seed {fmt(e['augmented_class'])}; removed rows of that class "
             f"{fmt(e['n_removed'])}." for sc, e in a["scenarios"].items()]
    if cfg.get("budget"):
        notes.append(f"Budget: ratio 100 % = min(removed rows, {cfg['budget']}) added rows for every source; "
                     "CF methods add only their valid CFs, so their 'rows added' can stay below that.")
    if not any(str(m).startswith("llm-") for m in cfg.get("methods", [])):
        notes.append("No LLM generator in this augmentation study: add one to aug_methods in a study config.")
    out = {"paragraphs": [f"Classifier {cfg.get('classifier', '?')}, seeds {fmt(cfg.get('seeds'))}, removed "
                          f"fraction {fmt(cfg.get('fraction'))} by {cfg.get('unit', 'rows')}, CF methods "
                          f"{fmt(cfg.get('methods'))}, comparators {fmt(cfg.get('comparators'))}. Mean ± 95 % "
                          "t-interval over seeds; macro-F1 is the primary F1 (both classes count)."],
           "tables": [_table(cols, body, left=2, title="Table IV (" + ("ratio 100 % of a budget of "
                                                                     f"{cfg['budget']} rows" if cfg.get("budget")
                                                                     else "ratio 100 % of the removed rows") + ")",
                             note="macro-F1 change %: reduced vs baseline on the reduced row, augmented vs reduced "
                                  "otherwise. Lost F1 recovered = sum over seeds of (macro-F1_aug - macro-F1_red) / "
                                  "sum of (macro-F1_base - macro-F1_red), 95 % bootstrap interval over seeds.")],
           "notes": notes}
    fig = run_dir / "fig7_ratio_sweep.png"
    if fig.exists():
        out["figures"] = [_figure(fig, "Fig 7: test macro-F1 vs augmentation ratio (mean, 95 % CI band); dashed = "
                                       "reduced, dotted = full-train baseline.")]
    else:
        out["missing"] = ["fig7_ratio_sweep.png is absent."]
    return out


def _num(v):
    """A CSV cell as a float, None when empty or not finite."""
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _intervention_section(run_dir: Path, ctx: dict) -> dict:
    v = _json(run_dir / "intervention.json", "intervention")
    if "factual" not in v:
        raise _NotRun(v.get("note", "intervention.json holds no example."))
    changed = {c["feature"] for c in v.get("changes", [])}
    rows = [{"cells": [k, v["factual"][k], v["counterfactual"].get(k, "–"), "changed" if k in changed else ""],
             "cls": "" if k in changed else "ref"} for k in v["factual"]]
    changes = [[c.get("label", c["feature"]), c["from"], c["to"], c.get("unit", ""), fmt(c.get("change"), 3),
                fmt(c.get("percent"), 1)] for c in v.get("changes", [])]
    before, after = v.get("proba_before", []), v.get("proba_after", [])
    probs = [[f"class {i}", fmt(b), fmt(a)] for i, (b, a) in enumerate(zip(before, after))]
    source = {"llm": " (direction proposed by the LLM, size set by the classifier)",
              "fallback": " (direction from the calibration's fallback search, not from the LLM)"}
    return {"paragraphs": [f"Method {v.get('method', '?')}{source.get(v.get('proposed_by'), '')}, test row "
                           f"{v.get('row', '?')}: '{v.get('label_before', '?')}' → '{v.get('label_after', '?')}'."],
            "tables": [_table(["feature", "factual", "counterfactual", ""], rows, left=4, title="Factual vs CF"),
                       _table(["feature", "from", "to", "unit", "change", "change %"], changes, left=4,
                              title="Changed features"),
                       _table(["class", "P before", "P after"], probs, title="Predicted probabilities")],
            "pre": v.get("narrative", "")}


BUILDERS = {"run": _run_section, "data": _data_section, "classifiers": _classifier_section,
            "finetune": _finetune_section,
            "benchmark": _benchmark_section, "radar": _radar_section, "latent": _latent_section,
            "augmentation": _augmentation_section, "intervention": _intervention_section}


def build_sections(run_dir: Path, out_dir: Path) -> list[dict]:
    """Every section's content; absent inputs give ok=False with a "not run" note, unreadable ones the error."""
    ctx = {"out_dir": out_dir}
    sections = []
    for sid, heading in SECTIONS:
        try:
            sections.append(_section(sid, heading, **BUILDERS[sid](run_dir, ctx)))
        except _NotRun as e:
            sections.append(_section(sid, heading, ok=False, note=str(e)))
        except Exception as e:  # a damaged file must not take the whole page down; show the error instead
            sections.append(_section(sid, heading, ok=False,
                                     note=f"could not build this section: {type(e).__name__}: {e}"))
    return sections


def render_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write one self-contained report.html for a study run folder (default: RUN_DIR/report.html); figures made
    for the report (Fig 6/8 PNG and CSV) are written beside it. Returns the HTML path."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"run folder not found: {run_dir}")
    out = Path(out) if out else run_dir / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent),
                             autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined)
    html = env.get_template("template.html").render(
        title=run_dir.resolve().name, run_dir=str(run_dir), sections=build_sections(run_dir, out.parent),
        generated=datetime.now().strftime("%Y-%m-%d %H:%M"))
    out.write_text(html, encoding="utf-8")
    return out
