"""Table II: one patient's counterfactual as an intervention — what changes, by how much, and what the model
then predicts. Every sentence of the narrative is filled from the numbers of the view."""

from __future__ import annotations

import pandas as pd

from ..generators.constraints import changed_features
from ..schema import Schema


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


def _change_text(c: dict) -> str:
    unit = f" {c['unit']}" if c["unit"] else ""
    if c["direction"] == "change":
        return f"{c['label']}: {c['from']} → {c['to']}"
    verb = "increase" if c["direction"] == "up" else "decrease"
    pct = f", {c['percent']:+.0f} % relative" if c["percent"] is not None else ""
    return f"{verb} {c['label']} from {c['from']} to {c['to']}{unit} ({c['change_text']}{pct})"


def narrative(view: dict, schema: Schema) -> str:
    """Short Table II-style text: condition, suggested changes, why — built only from the view's numbers."""
    b, a = view["class_before"], view["class_after"]
    p_before, p_after = view["proba_before"][b], view["proba_after"][a]
    lines = [f"Condition: the model predicts '{view['label_before']}' (probability {p_before:.3f})."]
    if not view["changes"]:
        lines.append("Suggested changes: none — the counterfactual equals the current values.")
    else:
        lines.append("Suggested changes: " + "; ".join(_change_text(c) for c in view["changes"]) + ".")
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
