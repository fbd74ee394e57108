"""Table II: one patient's counterfactual as an intervention — what changes (visible at display precision), by how
much, and what the model then predicts. Every sentence of the narrative is filled from the numbers of the view;
an LLM-written narrative is kept only when every number it states is one of the view's."""

from __future__ import annotations

import math
import re

import pandas as pd

from pathlib import Path

import numpy as np

from ..backends.base import Chat, SamplingSettings, TextBackend
from ..cf import FeatureScale, Verifier
from ..cf.constraints import changed_mask, changed_features
from ..schema import Schema

EXAMPLE_MIN_CONFIDENCE = 0.6  # Table II prefers a factual whose predicted class has at least this probability


def intervention_view(factual: pd.Series, cf_row: pd.Series, classifier, schema: Schema) -> dict:
    """The factual, the CF, each changed feature (direction, absolute change in the feature's unit — percentage
    points for % features — relative % change) and the predicted class probabilities before and after."""
    names = schema.feature_names
    fact = factual[names]
    cf = cf_row[names]
    before = classifier.predict_proba(fact.to_frame().T)[0]
    after = classifier.predict_proba(cf.to_frame().T)[0]
    changes = []
    for name in changed_features(fact, cf, schema):
        f = schema[name]
        item = {"feature": name, "label": f.label, "unit": f.unit, "kind": f.kind,
                "from": f.format_value(fact[name]), "to": f.format_value(cf[name])}
        if f.is_categorical:
            item.update(direction="change", change=None, percent=None, change_text="changed")
        else:
            a, b = float(fact[name]), float(cf[name])
            delta_unit = " percentage points" if f.unit == "%" else (f" {f.unit}" if f.unit else "")
            prec = 0 if f.kind == "integer" else f.precision
            item.update(direction="up" if b > a else "down", change=b - a,
                        percent=(b - a) / abs(a) * 100 if a != 0 else None,
                        change_text=f"{b - a:+.{prec}f}{delta_unit}")
        changes.append(item)
    label = lambda p: int(p.argmax())  # noqa: E731
    return {
        "factual": {n: schema[n].format_value(fact[n]) for n in names},
        "counterfactual": {n: schema[n].format_value(cf[n]) for n in names},
        "changes": changes,
        "proba_before": [float(p) for p in before], "proba_after": [float(p) for p in after],
        "class_before": label(before), "class_after": label(after),
        "label_before": schema.label_names.get(label(before), str(label(before))),
        "label_after": schema.label_names.get(label(after), str(label(after))),
        "fixed": [f.label for f in schema.features if f.immutable],
    }


def choose_example(run_dir: Path, methods: list[str], test_X: pd.DataFrame, train_X: pd.DataFrame, classifier,
                   schema: Schema) -> dict:
    """The study's Table II example: among every method's valid CFs (cfs/<method>.csv, re-verified) towards the
    desired class (class 0 when the schema names none), one whose factual the model is sure of (p of its class
    >= EXAMPLE_MIN_CONFIDENCE: a patient at the boundary makes a tie-break, not an intervention) first, then the
    most actionable one — only actionable features changed first, then the lowest actionability-weighted cost,
    then the fewest changes — as an intervention view with its method, row, narrative and (for a calibrated LLM
    row) proposed_by; a note when there is none."""
    from .benchmark import DamagedFile, _read_cf_table

    goal = schema.desired_class if schema.desired_class is not None else 0
    scale, verifier = FeatureScale(schema, schema.coerce(train_X)), Verifier(schema, classifier)
    test_by_id = {str(i): i for i in test_X.index}
    best = None
    for method in methods:
        path = Path(run_dir) / "cfs" / f"{method}.csv"
        if not path.exists():
            continue
        try:
            table = _read_cf_table(path, schema)
        except DamagedFile:
            continue
        table = table[(table["status"] == "valid") & (table["target"] == goal)
                      & table["factual_id"].astype(str).isin(test_by_id)]
        if table.empty:
            continue
        facts = schema.coerce(test_X.loc[[test_by_id[str(i)] for i in table["factual_id"]]])
        verdicts = verifier.check(facts, table[schema.feature_names], [goal] * len(table))
        changed = changed_mask(facts, verdicts.cfs, schema).to_numpy()
        actionable = np.array([schema[c].actionable for c in schema.feature_names])
        only = ~(changed & ~actionable).any(axis=1)
        cost = scale.cost(facts, verdicts.cfs)
        unsure = classifier.predict_proba(facts)[:, 1 - goal] < EXAMPLE_MIN_CONFIDENCE
        proposed_by = table["proposed_by"].fillna("").to_numpy() if "proposed_by" in table else [""] * len(table)
        for k in np.flatnonzero(verdicts.valid):
            key = (bool(unsure[k]), not only[k], float(cost[k]), int(changed[k].sum()))
            if best is None or key < best[0]:
                best = (key, method, facts.index[k], facts.iloc[k], verdicts.cfs.iloc[k], proposed_by[k])
    if best is None:
        return {"note": f"no valid counterfactual towards {schema.label_names.get(goal, goal)!r} in the benchmark",
                "benchmark_methods": list(methods)}
    (_, not_only, cost, _), method, row_id, factual, cf, proposed_by = best
    view = intervention_view(factual, cf, classifier, schema)
    view.update({"method": method, "row": str(row_id), "actionable_only": not not_only, "cost": cost,
                 "narrative": narrative(view, schema)})
    if proposed_by:  # a calibrated LLM row: whether the LLM or the fallback search proposed the direction
        view["proposed_by"] = str(proposed_by)
    return view


def _change_text(c: dict) -> str:
    unit = f" {c['unit']}" if c["unit"] else ""
    if c["direction"] == "change":
        return f"{c['label']}: {c['from']} → {c['to']}"
    verb = "increase" if c["direction"] == "up" else "decrease"
    pct = f", {c['percent']:+.0f} % relative" if c["percent"] is not None else ""
    return f"{verb} {c['label']} from {c['from']} to {c['to']}{unit} ({c['change_text']}{pct})"


def narrative(view: dict, schema: Schema) -> str:
    """Table II-style text (Condition / Intervention / Why) — built only from the view's numbers."""
    b, a = view["class_before"], view["class_after"]
    p_before, p_after = view["proba_before"][b], view["proba_after"][a]
    lines = [f"Condition: the model predicts '{view['label_before']}' (probability {p_before:.3f})."]
    if not view["changes"]:
        lines.append("Intervention: none — the counterfactual equals the current values.")
    else:
        lines.append("Intervention: " + "; ".join(_change_text(c) for c in view["changes"]) + ".")
    if a != b:
        lines.append(f"Why: with these changes the model predicts '{view['label_after']}' "
                     f"(probability {p_after:.3f}); {', '.join(view['fixed']) or 'no feature'} stay as they are.")
    else:
        lines.append(f"Why: these changes do not change the prediction (still '{view['label_after']}', "
                     f"probability {p_after:.3f}), so they are not a sufficient intervention.")
    return "\n".join(lines)


def format_text(view: dict) -> str:
    """Terminal table: feature, current value, suggested value, change; then the probabilities."""
    changed = {c["feature"]: c for c in view["changes"]}
    width = max(len(n) for n in view["factual"]) + 2
    vw = max([len(v) for v in view["factual"].values()] + [len(v) for v in view["counterfactual"].values()]
             + [len("suggested")]) + 2
    lines = [f"{'feature':<{width}}{'current':>{vw}}{'suggested':>{vw}}  change"]
    for name, v in view["factual"].items():
        c = changed.get(name)
        delta = "" if c is None else c["change_text"] + (f" ({c['percent']:+.0f} % relative)"
                                                         if c["percent"] is not None else "")
        mark = "*" if c else " "
        lines.append(f"{mark}{name:<{width - 1}}{v:>{vw}}{view['counterfactual'][name]:>{vw}}  {delta}")
    lines.append(f"prediction: {view['label_before']} (p={view['proba_before'][view['class_before']]:.3f}) -> "
                 f"{view['label_after']} (p={view['proba_after'][view['class_after']]:.3f})")
    return "\n".join(lines)


# ---- LLM-written narrative (kept only when every number matches the view) ----------------------------------
_NUM = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?")


def _view_numbers(view: dict) -> list[float]:
    vals = []
    for text in [*view["factual"].values(), *view["counterfactual"].values()]:
        vals += [float(x) for x in _NUM.findall(str(text))]
    for c in view["changes"]:
        vals += [abs(c["change"])] if c.get("change") is not None else []
        vals += [abs(c["percent"])] if c.get("percent") is not None else []
    probs = [*view["proba_before"], *view["proba_after"]]
    return vals + probs + [100 * p for p in probs] + [0.0, 1.0, 2.0, 100.0]


def narrative_chat(view: dict, schema: Schema) -> Chat:
    """Chat asking for a three-line Table II narrative built only from the view's numbers."""
    changes = "\n".join(f"- {c['label']}: {c['from']} -> {c['to']}" + (f" {c['unit']}" if c["unit"] else "")
                        for c in view["changes"]) or "- none"
    b, a = view["class_before"], view["class_after"]
    user = (f"A model predicts \"{view['label_before']}\" for a patient (probability "
            f"{view['proba_before'][b]:.2f}). A counterfactual changes:\n{changes}\n"
            f"After the changes the model predicts \"{view['label_after']}\" (probability "
            f"{view['proba_after'][a]:.2f}). Fixed: {', '.join(view['fixed']) or 'none'}.\n"
            "Write exactly three short lines for a clinician, using only the numbers above:\n"
            "Condition: ...\nIntervention: ...\nWhy: ...")
    return [{"role": "system", "content": "You are a clinician who explains model-based recommendations "
             "briefly and faithfully."}, {"role": "user", "content": user}]


def llm_narrative(view: dict, schema: Schema, backend: TextBackend, max_new_tokens: int = 160) -> str | None:
    """An LLM-written Condition / Intervention / Why narrative for an intervention view, or None when the
    backend fails, the three lines are missing, or the text states a number that is not in the view."""
    out = backend.generate([narrative_chat(view, schema)], SamplingSettings(max_new_tokens=max_new_tokens))[0]
    if isinstance(out, Exception) or not out or not out[0].strip():
        return None
    text = out[0].strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    heads = ("condition:", "intervention:", "why:")
    picked = [next((ln for ln in lines if ln.lower().lstrip("*- ").startswith(h)), None) for h in heads]
    if any(p is None for p in picked):
        return None
    allowed = _view_numbers(view)
    for p in picked:
        for x in _NUM.findall(p):
            v = abs(float(x))
            if not any(math.isclose(v, a, rel_tol=0.02, abs_tol=0.011) for a in allowed):
                return None
    return "\n".join(p.lstrip("*- ") for p in picked)
