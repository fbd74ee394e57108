"""Table IV (csv + Markdown) and Fig 7 from the augmentation summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ...files import write_csv, write_text
from .stats import METRICS, PRIMARY, ratio_key

ABBREV = {"accuracy": "ACC", "precision": "PRE", "recall": "REC", "f1": "F1(pos)", "macro_f1": "macro-F1",
          "f1_class0": "F1(0)", "f1_class1": "F1(1)", "auc": "AUC"}
COLUMN = {"accuracy": "accuracy", "precision": "precision", "recall": "recall", "f1": "f1", "macro_f1": "macro_f1",
          "f1_class0": "f1_class0", "f1_class1": "f1_class1", "auc": "auc"}
RECOVERED_NOTE = ("Lost F1 recovered = sum over seeds of (macro-F1_aug - macro-F1_red) / sum of (macro-F1_base - "
                  "macro-F1_red) [95 % bootstrap interval over seeds], '–' when no macro-F1 was lost on average.")


def _pm(mean, ci, digits: int = 3) -> str:
    if mean is None or not np.isfinite(mean):
        return "–"
    tail = f" ± {ci:.{digits}f}" if ci is not None and np.isfinite(ci) else ""
    return f"{mean:.{digits}f}{tail}"


def format_recovered(row: dict, digits: int = 2) -> str:
    """A Table IV row's lost-F1-recovered cell: "0.48 [0.21, 0.90]", or "–"."""
    mean, lo, hi = (row.get(k) for k in ("lost_f1_recovered", "lost_f1_recovered_lo", "lost_f1_recovered_hi"))
    if mean is None or not np.isfinite(mean):
        return "–"
    interval = f" [{lo:.{digits}f}, {hi:.{digits}f}]" if lo is not None and np.isfinite(lo) else ""
    return f"{mean:.{digits}f}{interval}"


def ratio_caption(summary: dict, ratio: float) -> str:
    """'ratio 100 % of the removed rows', or '... of a budget of N rows' when a budget capped the additions."""
    budget = summary.get("config", {}).get("budget")
    return f"ratio {ratio:.0%} of " + (f"a budget of {budget} rows (min(removed rows, {budget}))" if budget
                                       else "the removed rows")


def table4_rows(summary: dict, ratio: float | None = None) -> list[dict]:
    """Table IV rows (scenario, model, metric means and CIs, macro-F1 change %, lost F1 recovered, rows removed,
    CFs added) at `ratio` (default: 1.0 when run, else the largest ratio)."""
    ratios = summary.get("config", {}).get("ratios") or [1.0]
    ratio = ratio if ratio is not None else (1.0 if 1.0 in ratios else max(ratios))
    rows = []
    for sc, entry in summary["scenarios"].items():
        models = [("baseline (full train)", entry["baseline"]), ("reduced", entry["reduced"])]
        models += [(m, res[ratio_key(ratio)]) for m, res in entry["methods"].items() if ratio_key(ratio) in res]
        for name, res in models:
            row = {"scenario": sc, "description": entry["description"], "model": name, "ratio": ratio}
            for k in METRICS:
                agg = res["aggregate"].get(k, {})
                row[COLUMN[k]], row[COLUMN[k] + "_ci95"] = agg.get("mean"), agg.get("ci95")
            change = res.get("change_vs_reduced_pct") or res.get("drop_vs_baseline_pct") or {}
            row["macro_f1_change_pct"] = change.get(PRIMARY, {}).get("mean")
            row["macro_f1_change_pct_ci95"] = change.get(PRIMARY, {}).get("ci95")
            recovered = res.get("lost_f1_recovered", {})
            row["lost_f1_recovered"] = recovered.get("mean")
            row["lost_f1_recovered_lo"], row["lost_f1_recovered_hi"] = recovered.get("lo"), recovered.get("hi")
            row["rows_removed"] = (entry.get("rows_removed") or {}).get("mean")
            row["cfs_added"] = res.get("n_added", {}).get("mean")
            row["cfs_added_by_llm"] = res.get("n_added_from_llm", {}).get("mean")
            rows.append(row)
    return rows


def table4_markdown(summary: dict) -> str:
    """Table IV as Markdown: mean ± 95 % CI over seeds; macro-F1 is the primary F1."""
    rows = table4_rows(summary)
    cfg = summary.get("config", {})
    ratio = rows[0]["ratio"] if rows else 1.0
    lines = [f"# Augmentation under label scarcity (Table IV layout; {ratio_caption(summary, ratio)}, classifier "
             f"{cfg.get('classifier', '?')}, reduction by {cfg.get('unit', 'rows')}, seeds {cfg.get('seeds', '?')})",
             "", "| Scenario | Model | " + " | ".join(ABBREV[k] for k in METRICS)
             + " | macro-F1 change % | lost F1 recovered | rows removed | rows added |",
             "|---" * (len(METRICS) + 6) + "|"]
    for r in rows:
        cells = [_pm(r[COLUMN[k]], r[COLUMN[k] + "_ci95"]) for k in METRICS]
        change = _pm(r["macro_f1_change_pct"], r["macro_f1_change_pct_ci95"], 1)
        count = lambda v: "–" if v is None or not np.isfinite(v) else f"{v:.0f}"  # noqa: E731
        by_llm = lambda v: "" if v is None or not np.isfinite(v) else f" ({v:.0f} by the LLM)"  # noqa: E731
        lines.append(f"| {r['scenario']} ({r['description']}) | {r['model']} | " + " | ".join(cells)
                     + f" | {change} | {format_recovered(r)} | {count(r['rows_removed'])} | "
                     f"{count(r['cfs_added'])}{by_llm(r['cfs_added_by_llm'])} |")
    lines += ["", "macro-F1 change %: reduced vs baseline for the reduced row, augmented vs reduced otherwise. "
              f"{RECOVERED_NOTE} F1(pos) = F1 of class 1 as positive. Rows added (by the LLM): for a calibrated "
              "LLM row, how many of its CFs came from an LLM proposal; the rest came from its fallback search. "
              "Scenario C augments the reduced split's minority class (see augmented_class in augmentation.json)."]
    return "\n".join(lines) + "\n"


def write_table4(summary: dict, out_dir: Path) -> None:
    """table4.csv (numbers, one row per scenario x model) and table4.md (formatted)."""
    write_csv(out_dir / "table4.csv", pd.DataFrame(table4_rows(summary)))
    write_text(out_dir / "table4.md", table4_markdown(summary))


def plot_ratio_sweep(summary: dict, path: Path) -> Path:
    """Fig 7: test macro-F1 vs augmentation ratio per method (mean and 95 % CI band), one panel per scenario, with
    the reduced model (dashed) and the full-train baseline (dotted) as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scen = summary["scenarios"]
    fig, axes = plt.subplots(1, max(len(scen), 1), figsize=(4.6 * max(len(scen), 1), 3.8), sharey=True,
                             squeeze=False)
    colors = plt.get_cmap("tab10")
    for ax, (sc, entry) in zip(axes[0], scen.items()):
        for i, (method, res) in enumerate(entry["methods"].items()):
            rs = sorted(res, key=float)
            x = np.array([float(r) * 100 for r in rs])
            m = np.array([res[r]["aggregate"][PRIMARY]["mean"] for r in rs], dtype=float)
            ci = np.nan_to_num(np.array([res[r]["aggregate"][PRIMARY]["ci95"] for r in rs], dtype=float))
            ax.plot(x, m, marker="o", color=colors(i), label=method)
            ax.fill_between(x, np.clip(m - ci, 0, 1), np.clip(m + ci, 0, 1), color=colors(i), alpha=0.15)
        for key, style, label in (("reduced", "--", "reduced (no augmentation)"),
                                  ("baseline", ":", "baseline (full train)")):
            val = entry[key]["aggregate"][PRIMARY]["mean"]
            if val is not None and np.isfinite(val):
                ax.axhline(val, color="black", linestyle=style, linewidth=1.2, label=label)
        ax.set_title(f"Scenario {sc}: {entry['description']}")
        budget = summary.get("config", {}).get("budget")
        ax.set_xlabel("augmentation ratio (% of " + (f"min(removed rows, {budget}))" if budget else "removed rows)"))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test macro-F1 (mean, 95 % CI band)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 3), frameon=False)
    fig.tight_layout(rect=(0, 0.16, 1, 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
