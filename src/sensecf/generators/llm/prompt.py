"""Counterfactual prompts in two styles.

- "paper": the paper's Fig. 4 prompt (system role, task, fixed features, allowed changes, optional few-shot
  examples of the desired class, the instance as "- Feature: value" lines) answered with the whole modified
  instance inside <new> ... </new>. Used by zero-/few-shot generation and by Table I (GPU) fine-tuning.
- "compact": the same task in a few lines (labels, fixed features, direction rules, the instance) answered with
  only the changes inside <new> ... </new>: "- Feature: +2.0" for a numeric change (signed, in the feature's
  unit), "- Feature: level" for a categorical one — the edit as an intervention reads ("REM sleep +2 points").
  For fine-tuned models, which learn the rules from their pairs: ~1/4 of the paper prompt's tokens and a
  ~20-token answer, so a CPU fine-tune sees 4x more pairs per minute, all of its loss falls on the edit, and a
  small model need not copy or add up decimals.

`render_answer` is the exact text the model must produce; fine-tuning builds its training pairs from
`build_chat` + `render_answer`, so the two stay in lockstep with the parser (parse.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...backends.base import Chat
from ...cf.distance import FeatureScale
from ...schema import FeatureSpec, Schema

STYLES = ("paper", "compact")
SYSTEM_PROMPT = ("You are an expert in counterfactual explanations of machine-learning models. You change a "
                 "tabular instance minimally so that the model's prediction becomes the desired class, and you "
                 "answer only in the requested format.")
COMPACT_SYSTEM_PROMPT = ("You write minimal counterfactual edits of records: only the changes (signed for "
                         "numbers), between <new> and </new>.")


def feature_heading(f: FeatureSpec) -> str:
    """'Display (unit)'; the unit is left out when it is empty or already ends the display name (e.g. 'Awake %')."""
    label = f.label
    if not f.unit or label.lower().endswith(f.unit.lower()):
        return label
    return f"{label} ({f.unit})"


def render_instance(row: pd.Series, schema: Schema) -> str:
    """The instance as '- <display> (<unit>): <value>' lines, values formatted with FeatureSpec.format_value."""
    return "\n".join(f"- {feature_heading(f)}: {f.format_value(row[f.name])}" for f in schema.features)


def format_change(f: FeatureSpec, old, new) -> str:
    """A compact-style change: the signed difference for numbers ("+2.0", "-1"), the new level for categories."""
    if f.is_categorical:
        return str(new)
    delta = float(f.format_value(new)) - float(f.format_value(old))
    return ("+" if delta >= 0 else "-") + f.format_value(abs(delta))


def render_answer(cf: pd.Series, schema: Schema, factual: pd.Series | None = None) -> str:
    """The exact answer the model must produce inside <new> ... </new>: every feature's value ("paper" style),
    or with `factual` given only the features whose displayed value differs, as changes ("compact" style)."""
    if factual is None:
        return f"<new>\n{render_instance(cf, schema)}\n</new>"
    lines = [f"- {feature_heading(f)}: {format_change(f, factual[f.name], cf[f.name])}" for f in schema.features
             if f.format_value(cf[f.name]) != f.format_value(factual[f.name])]
    return "<new>\n" + "\n".join(lines) + "\n</new>"


def _rule(f: FeatureSpec, way: str) -> str:
    if f.immutable:
        return "FIXED, never change"
    parts = {"any": "may change", "increase": "may only increase", "decrease": "may only decrease"}[way]
    if f.is_categorical:
        return f"{parts}; one of: {', '.join(f.levels)}"
    lo, hi = f.bounds
    if lo is not None or hi is not None:
        unit = f" {f.unit}" if f.unit else ""
        if lo is not None and hi is not None:
            parts += f"; allowed range {lo:g} to {hi:g}{unit}"
        else:
            parts += f"; at least {lo:g}{unit}" if lo is not None else f"; at most {hi:g}{unit}"
    if f.kind == "integer":
        parts += "; whole numbers"
    return parts


def _label(schema: Schema, y: int) -> str:
    return schema.label_names.get(int(y), f"class {int(y)}")


def build_chat(factual: pd.Series, current: int, target: int, schema: Schema,
               examples: pd.DataFrame | None = None, style: str = "paper") -> Chat:
    """System + user messages asking for a counterfactual of `factual` from class `current` to `target`."""
    if style == "compact":
        return _compact_chat(factual, current, target, schema, examples)
    if style != "paper":
        raise ValueError(f"prompt style must be one of {STYLES}, got {style!r}")
    cur, tgt = _label(schema, current), _label(schema, target)
    desired = schema.desired_class
    fixed = [f.label for f in schema.features if f.immutable]
    lines = [
        f"Task: a classifier labels the instance below as \"{cur}\" (y = {int(current)}). Modify the instance "
        f"minimally so that the classifier labels it \"{tgt}\" (y = {int(target)}): change as few features as "
        f"possible, by as little as needed, and keep the values realistic.",
        "",
        "Features (description; allowed change):",
        *[f"- {feature_heading(f)}: {f.description or f.name}; {_rule(f, f.allowed_direction(target, desired))}"
          for f in schema.features],
    ]
    if fixed:
        lines += ["", f"Fixed features (never change them): {', '.join(fixed)}."]
    if examples is not None and len(examples):
        lines += ["", f"Examples of instances labelled \"{tgt}\":"]
        for i, (_, ex) in enumerate(examples.iterrows(), 1):
            lines += [f"Example {i}:", render_instance(ex, schema)]
    lines += [
        "", f"Instance (labelled \"{cur}\"):", render_instance(factual, schema), "",
        f"Answer with the modified instance only: all {len(schema.features)} features, one \"- Feature: value\" "
        "line each, in the same order, between <new> and </new>:",
        "<new>", f"- {feature_heading(schema.features[0])}: <value>", "...", "</new>",
    ]
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "\n".join(lines)}]


def _compact_chat(factual: pd.Series, current: int, target: int, schema: Schema,
                  examples: pd.DataFrame | None) -> Chat:
    """Rules first, instance next, and the wanted class last (right before the answer, where a small model
    attends best)."""
    cur, tgt = _label(schema, current), _label(schema, target)
    rules = [f"Fixed: {', '.join(f.label for f in schema.features if f.immutable)}."] if schema.immutable else []
    ways = {f.name: f.allowed_direction(target, schema.desired_class) for f in schema.features}
    rules += [f"{f.label} may only {ways[f.name]}." for f in schema.features
              if not f.immutable and ways[f.name] != "any"]
    lines = [" ".join(rules)] if rules else []
    for i, (_, ex) in enumerate((examples if examples is not None else pd.DataFrame()).iterrows(), 1):
        lines += [f"Example {i} (\"{tgt}\"):", render_instance(ex, schema)]
    lines += [f"Instance (\"{cur}\", y = {int(current)}):", render_instance(factual, schema),
              f"Fewest changes to make it \"{tgt}\" (y = {int(target)})."]
    return [{"role": "system", "content": COMPACT_SYSTEM_PROMPT}, {"role": "user", "content": "\n".join(lines)}]


def nearest_examples(factual: pd.Series, X_pool: pd.DataFrame, y_pool, target: int, schema: Schema,
                     k: int = 3) -> pd.DataFrame:
    """k rows of class `target` nearest the factual (cf.FeatureScale distance), preferring rows that share the
    factual's immutable values; ties keep the pool's order."""
    y = np.asarray(y_pool).astype(int)
    pool = X_pool.loc[y == int(target), schema.feature_names]
    if pool.empty or k <= 0:
        return pool.iloc[:0]
    dist = FeatureScale(schema, X_pool).distance_from(factual, pool)
    mismatch = np.zeros(len(pool))
    for c in schema.immutable:
        mismatch += (pool[c].astype(str).to_numpy() != str(factual[c])) if schema[c].is_categorical else \
            ~np.isclose(pool[c].astype(float).to_numpy(), float(factual[c]))
    order = np.lexsort((dist, mismatch))  # primary key: immutable mismatches; then distance
    return pool.iloc[order[:k]]
