"""DiCE, CFNOW and NICE behind the generator contract, through their real packages.

Every method sees the same schema constraints (immutables, allowed directions towards the factual's target,
clinical bounds):
- DiCE: `features_to_vary` = mutable features, `permitted_range` = training range ∩ clinical bounds ∩ the
  allowed direction from each factual.
- CFNOW has no such options: its predict_proba scores any candidate that violates a constraint as the factual's
  class, so the search never accepts it.
- NICE: its nearest unlike neighbour is chosen among training rows projected onto the constraints (immutables set
  to the factual's values, forbidden directions undone), so every feature-wise step towards it is allowed.
Whatever a package returns is projected onto the constraints if needed (extra column `projected`) and then
verified like every method's output (CFMethod). Per-row problems (package exceptions, no CF) never raise.
Options: generators/options.py (DiceOptions, CfnowOptions, NiceOptions).
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
import warnings
from functools import partial

import numpy as np
import pandas as pd

from ..cf.constraints import constraint_violations, project_to_constraints, violation_mask
from .base import CFMethod, GeneratorContext, Proposal, register
from .options import CfnowOptions, DiceOptions, NiceOptions


class NoCounterfactual(Exception):
    """Raised by a wrapper when its package ran but returned no counterfactual; the message is the reason."""


class BaselineGenerator(CFMethod):
    """Per-row loop shared by the package wrappers: timing, exception capture and projection."""

    extra_defaults = {"projected": False}

    def _one(self, factual: pd.Series, target: int) -> pd.Series | None:
        """One CF (schema feature values) for one factual, or None when the package found none."""
        raise NotImplementedError

    def violation_mask(self, factual: pd.Series, cands: pd.DataFrame, target: int) -> np.ndarray:
        """Vectorised: True for candidate rows that break an immutable, a direction, a bound or a level."""
        return violation_mask(factual, cands, self.schema, target)

    def propose(self, factuals: pd.DataFrame, current: np.ndarray, targets: np.ndarray) -> Proposal:
        n = len(factuals)
        cfs = pd.DataFrame(np.nan, index=factuals.index, columns=self.schema.feature_names, dtype=object)
        reason, seconds, projected = [""] * n, np.zeros(n), np.zeros(n, dtype=bool)
        for i in range(n):  # positions: factual labels may repeat
            t0 = time.perf_counter()
            row, tgt = factuals.iloc[i], int(targets[i])
            try:
                cf = self._one(row, tgt)
                if cf is None:
                    reason[i] = "no counterfactual found"
                    continue
                cf = self.schema.coerce(cf.to_frame().T).iloc[0]
                if constraint_violations(row, cf, self.schema, tgt):
                    cf = project_to_constraints(row, cf, self.schema, tgt)
                    projected[i] = True
                cfs.iloc[i] = cf.to_numpy(dtype=object)
            except NoCounterfactual as e:
                reason[i] = str(e)
            except Exception as e:  # a package failure for one row never stops the run
                reason[i] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]
            finally:
                seconds[i] = time.perf_counter() - t0
        return Proposal(cfs, reason, seconds, pd.DataFrame({"projected": projected}, index=factuals.index))


# ===================================================================================== DiCE
class _ProbaModel:
    """The black box as DiCE's sklearn backend calls it (predict_proba / predict on query frames)."""

    def __init__(self, classifier, schema):
        self.classifier, self.schema = classifier, schema

    def predict_proba(self, X):
        return self.classifier.predict_proba(self.schema.coerce(pd.DataFrame(X)))

    def predict(self, X):
        return self.predict_proba(X).argmax(axis=1)


class DiceGenerator(BaselineGenerator):
    """DiCE (dice_ml) with the sklearn backend on the classifier's pipeline."""

    def __init__(self, context: GeneratorContext, options: DiceOptions, method: str):
        super().__init__(context, options)
        import dice_ml

        self.method = method
        self.name = {"random": "dice-random", "genetic": "dice-genetic", "kdtree": "dice-kdtree"}[method]
        train = self.X_train.copy()
        train[self.schema.label] = self.y_train
        data = dice_ml.Data(dataframe=train, continuous_features=self.schema.continuous,
                            outcome_name=self.schema.label)
        model = dice_ml.Model(model=_ProbaModel(self.clf, self.schema), backend="sklearn", model_type="classifier")
        self.explainer = dice_ml.Dice(data, model, method=method)

    def permitted_range(self, factual: pd.Series, target: int | None = None) -> dict:
        """Training range ∩ clinical bounds ∩ allowed direction, per mutable numeric feature."""
        out = {}
        for f in self.schema.features:
            if f.immutable or f.is_categorical:
                continue
            lo, hi = self.scale.ranges[f.name]
            if f.bounds[0] is not None:
                lo = max(lo, f.bounds[0])
            if f.bounds[1] is not None:
                hi = min(hi, f.bounds[1])
            x = float(factual[f.name])
            way = f.allowed_direction(target, self.schema.desired_class)
            if way == "increase":
                lo = max(lo, x)
            elif way == "decrease":
                hi = min(hi, x)
            if lo > hi:
                lo = hi = x
            out[f.name] = [lo, hi]
        return out

    def _one(self, factual: pd.Series, target: int) -> pd.Series | None:
        kwargs = {}
        if self.method == "random":
            kwargs = {"random_seed": self.ctx.seed, "sample_size": self.options.dice_sample_size}
        elif self.method == "genetic":
            np.random.seed(self.ctx.seed)
            kwargs = {"maxiterations": self.options.dice_max_iterations}
        query = factual.to_frame().T.infer_objects()
        from raiutils.exceptions import UserConfigValidationException

        try:
            with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):  # DiCE's own tqdm bars
                warnings.simplefilter("ignore")
                exp = self.explainer.generate_counterfactuals(
                    query, total_CFs=self.options.dice_total_cfs, desired_class=int(target),
                    features_to_vary=self.schema.mutable, permitted_range=self.permitted_range(factual, target),
                    verbose=False, **kwargs)
        except UserConfigValidationException as e:
            if "No counterfactuals found" not in str(e):
                raise
            raise NoCounterfactual(f"no counterfactual found by DiCE {self.method} within the permitted ranges"
                                   + (" (no target-class training row matches the fixed features)"
                                      if self.method == "kdtree" else "")) from None
        ex = exp.cf_examples_list[0]
        df = ex.final_cfs_df_sparse if ex.final_cfs_df_sparse is not None else ex.final_cfs_df
        if df is None or len(df) == 0:
            return None
        df = self.schema.coerce(df)
        ok = self.clf.predict(df) == target
        return df[ok].iloc[0] if ok.any() else df.iloc[0]


for _method in ("random", "genetic", "kdtree"):
    register(f"dice-{_method}", partial(DiceGenerator, method=_method), DiceOptions, f"DiCE ({_method})")


# ===================================================================================== CFNOW
def import_cfnow():
    """Import cfnow without network access: its import calls nltk.download('wordnet') when the corpus is
    missing (only its text explainer needs it), so downloads are disabled for the duration of the import."""
    import nltk

    original = nltk.download
    nltk.download = lambda *a, **k: False
    try:
        logging.getLogger("cfnow").setLevel(logging.ERROR)
        import cfnow
    finally:
        nltk.download = original
    return cfnow


class CfnowGenerator(BaselineGenerator):
    """CFNOW (cfnow.find_tabular) over a one-hot encoding with underscore-free numeric aliases.

    CFNOW groups one-hot columns by the text before the first underscore, so columns are renamed
    `n<i>` (numeric) and `c<j>_<level index>` (categorical) for the search and mapped back afterwards.
    """

    def __init__(self, context: GeneratorContext, options: CfnowOptions, strategy: str):
        super().__init__(context, options)
        self.cfnow = import_cfnow()
        self.strategy = strategy
        self.name = f"cfnow-{strategy}"
        self.num_cols = {f"n{i}": c for i, c in enumerate(self.schema.continuous)}
        self.cat_cols = {}
        for j, c in enumerate(self.schema.categorical):
            for k, level in enumerate(self.schema[c].levels):
                self.cat_cols[f"c{j}_{k}"] = (c, level)
        self.feat_types = {**{a: "num" for a in self.num_cols}, **{a: "cat" for a in self.cat_cols}}

    def encode(self, df: pd.DataFrame) -> pd.DataFrame:
        out = {a: df[c].astype(float).to_numpy() for a, c in self.num_cols.items()}
        out.update({a: (df[c].astype(str) == lvl).astype(float).to_numpy() for a, (c, lvl) in self.cat_cols.items()})
        return pd.DataFrame(out, index=df.index)

    def decode(self, enc: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame({c: enc[a].astype(float).to_numpy() for a, c in self.num_cols.items()}, index=enc.index)
        for c in self.schema.categorical:
            aliases = [a for a, (cc, _) in self.cat_cols.items() if cc == c]
            pick = enc[aliases].to_numpy(dtype=float).argmax(axis=1)
            out[c] = [self.cat_cols[aliases[i]][1] for i in pick]
        return out[self.schema.feature_names]

    def _one(self, factual: pd.Series, target: int) -> pd.Series | None:
        def predict_proba(x):
            enc = pd.DataFrame(np.asarray(x, dtype=float), columns=list(self.feat_types))
            dec = self.schema.coerce(self.decode(enc))
            for c in self.schema.continuous:
                if self.schema[c].kind == "integer":
                    dec[c] = dec[c].round()
            p = self.clf.predict_proba(dec)
            bad = self.violation_mask(factual, dec, target)
            p[bad, target], p[bad, 1 - target] = 0.0, 1.0
            return p

        enc = self.encode(factual.to_frame().T).iloc[0]
        np.random.seed(self.ctx.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = self.cfnow.find_tabular(factual=enc, model_predict_proba=predict_proba, feat_types=self.feat_types,
                                          cf_strategy=self.strategy, has_ohe=bool(self.cat_cols),
                                          limit_seconds=self.options.cfnow_time_limit,
                                          it_max=self.options.cfnow_it_max, count_cf=1)
        if len(res.cf_vectors) == 0:
            return None
        return self.decode(pd.DataFrame([np.asarray(res.cf_vectors[0], dtype=float)],
                                        columns=list(self.feat_types))).iloc[0]


for _strategy in ("greedy", "random"):
    register(f"cfnow-{_strategy}", partial(CfnowGenerator, strategy=_strategy), CfnowOptions, f"CFNOW ({_strategy})")


# ===================================================================================== NICE
class ReconstructionError:
    """Auto-encoder for NICE's plausibility reward: an MLP trained to reproduce min-max scaled training rows;
    calling it returns each row's mean squared reconstruction error."""

    def __init__(self, X: np.ndarray, cat_idx: list[int], n_levels: list[int], seed: int):
        from sklearn.compose import ColumnTransformer
        from sklearn.neural_network import MLPRegressor
        from sklearn.preprocessing import MinMaxScaler, OneHotEncoder

        num_idx = [i for i in range(X.shape[1]) if i not in cat_idx]
        self.pre = ColumnTransformer([
            ("num", MinMaxScaler(), num_idx),
            ("cat", OneHotEncoder(categories=[list(range(n)) for n in n_levels], handle_unknown="ignore",
                                  sparse_output=False), cat_idx)]).fit(X.astype(float))
        Z = self.pre.transform(X.astype(float))
        width = max(2, Z.shape[1] // 2)
        self.net = MLPRegressor(hidden_layer_sizes=(width,), max_iter=500, random_state=seed).fit(Z, Z)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        Z = self.pre.transform(np.asarray(X, dtype=float))
        return ((self.net.predict(Z) - Z) ** 2).mean(axis=1)


class NiceGenerator(BaselineGenerator):
    """NICE (nicex) on ordinal-coded arrays; the nearest unlike neighbour is drawn from constraint-projected
    training rows (see the module docstring)."""

    def __init__(self, context: GeneratorContext, options: NiceOptions, optimization: str):
        super().__init__(context, options)
        from nice import NICE

        self.name = f"nice-{optimization}"
        self.cat_idx = [i for i, f in enumerate(self.schema.features) if f.is_categorical]
        X = self.encode(self.X_train)
        auto_encoder = None
        if optimization == "plausibility":
            auto_encoder = ReconstructionError(X, self.cat_idx, [len(self.schema.features[i].levels)
                                                                 for i in self.cat_idx], context.seed)
        self.nice = NICE(self.predict_fn, X.copy(), self.cat_idx, y_train=self.y_train.to_numpy(),
                         optimization=optimization, justified_cf=self.options.nice_justified,
                         auto_encoder=auto_encoder)

    def encode(self, df: pd.DataFrame) -> np.ndarray:
        out = np.empty((len(df), len(self.schema.features)), dtype=float)
        for i, f in enumerate(self.schema.features):
            if f.is_categorical:
                out[:, i] = df[f.name].astype(str).map({lv: k for k, lv in enumerate(f.levels)}).to_numpy()
            else:
                out[:, i] = df[f.name].astype(float).to_numpy()
        return out

    def decode(self, X: np.ndarray) -> pd.DataFrame:
        X = np.asarray(X, dtype=float)
        out = {}
        for i, f in enumerate(self.schema.features):
            out[f.name] = [f.levels[int(round(v))] for v in X[:, i]] if f.is_categorical else X[:, i]
        return pd.DataFrame(out)

    def predict_fn(self, X: np.ndarray) -> np.ndarray:
        return self.clf.predict_proba(self.decode(X))

    def _one(self, factual: pd.Series, target: int) -> pd.Series | None:
        x = self.encode(factual.to_frame().T)
        data = self.nice.data
        data.fit_to_X(x.copy(), [int(target)])
        pool = data.candidates_view.copy()
        if len(pool) == 0:
            return None
        for i, f in enumerate(self.schema.features):  # project the pool onto the constraints
            way = f.allowed_direction(target, self.schema.desired_class)
            if f.immutable:
                pool[:, i] = x[0, i]
            elif way == "increase":
                pool[:, i] = np.maximum(pool[:, i], x[0, i])
            elif way == "decrease":
                pool[:, i] = np.minimum(pool[:, i], x[0, i])
        pool = pool[self.predict_fn(pool).argmax(axis=1) == target]
        pool = pool[~self.violation_mask(factual, self.decode(pool), target)] if len(pool) else pool
        if len(pool) == 0:
            return None
        nn = pool[self.nice.distance_metric.measure(data.X, pool).argmin()][np.newaxis, :].copy()
        cf = self.nice.optimizer.optimize(nn) if self.nice.optimization != "none" else nn
        return self.decode(cf).iloc[0]


for _optimization in ("sparsity", "proximity", "plausibility"):
    register(f"nice-{_optimization}", partial(NiceGenerator, optimization=_optimization), NiceOptions,
             f"NICE ({_optimization})")
