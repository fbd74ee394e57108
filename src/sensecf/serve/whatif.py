"""The what-if operations on one workspace: list and open test rows, score edited rows (enforcing fixed features,
clinical bounds and allowed directions), the run's and new counterfactuals with their metrics, interventions."""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from .run_folder import (ConfigError, Workspace, allowed_direction, available_methods, changed_features,
                         constraint_violations, generate, intervention_view, llm_text, narrative, one_cf_metrics)

class InputError(Exception):
    """A request the server refuses: HTTP status, a message, and the request field it is about."""

    def __init__(self, status: int, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


def predicted(p1: float) -> int:
    """The predicted class from P(class 1), as Classifier.predict (argmax; a tie is class 0)."""
    return int(p1 > 0.5)


def _number(v) -> float | None:
    """A JSON-safe float (None for NaN / missing)."""
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


class WhatIf:
    """Scoring, counterfactuals and interventions for the test rows of one workspace (thread-safe reads; new CFs
    are kept in memory for the session, nothing is written)."""

    def __init__(self, ws: Workspace, allow_remote: bool = False):
        self.ws, self.schema, self.allow_remote = ws, ws.schema, allow_remote
        self.proba = pd.Series(ws.classifier.predict_proba(ws.test)[:, 1], index=ws.test.index)
        self.ranges = self.schema.observed_ranges(ws.X_train)
        self.methods = sorted(set(available_methods()) | set(ws.cfs))
        self.new_cfs: dict[str, dict[str, dict]] = {}  # row id -> method -> CF view
        self._llm_texts: dict[tuple, str | None] = {}  # written by the single generation worker only

    # ---- schema and rows -------------------------------------------------------------------------
    def info(self) -> dict:
        """Features (units, bounds, training range, step, direction, actionability), classes and methods."""
        feats = []
        for f in self.schema.features:
            rng = self.ranges[f.name]
            feats.append({
                "name": f.name, "label": f.label, "unit": f.unit, "kind": f.kind, "description": f.description,
                "immutable": f.immutable, "direction": f.direction, "levels": f.levels,
                "clinical_bounds": None if f.is_categorical else list(f.bounds),
                "training_range": list(rng), "precision": f.precision,
                "step": None if f.is_categorical else (1.0 if f.kind == "integer" else 10.0 ** -f.precision),
                "actionability": f.actionability})
        return {"source": self.ws.source, "classifier": getattr(self.ws.classifier, "name", "?"),
                "label_names": {str(k): v for k, v in self.schema.label_names.items()},
                "n_patients": len(self.ws.test), "features": feats, "methods": self.methods,
                "run_methods": sorted(self.ws.cfs)}

    def patients(self, q: str = "", predicted_class: int | None = None, min_probability: float = 0.0,
                 max_probability: float = 1.0, with_counterfactuals: bool = False, limit: int = 500) -> list[dict]:
        """Test rows (rows with run CFs first), filtered by id/participant text, predicted class and P(class 1)."""
        ids = self.ws.test.index
        keep = (self.proba >= min_probability) & (self.proba <= max_probability)
        if predicted_class is not None:
            keep &= self.proba.map(predicted) == predicted_class
        if q:
            text = pd.Series(ids, index=ids)
            hit = text.str.contains(q, case=False, regex=False)
            if self.ws.groups is not None:
                hit |= self.ws.groups.str.contains(q, case=False, regex=False)
            keep &= hit
        with_cfs = self.ids_with_counterfactuals()
        if with_counterfactuals:
            keep &= ids.isin(with_cfs)
        picked = sorted(ids[keep.to_numpy()], key=lambda i: i not in with_cfs)  # stable: test order otherwise
        return [self._summary(pid, with_cfs) for pid in picked[:limit]]

    def ids_with_counterfactuals(self) -> set[str]:
        """Rows with a run or a new counterfactual."""
        return set().union(*(t.index for t in self.ws.cfs.values()), self.new_cfs)

    def _summary(self, pid: str, with_cfs: set[str]) -> dict:
        p = float(self.proba[pid])
        out = {"id": pid, "predicted_class": predicted(p), "probability": p, "has_counterfactuals": pid in with_cfs}
        if self.ws.groups is not None:
            out["group"] = self.ws.groups[pid]
        return out

    def _factual(self, pid: str) -> pd.Series:
        if pid not in self.ws.test.index:
            examples = ", ".join(self.ws.test.index[:5])
            raise InputError(404, f"patient {pid!r} is not a test row ({len(self.ws.test)} rows, e.g. {examples})",
                             "id")
        return self.ws.test.loc[pid]

    def _target(self, pid: str) -> int:
        return 1 - predicted(self.proba[pid])

    def patient(self, pid: str) -> dict:
        """The factual, its fixed features, per-feature slider bounds and directions, P(class 1) and its CFs."""
        factual, target = self._factual(pid), self._target(pid)
        bounds, directions = {}, {}
        for f in self.schema.features:
            if f.immutable:
                continue
            directions[f.name] = "any" if f.is_categorical else allowed_direction(f, target, self.schema)
            if not f.is_categorical:
                bounds[f.name] = self._slider_bounds(f, float(factual[f.name]), directions[f.name])
        return {**self._summary(pid, self.ids_with_counterfactuals()), "target_class": target,
                "features": self._values(factual), "fixed": self.schema.immutable, "bounds": bounds,
                "directions": directions, "implausible": self._implausible(factual),
                "counterfactuals": self._run_cfs(pid, factual) + list(self.new_cfs.get(pid, {}).values())}

    def _slider_bounds(self, f, x: float, way: str) -> list[float]:
        """Clinical bounds ∩ training range (widened to hold the factual), cut at the factual by the direction."""
        lo, hi = self.ranges[f.name]
        clo, chi = f.bounds
        lo, hi = max(lo, clo) if clo is not None else lo, min(hi, chi) if chi is not None else hi
        lo, hi = min(lo, x), max(hi, x)
        return [x if way == "increase" else lo, x if way == "decrease" else hi]

    def _values(self, row: pd.Series) -> dict:
        return {f.name: str(row[f.name]) if f.is_categorical else float(row[f.name]) for f in self.schema.features}

    def _implausible(self, row: pd.Series) -> list[str]:
        """Features outside the training data's range (numeric) or observed levels (categorical)."""
        out = []
        for f in self.schema.features:
            rng = self.ranges[f.name]
            v = row[f.name]
            if (str(v) not in rng) if f.is_categorical else not rng[0] <= float(v) <= rng[1]:
                out.append(f.name)
        return out

    # ---- scoring ---------------------------------------------------------------------------------
    def candidate(self, pid: str, features: dict) -> tuple[pd.Series, pd.Series]:
        """(factual, edited row): `features` (a subset; the rest keep the factual's values) checked for type,
        fixed features, clinical bounds and allowed directions; InputError (422) names the feature."""
        factual = self._factual(pid)
        row = factual.copy()
        for name, value in features.items():
            if name not in self.schema:
                raise InputError(422, f"unknown feature {name!r}; features: {', '.join(self.schema.feature_names)}",
                                 name)
            row[name] = self._checked_value(self.schema[name], value)
        target = 1 - int(self.ws.classifier.predict(factual.to_frame().T)[0])  # a what-if moves towards the other class
        problems = constraint_violations(factual, row, self.schema, target)
        if problems:
            name, _, what = problems[0].partition(": ")
            raise InputError(422, f"feature {name!r}: {what}" + (f" (and {len(problems) - 1} more: "
                             + "; ".join(problems[1:]) + ")" if len(problems) > 1 else ""), name)
        return factual, row

    @staticmethod
    def _checked_value(f, value):
        if f.is_categorical:
            if not isinstance(value, str) or value not in f.levels:
                raise InputError(422, f"feature {f.name!r} takes one of {f.levels}, got {value!r}", f.name)
            return str(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InputError(422, f"feature {f.name!r} takes a finite number, got {value!r}", f.name)
        if f.kind == "integer" and float(value) != round(float(value)):
            raise InputError(422, f"feature {f.name!r} takes whole numbers, got {value!r}", f.name)
        return float(value)

    def score(self, pid: str, features: dict) -> dict:
        """P(class 1), predicted class and implausible features of the edited row."""
        _, row = self.candidate(pid, features)
        p = float(self.ws.classifier.predict_proba(row.to_frame().T)[0, 1])
        return {"probability": p, "predicted_class": predicted(p), "implausible": self._implausible(row)}

    # ---- counterfactuals -------------------------------------------------------------------------
    def _options(self, options: dict) -> dict:
        if "allow_remote" in options:
            raise InputError(422, "option allow_remote is a server setting (sensecf serve --allow-remote)",
                             "options")
        return {**self.ws.options, **options, "allow_remote": self.allow_remote}

    def counterfactual(self, pid: str, method: str, options: dict) -> dict:
        """A new CF of the row by `method` (blocking: minutes for an LLM on a CPU), kept for the session."""
        factual = self._factual(pid)
        if method not in self.methods:
            raise InputError(422, f"unknown method {method!r}; valid methods: {', '.join(self.methods)}", "method")
        opts, target = self._options(options), self._target(pid)
        t0 = time.perf_counter()
        try:
            res = generate(self.ws, method, factual.to_frame().T, target, opts)
        except ConfigError as e:
            raise InputError(422, f"{method}: {e}", "options") from None
        cf = res.counterfactuals.iloc[0]
        view = self._cf_view(factual, cf, target, method, "new", str(res.status.iloc[0]), str(res.reason.iloc[0]),
                             time.perf_counter() - t0)
        self.new_cfs.setdefault(pid, {})[method] = view
        return view

    def _run_cfs(self, pid: str, factual: pd.Series) -> list[dict]:
        out = []
        for method, table in self.ws.cfs.items():
            if pid in table.index:
                r = table.loc[pid]
                out.append(self._cf_view(factual, r[self.schema.feature_names], int(r["target"]), method, "run",
                                         str(r["status"]), "" if pd.isna(r.get("reason")) else str(r["reason"]),
                                         r.get("seconds", float("nan"))))
        return out

    def _cf_view(self, factual: pd.Series, cf: pd.Series, target: int, method: str, source: str, status: str,
                 reason: str, seconds) -> dict:
        """A CF as the page shows it: values, changed features, re-scored probability, metrics, actionability."""
        out = {"method": method, "source": source, "status": status, "reason": reason, "target_class": target,
               "seconds": _number(seconds), "features": None, "changed": [], "probability": None,
               "predicted_class": None, "violations": [], "implausible": [], "metrics": {},
               "actionability": {}, "actionable_share": None}
        if cf.isna().any():
            return out
        cf = cf.copy()
        cf.name = factual.name
        changed = changed_features(factual, cf, self.schema)
        p = float(self.ws.classifier.predict_proba(cf.to_frame().T)[0, 1])
        metrics = one_cf_metrics(self.ws, factual, cf, target, status, seconds)
        levels = {n: self.schema[n].actionability for n in changed}
        actionable = [self.schema[n].actionable for n in changed]
        out.update(features=self._values(cf), changed=changed, probability=p, predicted_class=predicted(p),
                   violations=constraint_violations(factual, cf, self.schema, target),
                   implausible=self._implausible(cf),
                   metrics={k: _number(v) for k, v in metrics.items()},
                   actionability=levels, actionable_share=float(np.mean(actionable)) if actionable else None)
        return out

    # ---- interventions ---------------------------------------------------------------------------
    def intervention(self, pid: str, features: dict, method: str | None = None, llm: bool = False,
                     options: dict | None = None) -> dict:
        """The Table II view and narrative of an edited row (a CF or the sliders); with `llm`, the LLM's
        narrative too (None when one of its numbers does not match the view)."""
        factual, row = self.candidate(pid, features)
        view = intervention_view(factual, row, self.ws.classifier, self.schema)
        out = {"id": pid, "method": method or "what-if", "source": self.ws.source,
               "classifier": getattr(self.ws.classifier, "name", "?"),
               "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "view": view, "narrative": narrative(view, self.schema)}
        if llm:
            key = (pid, tuple(sorted(self._values(row).items())))
            if key not in self._llm_texts:
                self._llm_texts[key] = llm_text(view, self.schema, self._options(options or {}))
            out["llm_narrative"] = self._llm_texts[key]
        return out
