"""Table IV and Fig 7: counterfactual data augmentation under label scarcity (the paper's X_aug).

For each scenario (A: class 1 halved, B: class 0 halved, C: both halved) and seed:
  baseline  = the classifier trained on the full training split,
  reduced   = the same kind trained on the reduced split (rows removed by participant where the data has a group
              column: whole participants' rows of the halved class; else by rows),
  augmented = the reduced split plus counterfactuals OF THE REMOVED CLASS (the augmented class), generated with the
              reduced model from factuals of the other class and labelled with the target class; only VALID CFs are
              added, up to ratio x (number of removed rows of that class, or a stated budget if lower).
Scenario C augments the reduced split's minority class. Comparators: random oversampling and SMOTE(NC).
Modules: run.py (cells, resume), sources.py (CFs and oversampling), stats.py (aggregates), tables.py (Table IV,
Fig 7).
"""

from .run import CELLS_FILE, run_augmentation
from .sources import COMPARATORS, augmented_class, generate_cfs, oversample
from .stats import METRICS, PRIMARY, SCENARIOS, mean_ci, percent_change, pooled_recovery, ratio_key, summarize
from .tables import plot_ratio_sweep, table4_markdown, table4_rows, write_table4

__all__ = ["CELLS_FILE", "COMPARATORS", "METRICS", "PRIMARY", "SCENARIOS", "augmented_class", "generate_cfs",
           "mean_ci", "oversample", "percent_change", "plot_ratio_sweep", "pooled_recovery", "ratio_key",
           "run_augmentation", "summarize", "table4_markdown", "table4_rows", "write_table4"]
