"""Report figures (matplotlib, Agg): Fig 6 radar of feature-change frequency per method and Fig 8 latent space of
factuals vs counterfactuals, plus a PNG-saving helper. Inputs are the benchmark's CF tables (cfs/<method>.csv:
factual_id, schema feature columns, target, status, ...) and the factuals they were generated from."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder  # noqa: E402

from ..errors import DataError  # noqa: E402
from ..cf.constraints import changed_features  # noqa: E402
from ..schema import Schema  # noqa: E402


def save_figure(fig, path: Path | str, dpi: int = 120) -> Path:
    """Save a figure as PNG (creating the folder) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def _valid_pairs(factuals: pd.DataFrame, table: pd.DataFrame, schema: Schema, method: str) -> tuple:
    """(factual rows, CF rows) of the valid CFs of one table, aligned by factual_id."""
    if "factual_id" not in table.columns or "status" not in table.columns:
        raise DataError(f"CF table of {method!r} lacks the factual_id/status columns", column="factual_id")
    ok = table[table["status"] == "valid"]
    ids = ok["factual_id"].astype(str)
    index = pd.Index(factuals.index.astype(str))
    missing = ids[~ids.isin(index)]
    if len(missing):
        raise DataError(f"CF table of {method!r} refers to factual ids not in the factuals table",
                        row=missing.iloc[0], column="factual_id")
    fact = factuals.iloc[index.get_indexer(ids)][schema.feature_names]
    return fact, ok[schema.feature_names]


def change_frequency(factuals: pd.DataFrame, cf_tables: dict[str, pd.DataFrame], schema: Schema) -> pd.DataFrame:
    """Methods x features: share of each method's valid CFs that change the feature (NaN row: no valid CF)."""
    rows = {}
    for method, table in cf_tables.items():
        fact, cfs = _valid_pairs(factuals, table, schema, method)
        counts = pd.Series(0.0, index=schema.feature_names)
        for (_, f), (_, c) in zip(fact.iterrows(), cfs.iterrows()):
            counts[changed_features(f, c, schema)] += 1
        rows[method] = counts / len(cfs) if len(cfs) else counts * np.nan
    return pd.DataFrame(rows).T.reindex(columns=schema.feature_names)


def radar_chart(freq: pd.DataFrame, path: Path | str, schema: Schema | None = None,
                title: str = "Feature-change frequency of valid counterfactuals (Fig 6)") -> Path:
    """Fig 6: one polygon per method over the features; radius = share of valid CFs changing the feature."""
    labels = [schema[c].label if schema is not None and c in schema else c for c in freq.columns]
    angles = np.linspace(0, 2 * np.pi, len(labels), endpoint=False).tolist()
    fig, ax = plt.subplots(figsize=(6.5, 6.5), subplot_kw={"polar": True})
    colors = plt.get_cmap("tab10")
    for i, (method, row) in enumerate(freq.iterrows()):
        if row.isna().all():
            continue
        vals = row.fillna(0).tolist()
        ax.plot(angles + angles[:1], vals + vals[:1], color=colors(i % 10), linewidth=1.6, label=method)
        ax.fill(angles + angles[:1], vals + vals[:1], color=colors(i % 10), alpha=0.08)
    ax.set_xticks(angles)
    ax.set_xticklabels(labels, fontsize=9)
    ax.set_ylim(0, 1)
    ax.set_yticks([0.25, 0.5, 0.75, 1.0])
    ax.set_yticklabels(["25 %", "50 %", "75 %", "100 %"], fontsize=8)
    ax.set_title(title + "\nradius = share of valid CFs that change the feature", fontsize=11, pad=24)
    ax.legend(loc="upper right", bbox_to_anchor=(1.35, 1.1), fontsize=9, title="method")
    return save_figure(fig, path)


def feature_encoder(X_train: pd.DataFrame, schema: Schema) -> Pipeline:
    """Min-max scaling of numeric and one-hot encoding of categorical features, fitted on the training data."""
    enc = ColumnTransformer([
        ("num", MinMaxScaler(), schema.continuous),
        ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False,
                              categories=[schema[c].levels for c in schema.categorical]), schema.categorical),
    ])
    return Pipeline([("encode", enc)]).fit(_typed(X_train, schema))


def _typed(X: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    X = X[schema.feature_names].copy()
    for c in schema.categorical:
        X[c] = X[c].astype(str)
    for c in schema.continuous:
        X[c] = X[c].astype(float)
    return X


def mutable_embedding(X_train: pd.DataFrame, schema: Schema, seed: int = 0):
    """A function rows -> 2-D PCA coordinates of the min-max scaled mutable numeric features (what a CF may
    change), fitted on the training data, and the explained variance (%) of the two components."""
    cols = [c for c in schema.continuous if c not in schema.immutable] or schema.continuous
    scaler = MinMaxScaler().fit(X_train[cols].astype(float))
    pca = PCA(n_components=2, random_state=seed).fit(scaler.transform(X_train[cols].astype(float)))
    return (lambda X: pca.transform(scaler.transform(X[cols].astype(float)))), pca.explained_variance_ratio_ * 100


def target_region_share(X_train: pd.DataFrame, y_train, factuals: pd.DataFrame, cf_tables: dict[str, pd.DataFrame],
                        schema: Schema, k: int = 15) -> dict[str, float]:
    """Per method: the share of its valid CFs that lie inside the target class's region — most of their k nearest
    training rows (min-max scaled mutable numeric features) belong to the target class (NaN: no valid CF)."""
    from sklearn.neighbors import NearestNeighbors

    cols = [c for c in schema.continuous if c not in schema.immutable] or schema.continuous
    scaler = MinMaxScaler().fit(X_train[cols].astype(float))
    nn = NearestNeighbors(n_neighbors=min(k, len(X_train))).fit(scaler.transform(X_train[cols].astype(float)))
    y = np.asarray(y_train).astype(int)
    out = {}
    for method, table in cf_tables.items():
        _, cfs = _valid_pairs(factuals, table, schema, method)
        if not len(cfs):
            out[method] = float("nan")
            continue
        target = table.loc[table["status"] == "valid", "target"].astype(int).to_numpy()
        _, idx = nn.kneighbors(scaler.transform(cfs[cols].astype(float)))
        out[method] = float(((y[idx] == target[:, None]).mean(axis=1) > 0.5).mean())
    return out


def fig8_methods(methods) -> list[str]:
    """The methods Fig 8 compares: the LLM generators (zero-shot vs fine-tuned vs calibrated, as in the paper's
    ablation) when at least two ran, else every method."""
    llm = [m for m in methods if m.startswith("llm-")]
    return llm if len(llm) >= 2 else list(methods)


def latent_space(X_train: pd.DataFrame, factuals: pd.DataFrame, cf_tables: dict[str, pd.DataFrame], schema: Schema,
                 path: Path | str, seed: int = 0, region: dict[str, float] | None = None) -> Path:
    """Fig 8: factuals and their valid CFs in a 2-D PCA embedding of the mutable numeric features (fitted on the
    training data), one panel per method; colour = class (factual: its predicted class = 1 - target; CF: the
    target), marker = factual/CF, a thin line joins each pair; `region` (target_region_share) in the titles."""
    embed, ev = mutable_embedding(X_train, schema, seed)
    background = embed(X_train)
    n = max(len(cf_tables), 1)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.4 * rows), sharex=True, sharey=True, squeeze=False)
    names = schema.label_names
    palette = {0: "tab:blue", 1: "tab:red"}
    for ax, (method, table) in zip(axes.flat, cf_tables.items()):
        ax.scatter(background[:, 0], background[:, 1], s=4, color="lightgrey", label="training rows")
        fact, cfs = _valid_pairs(factuals, table, schema, method)
        ok = table[table["status"] == "valid"]
        target = ok["target"].astype(int).to_numpy()
        if len(cfs):
            pf, pc = embed(fact), embed(cfs)
            for a, b in zip(pf, pc):
                ax.plot([a[0], b[0]], [a[1], b[1]], color="grey", linewidth=0.5, alpha=0.6)
            for cls in (0, 1):
                mf, mc = (1 - target) == cls, target == cls
                ax.scatter(pf[mf, 0], pf[mf, 1], s=22, marker="o", facecolor="none", edgecolor=palette[cls],
                           label=f"factual: {names.get(cls, cls)}")
                ax.scatter(pc[mc, 0], pc[mc, 1], s=26, marker="x", color=palette[cls],
                           label=f"CF: {names.get(cls, cls)}")
        share = (region or {}).get(method)
        inside = f"; {share:.0%} in target region" if share is not None and np.isfinite(share) else ""
        ax.set_title(f"{method} ({len(cfs)} valid CFs{inside})", fontsize=8)
        ax.xaxis.set_major_locator(plt.MaxNLocator(4))
        ax.grid(alpha=0.25)
    for ax in axes.flat[len(cf_tables):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel(f"PC 1 ({ev[0]:.0f} % var.)")
    for ax in axes[:, 0]:
        ax.set_ylabel(f"PC 2 ({ev[1]:.0f} % var.)")
    handles = {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    labels = list(handles)
    fig.legend([handles[lab] for lab in labels], labels, loc="lower center", ncol=min(len(labels), 5),
               frameon=False, fontsize=8)
    fig.suptitle("Latent space of the mutable features (PCA, min-max scaled, fitted on training data) — Fig 8",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.08 + 0.02 * (rows > 1), 1, 0.95))
    return save_figure(fig, path)


def reliability_plot(tables: dict[str, list[dict]], path: Path | str) -> Path:
    """Reliability diagram per classifier from classifiers.json's bins (mean predicted vs observed rate)."""
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="perfect calibration")
    for kind, bins in tables.items():
        if bins:
            ax.plot([b["mean_predicted"] for b in bins], [b["observed"] for b in bins], marker="o", label=kind)
    ax.set_xlabel("mean predicted P(class 1)")
    ax.set_ylabel("observed share of class 1")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)
